"""``drsedge qat``: quantization-aware fine-tuning of a student into an INT8 Q/DQ ONNX (when PTQ is not enough)."""

from __future__ import annotations

import time

from drsedge.errors import DrsedgeError
from drsedge.run_config import QuantizeSection

from .args import MULT8, NONNEG, POS, float_type, onnx_out, training_data
from .args.calibration import CalibrationArgs

CALIBRATION = CalibrationArgs(crop_from_model=False)


def cmd_qat(a) -> int:
    from drsedge.fileio import refuse_overwrite
    from drsedge.run_config import make_options
    from drsedge.stages import quantize
    from drsedge.weights import resolve

    refuse_overwrite(a.output, [resolve(a.model)], "QAT output")
    if not a.train and not a.unlabeled:
        raise DrsedgeError("qat needs training images: --train (paired) and/or --unlabeled folders, not the test set")
    opts = make_options(QuantizeSection, "drsedge qat", {"qat_steps": "--steps", "qat_lr": "--lr", "qat_batch_size": "--batch-size", "qat_patch": "--patch", "size": "--crop"}, qat_steps=a.steps, qat_lr=a.lr, qat_batch_size=a.batch_size, qat_patch=a.patch,
                        size=a.size, limit=a.limit)
    t0 = time.time()
    inputs = quantize.QuantizeInputs(CALIBRATION.parse(a), model=a.model, teacher=a.teacher,
                                     training=lambda cfg: training_data(a, False, cfg))
    res = quantize.run(opts, inputs, a.output, how="qat", seed=a.seed, progress=not a.quiet, device=a.device, precision=a.precision)
    m = res.metrics
    print(f"qat int8: {a.output} ({m['qat_steps']} steps, loss {m['qat_final_loss']:.4f}, {m['calibration_images']} calibration images, "
          f"{time.time() - t0:.0f} s, {{'QuantizeLinear': {m['QuantizeLinear']}, 'DequantizeLinear': {m['DequantizeLinear']}}})")
    return 0


def _default(field: str):
    return QuantizeSection.model_fields[field].default


def register(sub) -> None:
    p = sub.add_parser("qat", help="quantization-aware fine-tuning (NNCF) of a student into an INT8 Q/DQ ONNX")
    p.add_argument("model", help="student checkpoint (.safetensors, shipped:student)")
    CALIBRATION.add(p)
    p.add_argument("-o", "--output", required=True, type=onnx_out, help="INT8 Q/DQ ONNX to write (.onnx)")
    p.add_argument("--teacher", help="distil from this model (default: the FP32 student itself, which keeps the INT8 output close to it)")
    p.add_argument("--unlabeled", nargs="+", metavar="DIR", help="rainy images without ground truth (teacher terms only)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--train", nargs="+", metavar="DIR", help="paired folders (not the test set)")
    # quantize.qat_steps is 0 in a run config (0 there means PTQ); `drsedge qat` is asked for QAT, so it trains 200 steps
    p.add_argument("--steps", type=NONNEG, default=200, help="optimizer steps (default 200; 0: NNCF's calibrated ranges only)")
    p.add_argument("--batch-size", type=POS, default=_default("qat_batch_size"))
    p.add_argument("--patch", type=MULT8, default=_default("qat_patch"), help="training crop side in px")
    p.add_argument("--lr", type=float_type(0.0, inclusive=False), default=_default("qat_lr"), help="peak learning rate (%(default)s)")
    p.add_argument("--seed", type=NONNEG, default=0)
    p.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    p.set_defaults(fn=cmd_qat)
