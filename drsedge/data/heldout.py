"""The held-out guard, in one place: rain100L (and a run's own test set) never feeds training,
distillation, calibration, validation or synthetic-rain sources.

A path is refused when its name or its resolved target (symlinks followed) names rain100L, or when
any image file under it is a copy of a held-out image:

- the same bytes (sha256) as a Rain100L test image (all 200 files of pairs 1-100 in ``../shared/data/rain100L``,
  listed in ``rain100l_sha256.txt``) or as a file of the ``test_dirs`` passed in (the pipeline passes ``data.test``);
- the same decoded pixels (8-bit RGB, ``rain100l_pixels.txt``; only files whose header size matches are decoded):
  another PNG writer, 16-bit, an alpha channel;
- a near-copy (:mod:`drsedge.data.near_copy`: perceptual hash, then PSNR against the matched held-out thumbnail):
  JPEG re-saves, rescales, small crops, the same scene 1 px larger.

A file-level copy can be left out instead of refused: inside :func:`leave_out_copies` (``--skip-held-out-copies``,
``data.skip_held_out_copies``) the guard records it, prints one line, and the folder readers
(:mod:`drsedge.data.folders`) skip it and its pair. Public training sets need this: ``rain200L/train`` pair 1 and
``rain200H/train`` target 1 in ``../shared/data`` are Rain100L test pair 1 one pixel larger (the PReNet layout).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from PIL import Image

from drsedge.errors import DrsedgeError
from drsedge.fileio import sha256

from .images import IMAGE_SUFFIXES, read_uint8

HELD_OUT = "rain100l"
_HASH_FILE = Path(__file__).with_name("rain100l_sha256.txt")
_PIXEL_FILE = Path(__file__).with_name("rain100l_pixels.txt")


@functools.lru_cache(maxsize=1)
def held_out_hashes() -> frozenset[str]:
    """sha256 of the Rain100L test files' bytes (shipped with the package)."""
    lines = _HASH_FILE.read_text().splitlines()
    return frozenset(s.strip() for s in lines if s.strip() and not s.startswith("#"))


@functools.lru_cache(maxsize=1)
def held_out_pixels() -> frozenset[tuple[int, int, str]]:
    """(H, W, sha256 of the ``[H, W, 3]`` uint8 RGB pixels) of the Rain100L test files (shipped with the package)."""
    rows = [s.split() for s in _PIXEL_FILE.read_text().splitlines() if s.strip() and not s.startswith("#")]
    return frozenset((int(h), int(w), d) for h, w, d in rows)


def _pixel_key(f: Path) -> tuple[int, int, str]:
    st = f.stat()
    return _pixel_key_of(str(f), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=1 << 17)
def _pixel_key_of(path: str, _mtime_ns: int, _size: int) -> tuple[int, int, str]:
    """(H, W, sha256 of the uint8 RGB pixels), cached per file version (a run guards the same test set many times)."""
    a = read_uint8(path)
    return a.shape[0], a.shape[1], hashlib.sha256(a.tobytes()).hexdigest()


def _header_hw(f: Path) -> tuple[int, int] | None:
    """(H, W) from the image header (nothing decoded); None when Pillow cannot read it (the loaders refuse it later)."""
    try:
        with Image.open(f) as im:
            return im.size[1], im.size[0]
    except Exception:  # any unreadable file is the loaders' to refuse, with their message
        return None


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


_LEFT_OUT: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("drsedge_left_out", default=None)


@contextlib.contextmanager
def leave_out_copies(enabled: bool = True) -> Iterator[None]:
    """Within this context (when ``enabled``), a file that copies a held-out image is left out of the data (one line on
    stderr) instead of refused; a folder named or linked to rain100L is still refused."""
    token = _LEFT_OUT.set(set() if enabled else None)
    try:
        yield
    finally:
        _LEFT_OUT.reset(token)


def is_left_out(path: str | os.PathLike) -> bool:
    """True when the guard left ``path`` out in the active :func:`leave_out_copies` context."""
    left = _LEFT_OUT.get()
    return bool(left) and os.path.realpath(path) in left


@functools.lru_cache(maxsize=1 << 17)  # per file version; a Rain13K-sized set (27k files) is hashed once per process
def _near_copy_of(path: str, _mtime_ns: int, _size: int):
    from .near_copy import near_copy

    return near_copy(path)


def _copy_reason(f: Path, known: set[str], pixels: set, sizes: set) -> str | None:
    """Why ``f`` is a copy of a held-out image, or None."""
    if sha256(f) in known:
        return "same bytes as a held-out test image (rain100L or data.test)"
    hw = _header_hw(f)
    if hw in sizes and _pixel_key(f) in pixels:
        return "same pixels as a held-out test image (rain100L or data.test), re-encoded"
    if hw is not None:
        st = f.stat()
        hit = _near_copy_of(str(f), st.st_mtime_ns, st.st_size)
        if hit is not None:
            return (f"a near-copy of Rain100L test image {hit.name} (perceptual hash {hit.distance} bits off, "
                    f"{hit.psnr_db:.1f} dB on aligned thumbnails: re-encoded, rescaled or cropped)")
    return None


def guard_not_held_out(paths: Iterable[str | os.PathLike], purpose: str, test_dirs: Iterable[str | os.PathLike] = ()) -> None:
    """Refuse any of ``paths`` (files or folders) that is, links to, or contains a held-out test image (see module
    docstring); inside :func:`leave_out_copies`, a copied file is left out instead (one line on stderr).

    Raises:
        DrsedgeError: one line naming the offending path, why, and ``purpose`` (e.g. "training").
    """
    paths = [Path(p) for p in paths]
    for p in paths:
        if HELD_OUT in str(p).lower() or HELD_OUT in str(p.resolve()).lower():
            raise DrsedgeError(f"{p}: rain100L is the held-out test set; it cannot be used for {purpose}")
    test_files = [f for d in test_dirs for f in _image_files(Path(d))]
    test_bytes = {f: sha256(f) for f in test_files}
    known = held_out_hashes() | set(test_bytes.values())
    pixels = held_out_pixels() | {_pixel_key(f) for f, h in test_bytes.items() if h not in held_out_hashes()}
    sizes = {(h, w) for h, w, _ in pixels}
    test_real = {os.path.realpath(f) for f in test_files}
    left = _LEFT_OUT.get()
    for p in paths:
        for f in _image_files(p):
            if HELD_OUT in os.path.realpath(f).lower():
                raise DrsedgeError(f"{f}: links into rain100L, the held-out test set; it cannot be used for {purpose}")
            real = os.path.realpath(f)
            if real in test_real:
                raise DrsedgeError(f"{f}: is a file of the held-out test set (data.test); it cannot be used for {purpose}")
            if left is not None and real in left:
                continue
            reason = _copy_reason(f, known, pixels, sizes)
            if reason is None:
                continue
            if left is None:
                raise DrsedgeError(f"{f}: {reason}; it cannot be used for {purpose}. Remove it, or leave such files out "
                                   "with --skip-held-out-copies (run config: data.skip_held_out_copies: true)")
            left.add(real)
            print(f"note: left out {f} ({purpose}): {reason}", file=sys.stderr)
