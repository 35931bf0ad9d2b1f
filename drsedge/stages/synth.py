"""Synthetic-rain stage: rain streaks and/or lens raindrops rendered on clean photos (:mod:`drsedge.data.synth_rain`)
into ``input/`` + ``target/`` pairs that join the training data."""

from __future__ import annotations

import json
import os
from pathlib import Path

from drsedge.run_config import SyntheticSection

from .result import StageResult


def run(options: SyntheticSection, clean: list[Path], out_dir: str | os.PathLike) -> StageResult:
    """Render ``options`` (preset, pairs per image, seed, limit) on the images of the ``clean`` folders into ``out_dir``
    (emptied first when an earlier run of
    this stage made it, so a changed config leaves no pair of the old one; a folder the stage did not make is refused).

    Artifacts: ``index`` (the JSON list of pair names). Metrics: pairs written, preset.

    Raises:
        DrsedgeError: an empty or unreadable clean folder.
    """
    from drsedge.data.synth_rain import synth_rain
    from drsedge.fileio import atomic_write, owned_stage_dir

    out_dir = owned_stage_dir(out_dir, clear=True)  # only a folder this stage made is cleared (never a user's `synth/`)
    res = synth_rain(clean, out_dir, preset=options.preset, per_image=options.per_image, seed=options.seed, limit=options.limit)
    names = sorted(p.name for p in (out_dir / "input").iterdir())
    index = atomic_write(out_dir / "index.json", lambda tmp: Path(tmp).write_text(json.dumps(names)))
    return StageResult({"index": index}, {"pairs": res["pairs"], "preset": res["preset"]})
