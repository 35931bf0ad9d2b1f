"""The held-out guard, in one place: rain100L (and a run's own test set) never feeds training,
distillation, calibration, validation or synthetic-rain sources.

A path is refused when its name or its resolved target (symlinks followed) names rain100L, or when
any image file under it has the same bytes (sha256) as a Rain100L test image (the 100 files of
pairs 1-50 in ``../shared/data/rain100L``, listed in ``rain100l_sha256.txt``) or as a file of the
``test_dirs`` passed in (the pipeline passes ``data.test``). Copies and links are therefore caught,
not only the folder name.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from pathlib import Path

from drsedge.errors import DrsedgeError
from drsedge.fileio import sha256

from .images import IMAGE_SUFFIXES

HELD_OUT = "rain100l"
_HASH_FILE = Path(__file__).with_name("rain100l_sha256.txt")


@functools.lru_cache(maxsize=1)
def held_out_hashes() -> frozenset[str]:
    """sha256 of the Rain100L test files' bytes (shipped with the package)."""
    lines = _HASH_FILE.read_text().splitlines()
    return frozenset(s.strip() for s in lines if s.strip() and not s.startswith("#"))


def _image_files(p: Path) -> list[Path]:
    """Image files under ``p``, following symlinked folders (``Path.rglob`` does not before Python 3.13, so a folder
    holding a link to rain100L's ``input/`` would pass unseen); each real folder is read once (link cycles end)."""
    if p.is_file():
        return [p]
    if not p.is_dir():
        return []
    out: list[Path] = []
    seen: set[str] = set()
    for root, dirs, files in os.walk(p, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        out += [Path(root, f) for f in sorted(files) if Path(f).suffix.lower() in IMAGE_SUFFIXES and not f.startswith(".")]
    return out


def _hashes_under(dirs: Iterable[str | os.PathLike]) -> set[str]:
    return {sha256(f) for d in dirs for f in _image_files(Path(d))}


def guard_not_held_out(paths: Iterable[str | os.PathLike], purpose: str, test_dirs: Iterable[str | os.PathLike] = ()) -> None:
    """Refuse any of ``paths`` (files or folders) that is, links to, or contains a held-out test image.

    Raises:
        DrsedgeError: one line naming the offending path and ``purpose`` (e.g. "training").
    """
    paths = [Path(p) for p in paths]
    for p in paths:
        if HELD_OUT in str(p).lower() or HELD_OUT in str(p.resolve()).lower():
            raise DrsedgeError(f"{p}: rain100L is the held-out test set; it cannot be used for {purpose}")
    known = held_out_hashes() | _hashes_under(test_dirs)
    for p in paths:
        for f in _image_files(p):
            if HELD_OUT in os.path.realpath(f).lower():
                raise DrsedgeError(f"{f}: links into rain100L, the held-out test set; it cannot be used for {purpose}")
            if sha256(f) in known:
                raise DrsedgeError(f"{f}: same bytes as a held-out test image (rain100L or data.test); it cannot be used for {purpose}")
