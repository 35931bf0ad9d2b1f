"""``drsedge quantize``: INT8 Q/DQ by post-training quantization, optionally within a ΔPSNR budget."""

from __future__ import annotations

import sys
import time

from drsedge.errors import DrsedgeError

from .args import EXIT_BUDGET, MULT8, NONNEG, POS
from .args import float_type as _float_type


def cmd_quantize(a) -> int:
    from drsedge.calibration.calib import calibration_set
    from drsedge.compress.quantize import count_qdq, quantize_onnx
    from drsedge.fileio import refuse_overwrite

    refuse_overwrite(a.output, [a.onnx], "INT8 output")
    calib = calibration_set(a.calib, size=a.size, limit=a.limit)
    t0 = time.time()
    if a.budget is not None or a.min_fidelity is not None:
        from drsedge.compress.keep_float import search_keep_float
        from drsedge.data.folders import find_pairs

        if not a.val:
            raise DrsedgeError("--budget / --min-fidelity need --val DIR: paired validation images (not the test set)")
        res = search_keep_float(a.onnx, a.output, calib, find_pairs(a.val, a.val_limit), budget_db=a.budget, backend=a.backend,
                                quantize_depthwise=a.quantize_depthwise, keep_float=a.keep_float, max_steps=a.max_steps,
                                candidates=a.candidates, granularity=a.granularity, min_fidelity_db=a.min_fidelity,
                                high_precision=a.high_precision)
        print(res.table())
        if not res.ok:
            print(f"drsedge: no INT8 model meets its targets after {len(res.steps) - 1} step(s); nothing written "
                  "(raise --max-steps or the budget, lower --min-fidelity, or ship FP32/FP16)", file=sys.stderr)
            return EXIT_BUDGET
        print(f"int8: {a.output} ({a.backend}, keep-float {res.steps[-1].keep_float or 'none'}, {time.time() - t0:.0f} s)")
        return 0
    path = quantize_onnx(a.onnx, a.output, calib, a.backend, a.quantize_depthwise, a.keep_float, a.high_precision)
    print(f"int8: {path} ({a.backend}, {len(calib.files)} calibration images, {time.time() - t0:.0f} s, {count_qdq(path)})")
    return 0


def register(sub) -> None:
    p = sub.add_parser("quantize", help="INT8 Q/DQ ONNX by post-training quantization on real rainy images")
    p.add_argument("onnx")
    p.add_argument("--calib", nargs="+", required=True, metavar="DIR", help="folders of rainy images (not the test set)")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--backend", choices=("nncf", "ort", "modelopt"), default="nncf",
                   help="nncf: Q/DQ on weighted-op inputs (TensorRT/OpenVINO); ort: ONNX Runtime QDQ (fuses into "
                        "QLinearConv on ORT CPU); modelopt: NVIDIA ModelOpt PTQ (TensorRT placement; pip install -e '.[modelopt]')")
    p.add_argument("--high-precision", choices=("fp32", "fp16"), default="fp32",
                   help="modelopt: float type of the unquantized part (fp16 for TensorRT targets, fp32 for CPU)")
    p.add_argument("--crop", "--size", dest="size", type=MULT8, default=128, help="calibration crop side in px (multiple of 8)")
    p.add_argument("--limit", type=POS, default=32, help="number of calibration images")
    p.add_argument("--quantize-depthwise", action="store_true", help="also quantize depthwise convs (slower in ORT CPU here)")
    p.add_argument("--keep-float", nargs="+", metavar="MODULE", help="PyTorch modules to keep in float, e.g. latent.1.attn (see `drsedge localize`)")
    p.add_argument("--budget", type=_float_type(), metavar="DB",
                   help="largest PSNR-Y drop vs FP32 on --val: keep the worst modules in float, one per step, until it holds")
    p.add_argument("--min-fidelity", type=_float_type(), metavar="DB",
                   help="smallest PSNR-Y of the INT8 output against the FP32 output on every --val image (e.g. 45); "
                        "keeps modules in float until it holds (with --budget: both)")
    p.add_argument("--val", metavar="DIR", help="paired validation folder for --budget / --min-fidelity (not the held-out test set)")
    p.add_argument("--val-limit", type=POS, default=4)
    p.add_argument("--max-steps", type=NONNEG, default=4, help="units --budget may keep in float")
    p.add_argument("--candidates", type=POS, default=3, help="units quantized and measured per --budget step")
    p.add_argument("--granularity", choices=("stage", "module"), default="stage",
                   help="--budget unit: a top-level stage (decoder_level1, output, ...) or a single module")
    p.set_defaults(fn=cmd_quantize)
