"""``drsedge derain``: derain a folder with a checkpoint or ONNX model."""

from __future__ import annotations

from pathlib import Path

from drsedge.errors import DrsedgeError

from .args import MULT8, NONNEG


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
    if str(a.model).endswith(".onnx"):  # the torch-free path (drsedge[runtime])
        from drsedge.runtime.onnx_np import OnnxModel, restore_np

        model = OnnxModel(a.model)

        def derain(img):
            return restore_np(model, img, tile=a.tile, overlap=a.tile_overlap)
    else:
        from drsedge.data.images import to_tensor
        from drsedge.models.checkpoint import load_any
        from drsedge.runtime.runners import TorchRunner
        from drsedge.runtime.tiling import restore

        runner = TorchRunner(load_any(a.model)[0], str(a.model))

        def derain(img):
            return restore(runner, to_tensor(img), tile=a.tile, overlap=a.tile_overlap)
    for f in files:
        write_image(Path(a.output) / f"{f.stem}.png", derain(read_image(f)))
    print(f"wrote {len(files)} images to {a.output}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("derain", help="derain a folder of images with a checkpoint or ONNX model (ONNX: no PyTorch needed)")
    p.add_argument("model")
    p.add_argument("input")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--tile", type=MULT8)
    p.add_argument("--tile-overlap", type=NONNEG, default=32)
    p.set_defaults(fn=cmd_derain)
