"""``drsedge derain``: derain a folder with an ONNX model, a TensorRT engine or a checkpoint."""

from __future__ import annotations

from pathlib import Path

from drsedge.errors import DrsedgeError

from .args import add_plugin_arg
from .args.tiling import add_tiling_args


def _targets(src: Path, output: str) -> list[tuple[Path, Path]]:
    """(input image, output PNG/JPEG) pairs: a folder -> ``OUTPUT/<stem>.png``; one image -> ``OUTPUT`` itself when it
    names an image file (.png/.jpg/.jpeg), else ``OUTPUT/<stem>.png``."""
    from drsedge.data.folders import IMAGE_SUFFIXES, find_unlabeled, is_image_file
    from drsedge.fileio import refuse_overwrite

    out = Path(output)
    if src.is_file():
        if not is_image_file(src):
            raise DrsedgeError(f"{src}: not an image ({', '.join(IMAGE_SUFFIXES)}); give an image or a folder of images")
        dst = out if out.suffix.lower() in (".png", ".jpg", ".jpeg") else out / f"{src.stem}.png"
        if out.suffix and out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
            raise DrsedgeError(f"{output}: derain writes PNG or JPEG; name the output .png/.jpg or give a folder")
        refuse_overwrite(dst, [src], "output image")
        return [(src, dst)]
    files = find_unlabeled(src)
    refuse_overwrite(output, [src, files[0].parent], "output folder")
    stems: dict[str, Path] = {}
    for f in files:
        if f.stem in stems:
            raise DrsedgeError(f"{f}: same name as {stems[f.stem]}; both would be written to {output}/{f.stem}.png; rename one")
        stems[f.stem] = f
    return [(f, out / f"{f.stem}.png") for f in files]


def cmd_derain(a) -> int:
    from drsedge.data.images import read_image, write_image

    jobs = _targets(Path(a.input), a.output)
    from drsedge.runtime.frame_models import open_frame_model
    from drsedge.runtime.limits import plan_tiles
    from drsedge.runtime.onnx_np import restore_np

    model = open_frame_model(a.model, a.provider, a.plugin)  # ONNX and engines: no PyTorch (drsedge[runtime])
    for f, _ in jobs:  # every input decodes before the first output is written (a truncated 2nd file must not leave a 1.png)
        read_image(f)

    with model:
        for f, dst in jobs:
            img = read_image(f)
            write_image(dst, restore_np(model, img, tile=plan_tiles(model.limits, *img.shape[:2], a.tile, a.tile_overlap, str(a.model))))
    print(f"wrote {len(jobs)} image{'s' if len(jobs) > 1 else ''} to {a.output}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("derain", help="derain an image or a folder of images with an ONNX model, TensorRT engine or checkpoint "
                       "(ONNX and engines: no PyTorch needed)")
    p.add_argument("model", help="ONNX model, TensorRT engine (.engine/.plan + .json sidecar) or checkpoint (shipped:student too)")
    p.add_argument("input", help="a folder of images, or one image")
    p.add_argument("-o", "--output", required=True, help="output folder (<stem>.png per input); for one image also a .png/.jpg path")
    p.add_argument("--provider", choices=("cpu", "cuda", "tensorrt", "openvino"), default="cpu",
                   help="ONNX models: ONNX Runtime execution provider, or openvino (OpenVINO CPU runtime; INT8 Q/DQ runs as INT8)")
    add_plugin_arg(p)
    add_tiling_args(p)
    p.set_defaults(fn=cmd_derain)
