"""``drsedge export``: ONNX export (FP32, or mixed FP16 with measured FP32 islands)."""

from __future__ import annotations

import sys  # noqa: F401
from pathlib import Path  # noqa: F401

from drsedge.errors import DrsedgeError

from .args import POS
from .args import hw as _hw
from .args import int_type as _int_type


def cmd_export(a) -> int:
    from drsedge.export.onnx_export import check_parity, export_onnx, is_static_family, parity_ok
    from drsedge.fileio import refuse_overwrite
    from drsedge.models.checkpoint import load_any

    refuse_overwrite(a.output, [a.model], "ONNX output")
    model, _ = load_any(a.model)
    if a.precision == "fp16" and is_static_family(model):
        raise DrsedgeError("--precision fp16: the mixed-precision ONNX of UDR-S2Former is not supported yet (onnxconverter-common "
                           "mistypes its FP32 rank/sampling casts); export FP32 and build FP16 on weakly typed TensorRT (< 10.12)")
    if a.precision == "fp16" and not a.images:
        raise DrsedgeError("--precision fp16 needs --images DIR: real rainy frames (not the test set) to find the FP32 islands")
    size = _hw(a.size) if a.size else None
    path = export_onnx(model, a.output, opset=a.opset, exporter=a.exporter, attention=a.attention, fp16_safe=a.fp16_safe, size=size,
                       structure=a.structure)
    try:
        parity = check_parity(model, path)
        if a.attention == "fused" and a.check_pyop:
            parity_pyop = check_parity(model, path, fused_kernel="pyop")
    except BaseException:
        path.unlink(missing_ok=True)  # no unchecked artifact
        raise
    if a.attention == "fused" and a.check_pyop:
        print("ORT custom-op (pyop) kernel vs PyTorch max abs: " + ", ".join(f"{k} {v:.2e}" for k, v in parity_pyop.max_abs.items()))
    ok, summary = parity_ok(model, parity)
    print(f"onnx: {path}; ORT vs PyTorch at {', '.join(parity.max_abs)}: {summary}")
    if not ok:  # NaN fails too
        path.unlink()
        raise DrsedgeError(f"{a.output}: ONNX Runtime differs from PyTorch: {summary}; file removed")
    if a.precision == "fp16":
        from drsedge.calibration.calib import calibration_set
        from drsedge.export.fp16 import convert_fp16

        fp32_path = path.with_name(path.stem + "_fp32.onnx")
        path.replace(fp32_path)
        try:
            images = calibration_set(a.images, size=None, limit=a.limit)
            res = convert_fp16(fp32_path, path, images.inputs, [f.name for f in images.files], _hw(a.project))
        except BaseException:
            fp32_path.unlink(missing_ok=True)  # no artifact of a failed export
            raise
        print(f"fp16 onnx: {path} (FP32 reference kept as {fp32_path}); {res.fp16_nodes}/{res.total_nodes} nodes FP16, "
              f"FP32 islands: {len(res.islands)}; vs FP32 ONNX on {len(images.files)} real frames (ONNX Runtime CPU): "
              f"PSNR {res.mean_psnr:.1f} dB, max |err| {max(res.max_abs_vs_fp32.values()):.2e}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("export", help="export a model to ONNX (DRSformer: dynamic H/W; UDR-S2Former: --size) and check it in ONNX Runtime")
    p.add_argument("model", help="model checkpoint")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--opset", type=_int_type(16), default=17, help="17+ (16: UDR-S2Former for TensorRT 8.5, LayerNorm decomposed)")
    p.add_argument("--size", metavar="HxW", help="static-shape families (UDR-S2Former): the engine's frame size, multiples of 64 "
                                                 "(default: the model's img_size); the runtime tiles other sizes with it")
    p.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript")
    p.add_argument("--structure", choices=("deploy", "upstream"), default="deploy",
                   help="deploy: re-parameterized blocks (MSFN without Slice/Concat, q/k/v without chunk, LayerNorm affine folded) "
                        "+ onnxslim, same numbers, ~1.8x faster in ONNX Runtime CPU; upstream: the trained structure as is")
    p.add_argument("--check-pyop", action="store_true", help="with --attention fused: also check the onnxruntime-extensions kernel (slow)")
    p.add_argument("--attention", choices=("native", "fused"), default="native",
                   help="fused: top-k attention as one drsedge::TopKSparseSoftmax node (TensorRT plugin; ONNX function fallback)")
    p.add_argument("--precision", choices=("fp32", "fp16"), default="fp32",
                   help="fp16: mixed-precision ONNX (FP16 with FP32 islands where --images overflow FP16), for strongly typed TensorRT")
    p.add_argument("--images", nargs="+", metavar="DIR", help="with --precision fp16: real rainy frames (not the test set)")
    p.add_argument("--limit", type=POS, default=4, help="with --precision fp16: frames measured")
    p.add_argument("--project", default="720x1280", metavar="HxW", help="with --precision fp16: frame size sums over pixels are projected to")
    p.add_argument("--fp16-safe", action="store_true",
                   help="LayerNorm and q/k normalisation in a bounded form (same FP32 output) so FP16 engines need no FP32 layers")
    p.set_defaults(fn=cmd_export)
