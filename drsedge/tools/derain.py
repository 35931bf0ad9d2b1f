"""``drsedge derain``: derain a folder with a checkpoint or ONNX model."""

from __future__ import annotations

from pathlib import Path

from drsedge.errors import DrsedgeError

from .args import MULT8, NONNEG


def cmd_derain(a) -> int:
    from drsedge.data.folders import find_unlabeled
    from drsedge.data.images import read_image, to_tensor, write_image
    from drsedge.fileio import refuse_overwrite
    from drsedge.models.checkpoint import load_any
    from drsedge.runtime.runners import OrtRunner, TorchRunner
    from drsedge.runtime.tiling import restore

    files = find_unlabeled(a.input)
    refuse_overwrite(a.output, [a.input, files[0].parent], "output folder")
    stems: dict[str, Path] = {}
    for f in files:
        if f.stem in stems:
            raise DrsedgeError(f"{f}: same name as {stems[f.stem]}; both would be written to {a.output}/{f.stem}.png; rename one")
        stems[f.stem] = f
    if a.tile is not None and a.tile_overlap >= a.tile:
        raise DrsedgeError(f"--tile-overlap {a.tile_overlap} must be smaller than --tile {a.tile}")
    runner = OrtRunner(a.model) if str(a.model).endswith(".onnx") else TorchRunner(load_any(a.model)[0], str(a.model))
    for f in files:
        write_image(Path(a.output) / f"{f.stem}.png", restore(runner, to_tensor(read_image(f)), tile=a.tile, overlap=a.tile_overlap))
    print(f"wrote {len(files)} images to {a.output}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("derain", help="derain a folder of images with a checkpoint or ONNX model")
    p.add_argument("model")
    p.add_argument("input")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--tile", type=MULT8)
    p.add_argument("--tile-overlap", type=NONNEG, default=32)
    p.set_defaults(fn=cmd_derain)
