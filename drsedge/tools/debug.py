"""``drsedge debug``: inspection: FP16 range, per-layer drift, Polygraphy comparison."""

from __future__ import annotations

import sys

from drsedge.deploy_defaults import FRAME_TEXT
from drsedge.errors import DrsedgeError

from .args import EXIT_BUDGET, POS, add_compare_args, float_type, hw


def cmd_fp16_check(a) -> int:
    from drsedge.export.fp16_range import FP16_MAX, fp16_overflows, fp16_ranges
    from drsedge.stages import data

    ph, pw = hw(a.project)
    images = data.calibration(a.images, None, a.limit, a.onnx)  # whole frames; a static export: crops of its size
    ranges = fp16_ranges(a.onnx, images.inputs, (ph, pw))
    bad = fp16_overflows(ranges)
    top = sorted(ranges, key=lambda r: -r.projected)[:10]
    sizes = {f"{x.shape[2]}x{x.shape[3]}" for x in images.inputs}
    print(f"## FP16 range: {a.onnx} ({len(images.files)} images at {', '.join(sorted(sizes))}; {len(ranges)} nodes; projected to {ph}x{pw})")
    print("\n| node | module | op | peak | projected | x FP16 max |\n|---|---|---|---|---|---|")
    for r in top:
        print(f"| {r.node} | {r.module} | {r.op_type} | {r.peak:.4g} | {r.projected:.4g} | {r.projected / FP16_MAX:.2f} |")
    if bad:
        print(f"drsedge: {len(bad)} node(s) exceed the FP16 range (65504): keep them in FP32 (build-engine default) "
              f"or re-export with `drsedge export --fp16-safe`", file=sys.stderr)
        return EXIT_BUDGET
    print("no node exceeds the FP16 range")
    return 0


def cmd_localize(a) -> int:
    from drsedge.stages.check import localization_report

    if a.test is None and a.trt is None:
        raise DrsedgeError("localize: give TEST.onnx (ONNX Runtime) or --trt fp32|fp16|int8 (TensorRT engine, GPU)")
    print(localization_report(a.ref, a.test, a.images, size=a.size, limit=a.limit, threshold=a.threshold, top=a.top, trt=a.trt, plugin=a.plugin))
    return 0


def cmd_compare(a) -> int:
    from drsedge.backend.compare import compare_outputs
    from drsedge.calibration.calib import calibration_set

    if a.test is None and a.trt is None:
        raise DrsedgeError("compare: give TEST.onnx (ONNX Runtime) or --trt fp32|fp16|int8 (TensorRT engine, GPU)")
    images = calibration_set(a.images, size=a.size, limit=a.limit)
    r = compare_outputs(a.ref, images.inputs, a.test, a.trt, a.plugin, a.atol, a.rtol)
    what = f"TensorRT {a.trt} ({a.test or a.ref})" if a.trt else a.test
    print(f"{what} vs ONNX Runtime {a.ref} on {len(images.files)} real images: max |err| {r.max_abs:.3g}, mean {r.mean_abs:.3g} "
          f"(Polygraphy simple compare, atol {a.atol:g}, rtol {a.rtol:g}): {'PASS' if r.passed else 'FAIL'}")
    return 0 if r.passed else EXIT_BUDGET


def register(sub) -> None:
    p = sub.add_parser("fp16-check", help="which layers of an FP32 ONNX would overflow in an FP16 engine, on real images")
    p.add_argument("onnx")
    p.add_argument("--images", nargs="+", required=True, metavar="DIR", help="rainy images at deployment size (not the test set)")
    p.add_argument("--limit", type=POS, default=4)
    p.add_argument("--project", default=FRAME_TEXT, metavar="HxW", help="frame size to project sums over the pixels to")
    p.set_defaults(fn=cmd_fp16_check)
    p = sub.add_parser("localize", help="per-layer drift of one ONNX model against another (e.g. INT8 vs FP32) on real images")
    add_compare_args(p)
    p.add_argument("--threshold", type=float_type(0.0, inclusive=False), default=0.05, help="relative error that marks a layer")
    p.add_argument("--top", type=POS, default=10)
    p.set_defaults(fn=cmd_localize)
    p = sub.add_parser("compare", help="Polygraphy: does ONNX Runtime / a TensorRT engine agree with the reference ONNX on real images?")
    add_compare_args(p)
    p.add_argument("--atol", type=float_type(), default=1e-3)
    p.add_argument("--rtol", type=float_type(), default=1e-3)
    p.set_defaults(fn=cmd_compare)
