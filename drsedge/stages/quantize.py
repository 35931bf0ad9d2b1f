"""Quantize stage: INT8 Q/DQ ONNX by post-training quantization, by a measured keep-float search within budgets, or by
quantization-aware training (QAT). Used by ``drsedge quantize``, ``drsedge qat`` and the pipeline's ``quantize``."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from drsedge.deploy_defaults import OPSET
from drsedge.errors import BudgetError, DrsedgeError
from drsedge.run_config import QuantizeSection

from .result import StageResult


@dataclass
class QuantizeInputs:
    """``calibration``: a :class:`drsedge.calibration.calib.CalibrationSet` (real rainy crops, never the test set).
    PTQ and the search read ``onnx`` (the FP32 export); the search reads ``validation`` (paired, not the test set).
    QAT reads ``model`` (the FP32 checkpoint), ``teacher`` (default: the FP32 model itself) and ``training``: a
    function that returns the batches (a ``CropSampler`` or ``StepDataset``) for a :class:`TrainConfig`."""

    calibration: object
    onnx: str | os.PathLike | None = None
    validation: list = field(default_factory=list)
    validation_name: str = "the validation set"
    model: str | os.PathLike | None = None
    teacher: str | os.PathLike | None = None
    training: Callable | None = None


def method(options: QuantizeSection) -> str:
    """``qat`` (``qat_steps`` > 0), ``search`` (a budget or fidelity floor) or ``ptq``: the one dispatch rule."""
    if options.qat_steps:
        return "qat"
    return "search" if options.budget_db is not None or options.min_fidelity_db is not None else "ptq"


def run(options: QuantizeSection, inputs: QuantizeInputs, out: str | os.PathLike, *, how: str | None = None, seed: int = 0, opset: int = OPSET,
        progress: bool = True, log: Callable[[str], None] = print, device: str = "cpu", precision: str = "fp32") -> StageResult:
    """Write the INT8 Q/DQ ONNX ``out`` by the method of ``options`` (:func:`method`; ``how="qat"`` forces QAT, as
    ``drsedge qat`` does even for 0 steps: NNCF's calibrated ranges alone), passing every option through (backend,
    ``high_precision``, depthwise, keep-float, search limits).

    Artifacts: ``onnx``. Metrics: calibration images and sha256, Q/DQ counts, and per method: QAT steps and final
    loss; the search's keep-float units, ΔPSNR-Y vs FP32 (dB) and fidelity mean/min (dB) on ``inputs.validation``.

    Raises:
        BudgetError: the search met no target after ``options.max_steps`` units (its table is logged; nothing written).
        DrsedgeError: a missing input for the method; QAT of a non-DRSformer model; any library refusal.
    """
    from drsedge.compress.quantize import count_qdq

    how = how or method(options)
    calib = inputs.calibration
    metrics: dict = {}
    if how == "qat":
        metrics = _qat(options, inputs, out, seed=seed, opset=opset, progress=progress, log=log, device=device, precision=precision)
    elif how == "search":
        from drsedge.compress.keep_float import search_keep_float

        if not inputs.validation:
            raise DrsedgeError("quantize.budget_db / min_fidelity_db (--budget / --min-fidelity) need paired validation images "
                               "(data.validation, --val DIR), not the test set")
        res = search_keep_float(inputs.onnx, out, calib, inputs.validation, budget_db=options.budget_db, backend=options.backend,
                                quantize_depthwise=options.quantize_depthwise, keep_float=options.keep_float,
                                max_steps=options.max_steps, candidates=options.candidates, granularity=options.granularity,
                                min_fidelity_db=options.min_fidelity_db, high_precision=options.high_precision)
        log(res.table())
        if not res.ok:
            raise BudgetError(f"no INT8 model meets its targets on {inputs.validation_name} after {len(res.steps) - 1} keep-float "
                              "step(s); nothing written: raise quantize.max_steps (--max-steps) or the budget, lower the fidelity "
                              "floor, or ship FP32/FP16")
        last = res.steps[-1]
        metrics = {"keep_float": last.keep_float, "val_delta_db": last.delta_db, "val_fidelity_db": last.fidelity_db,
                   "val_fidelity_min_db": last.fidelity_min_db}
    else:
        from drsedge.compress.quantize import quantize_onnx

        quantize_onnx(inputs.onnx, out, calib, options.backend, options.quantize_depthwise, options.keep_float, options.high_precision)
    return StageResult({"onnx": Path(out)}, {"method": how, "calibration_images": len(calib.files), "calibration_sha256": calib.digest,
                                             **count_qdq(out), **metrics})


def _qat(options: QuantizeSection, inputs: QuantizeInputs, out, *, seed, opset, progress, log, device, precision) -> dict:
    """Quantization-aware fine-tuning (NNCF fake quantizers, distilled from the FP32 model) with a constant-then-cosine
    learning rate from ``qat_lr`` down to 1 % of it, no zero-initialised output conv (a warm start)."""
    from drsedge.compress.qat import export_qat_onnx, insert_quantizers
    from drsedge.models.checkpoint import load_any
    from drsedge.models.config import require_drsformer
    from drsedge.training.loop import TrainConfig, train
    from drsedge.weights import resolve

    if inputs.model is None or inputs.training is None:
        raise DrsedgeError("quantization-aware training needs the FP32 checkpoint and training images (--train / --unlabeled)")
    student, scfg = load_any(resolve(inputs.model))
    require_drsformer(scfg, "quantization-aware training (quantize.qat_steps, drsedge qat)", str(inputs.model))
    teacher = load_any(resolve(inputs.teacher or inputs.model))[0]
    lr = options.qat_lr
    cfg = TrainConfig(steps=options.qat_steps, batch_size=options.qat_batch_size, patch=options.qat_patch, lr=lr, seed=seed,
                      checkpoint_every=max(1, options.qat_steps), eta_mins=[lr, lr * 0.01], zero_init_output=False)
    qmodel = insert_quantizers(student, inputs.calibration.inputs)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="drsedge-qat-", dir=Path(out).parent) as d:
        res = train(qmodel, inputs.training(cfg), cfg, d, teacher=teacher, progress=progress, log=log, device=device, precision=precision)
    export_qat_onnx(qmodel, out, opset=opset)
    return {"qat_steps": res["step"], "qat_final_loss": res["loss"]}
