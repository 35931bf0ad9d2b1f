"""``drsedge export``: ONNX export (FP32, or mixed FP16 with measured FP32 islands)."""

from __future__ import annotations

from pathlib import Path

from drsedge.choices import ONNX_PRECISIONS
from drsedge.deploy_defaults import FRAME_TEXT
from drsedge.run_config import ExportSection, cli_choice

from .args import POS, hw, int_type, onnx_out


def cmd_export(a) -> int:
    from drsedge.fileio import refuse_overwrite
    from drsedge.run_config import ExportSection, make_options
    from drsedge.stages import export

    refuse_overwrite(a.output, [a.model], "ONNX output")
    size = list(hw(a.size)) if a.size else None
    opts = make_options(ExportSection, "drsedge export", {"fp16_frames": "--limit", "fp16": "--precision"}, opset=a.opset, exporter=a.exporter, attention=a.attention, fp16_safe=a.fp16_safe,
                        structure=a.structure, size=size, fp16=a.precision == "fp16", fp16_frames=a.limit)
    out = Path(a.output)
    fp32 = out.with_name(out.stem + "_fp32.onnx") if opts.fp16 else out  # --precision fp16: -o is the FP16 file
    res = export.run(opts, export.ExportInputs(a.model, fp16_images=a.images), fp32, fp16_out=out, project_hw=hw(a.project),
                     check_pyop=a.check_pyop)
    if "parity_pyop" in res.detail:
        print("ORT custom-op (pyop) kernel vs PyTorch max abs: " + ", ".join(f"{k} {v:.2e}" for k, v in res.detail["parity_pyop"].max_abs.items()))
    print(f"onnx: {fp32}; ORT vs PyTorch at {', '.join(res.metrics['parity_max_abs'])}: {res.metrics['parity']}")
    if opts.fp16:
        r = res.detail["fp16"]
        print(f"fp16 onnx: {out} (FP32 reference kept as {fp32}); {r.fp16_nodes}/{r.total_nodes} nodes FP16, "
              f"FP32 islands: {len(r.islands)}; vs FP32 ONNX on {res.detail['fp16_frames']} real frames (ONNX Runtime CPU): "
              f"PSNR {r.mean_psnr:.1f} dB, max |err| {max(r.max_abs_vs_fp32.values()):.2e}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("export", help="export a model to ONNX (DRSformer: dynamic H/W; UDR-S2Former: --size) and check it in ONNX Runtime")
    p.add_argument("model", help="model checkpoint")
    p.add_argument("-o", "--output", required=True, type=onnx_out, help="ONNX file to write (.onnx)")
    p.add_argument("--opset", type=int_type(16), default=cli_choice(ExportSection, "opset")["default"], help="17+ (16: UDR-S2Former for TensorRT 8.5, LayerNorm decomposed)")
    p.add_argument("--size", metavar="HxW", help="static-shape families (UDR-S2Former): the engine's frame size, multiples of 64 "
                                                 "(default: the model's img_size); the runtime tiles other sizes with it")
    p.add_argument("--exporter", **cli_choice(ExportSection, "exporter"))
    p.add_argument("--structure", **cli_choice(ExportSection, "structure"),
                   help="deploy: re-parameterized blocks (MSFN without Slice/Concat, q/k/v without chunk, LayerNorm affine folded) "
                        "+ onnxslim, same numbers, ~1.8x faster in ONNX Runtime CPU; upstream: the trained structure as is")
    p.add_argument("--check-pyop", action="store_true", help="with --attention fused: also check the onnxruntime-extensions kernel (slow)")
    p.add_argument("--attention", **cli_choice(ExportSection, "attention"),
                   help="fused: top-k attention as one drsedge::TopKSparseSoftmax node (TensorRT plugin; ONNX function fallback)")
    p.add_argument("--precision", choices=ONNX_PRECISIONS, default="fp32",
                   help="fp16: mixed-precision ONNX (FP16 with FP32 islands where --images overflow FP16), for strongly typed TensorRT")
    p.add_argument("--images", nargs="+", metavar="DIR", help="with --precision fp16: real rainy frames (not the test set)")
    p.add_argument("--limit", type=POS, default=cli_choice(ExportSection, "fp16_frames")["default"], help="with --precision fp16: frames measured")
    p.add_argument("--project", default=FRAME_TEXT, metavar="HxW", help="with --precision fp16: frame size sums over pixels are projected to")
    p.add_argument("--fp16-safe", action="store_true",
                   help="LayerNorm and q/k normalisation in a bounded form (same FP32 output) so FP16 engines need no FP32 layers")
    p.set_defaults(fn=cmd_export)
