"""``drsedge quantize``: INT8 Q/DQ by post-training quantization, optionally within a ΔPSNR budget."""

from __future__ import annotations

import time

from drsedge.errors import DrsedgeError
from drsedge.run_config import QuantizeSection, cli_choice

from .args import NONNEG, POS, float_type, onnx_out
from .args.calibration import CalibrationArgs

CALIBRATION = CalibrationArgs(crop_from_model=True)


def cmd_quantize(a) -> int:
    from drsedge.data.folders import find_pairs
    from drsedge.fileio import refuse_overwrite
    from drsedge.run_config import make_options
    from drsedge.stages import quantize

    refuse_overwrite(a.output, [a.onnx], "INT8 output")
    # a static export (UDR-S2Former, AST) takes crops of its own size only; a missing ONNX is refused after the
    # calibration images' held-out check
    opts = make_options(QuantizeSection, "drsedge quantize", {"size": "--crop", "budget_db": "--budget", "min_fidelity_db": "--min-fidelity"}, backend=a.backend, high_precision=a.high_precision, size=CALIBRATION.crop(a, a.onnx), limit=a.limit,
                        quantize_depthwise=a.quantize_depthwise, keep_float=a.keep_float, budget_db=a.budget,
                        min_fidelity_db=a.min_fidelity, val_limit=a.val_limit, max_steps=a.max_steps, candidates=a.candidates,
                        granularity=a.granularity)
    if quantize.method(opts) == "search" and not a.val:
        raise DrsedgeError("--budget / --min-fidelity need --val DIR: paired validation images (not the test set)")
    t0 = time.time()
    inputs = quantize.QuantizeInputs(CALIBRATION.parse(a, a.onnx), a.onnx)
    if a.val:
        inputs.validation, inputs.validation_name = find_pairs(a.val, opts.val_limit), a.val
    res = quantize.run(opts, inputs, a.output)
    m = res.metrics
    if m["method"] == "search":
        print(f"int8: {a.output} ({a.backend}, keep-float {m['keep_float'] or 'none'}, {time.time() - t0:.0f} s)")
    else:
        qdq = {k: m[k] for k in ("QuantizeLinear", "DequantizeLinear")}
        print(f"int8: {a.output} ({a.backend}, {m['calibration_images']} calibration images, {time.time() - t0:.0f} s, {qdq})")
    return 0


def register(sub) -> None:
    p = sub.add_parser("quantize", help="INT8 Q/DQ ONNX by post-training quantization on real rainy images")
    p.add_argument("onnx")
    CALIBRATION.add(p)
    p.add_argument("-o", "--output", required=True, type=onnx_out, help="INT8 Q/DQ ONNX to write (.onnx)")
    p.add_argument("--backend", **cli_choice(QuantizeSection, "backend"),
                   help="nncf: Q/DQ on weighted-op inputs (TensorRT/OpenVINO); ort: ONNX Runtime QDQ (fuses into "
                        "QLinearConv on ORT CPU); modelopt: NVIDIA ModelOpt PTQ (TensorRT placement; pip install -e '.[modelopt]')")
    p.add_argument("--high-precision", **cli_choice(QuantizeSection, "high_precision"),
                   help="modelopt: float type of the unquantized part (fp16 for TensorRT targets, fp32 for CPU)")
    p.add_argument("--quantize-depthwise", action="store_true", help="also quantize depthwise convs (slower in ORT CPU here)")
    p.add_argument("--keep-float", nargs="+", metavar="MODULE", help="PyTorch modules to keep in float, e.g. latent.1.attn (see `drsedge localize`)")
    p.add_argument("--budget", type=float_type(), metavar="DB",
                   help="largest PSNR-Y drop vs FP32 on --val: keep the worst modules in float, one per step, until it holds")
    p.add_argument("--min-fidelity", type=float_type(), metavar="DB",
                   help="smallest PSNR-Y of the INT8 output against the FP32 output on every --val image (e.g. 45); "
                        "keeps modules in float until it holds (with --budget: both)")
    p.add_argument("--val", metavar="DIR", help="paired validation folder for --budget / --min-fidelity (not the held-out test set)")
    p.add_argument("--val-limit", type=POS, default=cli_choice(QuantizeSection, "val_limit")["default"])
    p.add_argument("--max-steps", type=NONNEG, default=cli_choice(QuantizeSection, "max_steps")["default"], help="units --budget may keep in float")
    p.add_argument("--candidates", type=POS, default=cli_choice(QuantizeSection, "candidates")["default"], help="units quantized and measured per --budget step")
    p.add_argument("--granularity", **cli_choice(QuantizeSection, "granularity"),
                   help="--budget unit: a top-level stage (decoder_level1, output, ...) or a single module")
    p.set_defaults(fn=cmd_quantize)
