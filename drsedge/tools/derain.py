"""``drsedge derain``: derain a folder with an ONNX model, a TensorRT engine or a checkpoint."""

from __future__ import annotations

from pathlib import Path

from drsedge.errors import DrsedgeError

from .args import MULT8, NONNEG, add_plugin_arg


def cmd_derain(a) -> int:
    from drsedge.data.folders import find_unlabeled
    from drsedge.data.images import read_image, write_image
    from drsedge.fileio import refuse_overwrite

    files = find_unlabeled(a.input)
    refuse_overwrite(a.output, [a.input, files[0].parent], "output folder")
    stems: dict[str, Path] = {}
    for f in files:
        if f.stem in stems:
            raise DrsedgeError(f"{f}: same name as {stems[f.stem]}; both would be written to {a.output}/{f.stem}.png; rename one")
        stems[f.stem] = f
    if a.tile is not None and a.tile_overlap >= a.tile:
        raise DrsedgeError(f"--tile-overlap {a.tile_overlap} must be smaller than --tile {a.tile}")
    from drsedge.runtime.frame_models import open_frame_model
    from drsedge.runtime.limits import plan_tile
    from drsedge.runtime.onnx_np import restore_np

    model = open_frame_model(a.model, a.provider, a.plugin)  # ONNX and engines: no PyTorch (drsedge[runtime])
    for f in files:  # every input decodes before the first output is written (a truncated 2nd file must not leave a 1.png)
        read_image(f)

    def derain(img):
        t = plan_tile(model.limits, *img.shape[:2], a.tile, a.tile_overlap, str(a.model))
        return restore_np(model, img, tile=t, overlap=a.tile_overlap)

    for f in files:
        write_image(Path(a.output) / f"{f.stem}.png", derain(read_image(f)))
    print(f"wrote {len(files)} images to {a.output}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("derain", help="derain a folder of images with an ONNX model, TensorRT engine or checkpoint "
                       "(ONNX and engines: no PyTorch needed)")
    p.add_argument("model", help="ONNX model, TensorRT engine (.engine/.plan + .json sidecar) or checkpoint (shipped:student too)")
    p.add_argument("input")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--provider", choices=("cpu", "cuda", "tensorrt", "openvino"), default="cpu",
                   help="ONNX models: ONNX Runtime execution provider, or openvino (OpenVINO CPU runtime; INT8 Q/DQ runs as INT8)")
    add_plugin_arg(p)
    p.add_argument("--tile", type=MULT8, help="tile side in px; default: whole images, or the largest tile the model takes")
    p.add_argument("--tile-overlap", type=NONNEG, default=32)
    p.set_defaults(fn=cmd_derain)
