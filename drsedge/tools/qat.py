"""``drsedge qat``: quantization-aware fine-tuning of a student into an INT8 Q/DQ ONNX (when PTQ is not enough)."""

from __future__ import annotations

import time

from drsedge.errors import DrsedgeError

from .args import MULT8, NONNEG, POS, training_data
from .args import float_type as _float_type


def cmd_qat(a) -> int:
    import copy
    import tempfile

    from drsedge.calibration.calib import calibration_set
    from drsedge.compress.qat import export_qat_onnx, insert_quantizers
    from drsedge.compress.quantize import count_qdq
    from drsedge.fileio import refuse_overwrite
    from drsedge.models.checkpoint import load_any
    from drsedge.models.config import require_drsformer
    from drsedge.training.loop import TrainConfig, train
    from drsedge.weights import resolve

    refuse_overwrite(a.output, [resolve(a.model)], "QAT output")
    student, scfg = load_any(resolve(a.model))
    require_drsformer(scfg, "quantization-aware training", a.model)
    teacher = load_any(resolve(a.teacher))[0] if a.teacher else copy.deepcopy(student)  # default: the FP32 student itself
    calib = calibration_set(a.calib, size=a.size, limit=a.limit)
    t0 = time.time()
    qmodel = insert_quantizers(student, calib.inputs)
    # a warm start: no zero-initialised output conv; a small constant-then-cosine lr from --lr down to 1 % of it
    if not a.train and not a.unlabeled:
        raise DrsedgeError("qat needs training images: --train (paired) and/or --unlabeled folders, not the test set")
    cfg = TrainConfig(steps=a.steps, batch_size=a.batch_size, patch=a.patch, lr=a.lr, seed=a.seed,
                      checkpoint_every=max(1, a.steps), eta_mins=[a.lr, a.lr * 0.01], zero_init_output=False)
    with tempfile.TemporaryDirectory(prefix="drsedge-qat-") as d:
        res = train(qmodel, training_data(a, False, cfg), cfg, d, teacher=teacher, progress=not a.quiet, device=a.device,
                    precision=a.precision)
    path = export_qat_onnx(qmodel, a.output)
    print(f"qat int8: {path} ({res['step']} steps, loss {res['loss']:.4f}, {len(calib.files)} calibration images, "
          f"{time.time() - t0:.0f} s, {count_qdq(path)})")
    return 0


def register(sub) -> None:
    p = sub.add_parser("qat", help="quantization-aware fine-tuning (NNCF) of a student into an INT8 Q/DQ ONNX")
    p.add_argument("model", help="student checkpoint (.safetensors, shipped:student)")
    p.add_argument("--calib", nargs="+", required=True, metavar="DIR", help="rainy images for the initial ranges (not the test set)")
    p.add_argument("-o", "--output", required=True, help="INT8 Q/DQ ONNX to write")
    p.add_argument("--teacher", help="distil from this model (default: the FP32 student itself, which keeps the INT8 output close to it)")
    p.add_argument("--unlabeled", nargs="+", metavar="DIR", help="rainy images without ground truth (teacher terms only)")
    p.add_argument("--crop", "--size", dest="size", type=MULT8, default=128, help="calibration crop side in px")
    p.add_argument("--limit", type=POS, default=16, help="number of calibration images")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--train", nargs="+", metavar="DIR", help="paired folders (not the test set)")
    p.add_argument("--steps", type=NONNEG, default=200, help="optimizer steps (default 200)")
    p.add_argument("--batch-size", type=POS, default=4)
    p.add_argument("--patch", type=MULT8, default=64, help="training crop side in px")
    p.add_argument("--lr", type=_float_type(0.0, inclusive=False), default=1e-5, help="peak learning rate (default 1e-5)")
    p.add_argument("--seed", type=NONNEG, default=0)
    p.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    p.set_defaults(fn=cmd_qat)
