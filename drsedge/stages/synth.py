"""Synthetic-rain stage: rain streaks and/or lens raindrops rendered on clean photos (:mod:`drsedge.data.synth_rain`)
into ``input/`` + ``target/`` pairs that join the training data."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from drsedge.run_config import SyntheticSection

from .result import StageResult


def run(options: SyntheticSection, clean: list[Path], out_dir: str | os.PathLike) -> StageResult:
    """Render ``options`` (preset, pairs per image, seed, limit) on the images of the ``clean`` folders into ``out_dir``
    (emptied first, so a changed config leaves no pair of the old one).

    Artifacts: ``index`` (the JSON list of pair names). Metrics: pairs written, preset.

    Raises:
        DrsedgeError: an empty or unreadable clean folder.
    """
    from drsedge.data.synth_rain import synth_rain
    from drsedge.fileio import atomic_write

    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    res = synth_rain(clean, out_dir, preset=options.preset, per_image=options.per_image, seed=options.seed, limit=options.limit)
    names = sorted(p.name for p in (out_dir / "input").iterdir())
    index = atomic_write(out_dir / "index.json", lambda tmp: Path(tmp).write_text(json.dumps(names)))
    return StageResult({"index": index}, {"pairs": res["pairs"], "preset": res["preset"]})
