"""Near-copies of held-out test images: JPEG re-saves, small rescales and crops of Rain100L files.

Two stages, both against an index shipped with the package (``rain100l_near.npz``, built by
:func:`build_index` from ``../shared/data/rain100L``; nothing at run time needs the test set itself):

1. **Candidates by perceptual hash** (``imagehash.phash``: DCT of the 32x32 grayscale image, 64 bits; Zauner,
   "Implementation and Benchmarking of Perceptual Image Hash Functions", 2010). The index holds, per held-out
   file, the hash of the whole image and of 18 crops (2.5 % and 5 % off one side, two sides at a corner, or all
   sides), so a cropped copy meets a hash of nearly the same crop. A file whose hash lies within
   :data:`HASH_RADIUS` bits of one is a candidate.
2. **Confirmation by PSNR** against a 96-px grayscale thumbnail of the matched held-out file: the file, resized
   to the matched crop's box, is aligned within +-1.5 px (half-pixel steps) and +-3 % scale, and both are compared
   after a 2x2 mean; above :data:`MIN_PSNR_DB` it is a copy. Measured: copies (JPEG q70, 10 % rescale, 5 % crops)
   >= 31 dB; another image <= 23 dB, except Rain100L's own pairs that share a background (>= 24 dB, all held out).

Rates measured on this machine (``benchmarks/heldout_near_copies.py``, README "Data layout"): every JPEG
q70-q100, 0.9x/1.1x rescale and 5 % crop of all 200 Rain100L files detected (2,000 copies); 0 false positives among
the 527 non-held-out images of ``../shared/data`` (the 3 files found there are true copies of Rain100L test pair 1,
one pixel larger).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

INDEX_FILE = Path(__file__).with_name("rain100l_near.npz")
HASH_RADIUS = 12  # bits of 64: the nearest crop hash of every measured copy lies within it; unrelated images >= 14 from the whole-image hash
MIN_PSNR_DB = 28.0  # 2x2 means of the aligned 96-px thumbnails: copies >= 31 dB; another image <= 23 dB unless it shares the background
MAX_CANDIDATES = 8  # held-out files confirmed per query (a rainy input and its target share a hash)
THUMB = 96  # long side of the stored thumbnails (px)
CROPS = (0.025, 0.05)
# crop boxes (x0, y0, x1, y1) as fractions of the held-out image: the whole image, then per fraction c the image with
# c removed from all sides (centred), from one side, or from the two sides at a corner
_SIDES = [(1, 1, 1, 1), (1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 1, 0), (0, 0, 0, 1), (1, 1, 0, 0), (0, 1, 1, 0), (0, 0, 1, 1), (1, 0, 0, 1)]


def crop_boxes() -> np.ndarray:
    """``[V, 4]`` float crop boxes (x0, y0, x1, y1) in [0, 1] of the index's hash variants (row 0: the whole image)."""
    boxes = [(0.0, 0.0, 1.0, 1.0)]
    for c in CROPS:
        for left, top, right, bottom in _SIDES:
            f = c / 2 if (left, top, right, bottom) == (1, 1, 1, 1) else c
            boxes.append((left * f, top * f, 1 - right * f, 1 - bottom * f))
    return np.asarray(boxes, np.float64)


def _phash(im: Image.Image) -> int:
    import imagehash

    bits = imagehash.phash(im).hash.flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def _gray(im: Image.Image) -> Image.Image:
    return im.convert("RGB").convert("L")


def _thumb(im: Image.Image) -> np.ndarray:
    w, h = im.size
    s = THUMB / max(w, h)
    return np.asarray(_gray(im).resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BOX), np.float32) / 255.0


def build_index(folder: str | os.PathLike, out: str | os.PathLike = INDEX_FILE) -> Path:
    """Write the near-copy index of every image under ``folder`` (the held-out set) to ``out`` (``.npz``): names,
    ``[N, V]`` uint64 crop hashes, the ``[V, 4]`` boxes and ``[N]`` thumbnails. Atomic."""
    from drsedge.fileio import atomic_write

    from .images import image_files

    folder = Path(folder)
    files = [f for sub in sorted(p for p in folder.iterdir() if p.is_dir()) for f in image_files(sub)]
    boxes = crop_boxes()
    names, hashes, thumbs = [], [], []
    for f in files:
        with Image.open(f) as im:
            im = im.convert("RGB")
            w, h = im.size
            hashes.append([_phash(im.crop((round(x0 * w), round(y0 * h), round(x1 * w), round(y1 * h)))) for x0, y0, x1, y1 in boxes])
            thumbs.append(np.round(_thumb(im) * 255).astype(np.uint8))
        names.append(f"{f.parent.name}/{f.name}")
    arrays = {"names": np.asarray(names), "hashes": np.asarray(hashes, np.uint64), "boxes": boxes}
    arrays.update({f"thumb_{i}": t for i, t in enumerate(thumbs)})
    return atomic_write(out, lambda tmp: np.savez_compressed(open(tmp, "wb"), **arrays))


@dataclass(frozen=True)
class NearCopy:
    """A file found to be a copy of held-out file ``name`` (``input/N.png``): hash distance (bits) and PSNR (dB)
    of the aligned thumbnails."""

    name: str
    distance: int
    psnr_db: float


@functools.lru_cache(maxsize=1)
def _index():
    with np.load(INDEX_FILE) as z:
        names = [str(n) for n in z["names"]]
        return names, z["hashes"].astype(np.uint64), z["boxes"], [z[f"thumb_{i}"].astype(np.float32) / 255.0 for i in range(len(names))]


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.unpackbits(x.view(np.uint8).reshape(*x.shape, 8), axis=-1).sum(-1)


def _half(x: np.ndarray) -> np.ndarray:
    """2x2 mean: sub-pixel resampling differences (the box's bilinear resample vs the file's box downscale) are below
    this scale, so a copy is not marked down on textured images (rain streaks) for them."""
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    return x[:h, :w].reshape(h // 2, 2, w // 2, 2).mean((1, 3))


def _aligned_psnr(img: Image.Image, thumb: np.ndarray, box: np.ndarray, fine: bool = True) -> float:
    """Best PSNR (dB) between ``img`` and the part ``box`` of the held-out ``thumb``: the thumbnail's box is resampled
    at sub-pixel positions (Pillow ``resize(box=...)``) to the size of ``img`` scaled to thumbnail resolution, over
    shifts of +-1 px (``fine``: +-1.5 px in half-pixel steps and scales of +-3 %), compared after a 2x2 mean."""
    th, tw = thumb.shape
    bw, bh = (box[2] - box[0]) * tw, (box[3] - box[1]) * th
    w, h = max(4, round(bw)), max(4, round(bh))
    a = np.asarray(_gray(img).resize((w, h), Image.Resampling.BOX), np.float32) / 255.0
    pad = 4  # edge-replicated border: a shifted or enlarged box may reach past the thumbnail by a few px
    t = Image.fromarray(np.pad(thumb.astype(np.float32), pad, mode="edge"), mode="F")
    cx, cy = (box[0] + box[2]) / 2 * tw + pad, (box[1] + box[3]) / 2 * th + pad
    shifts = np.arange(-1.5, 1.75, 0.5) if fine else (-1.0, 0.0, 1.0)
    best = 0.0
    for s in (0.97, 1.0, 1.03) if fine else (1.0,):
        for dy in shifts:
            for dx in shifts:
                x0, y0 = cx + dx - bw * s / 2, cy + dy - bh * s / 2
                ref = np.asarray(t.resize((w, h), Image.Resampling.BILINEAR, box=(x0, y0, x0 + bw * s, y0 + bh * s)), np.float32)
                mse = float(np.mean((_half(ref) - _half(a)) ** 2))
                best = max(best, 10 * np.log10(1.0 / max(mse, 1e-10)))
    return best


def near_copy(path: str | os.PathLike) -> NearCopy | None:
    """The held-out file ``path`` is a near-copy of, or None. Files Pillow cannot read are None (the loaders refuse
    them with their own message)."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            h = np.uint64(_phash(im))
            names, hashes, boxes, thumbs = _index()
            d = _popcount(hashes ^ h)  # [N, V]
            best: NearCopy | None = None
            for i in np.argsort(d.min(1), kind="stable")[:MAX_CANDIDATES]:
                if d[i].min() > HASH_RADIUS:
                    break
                if (im.size[0] >= im.size[1]) != (thumbs[i].shape[1] >= thumbs[i].shape[0]):
                    continue  # portrait vs landscape must agree with the held-out file's
                boxes_i = np.flatnonzero(d[i] <= HASH_RADIUS)  # hashes tie across nearby crops: a coarse look at each box
                v = max(boxes_i, key=lambda k: _aligned_psnr(im, thumbs[i], boxes[k], fine=False))
                psnr = _aligned_psnr(im, thumbs[i], boxes[v])  # then the fine alignment on the best one
                if psnr >= MIN_PSNR_DB and (best is None or psnr > best.psnr_db):
                    best = NearCopy(names[i], int(d[i, v]), round(psnr, 2))
            return best
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return None


def rebuild(folder: str | os.PathLike) -> None:
    """Rewrite the three held-out lists shipped with the package from the held-out folder (``input/`` + ``target/``):
    ``rain100l_sha256.txt`` (file bytes), ``rain100l_pixels.txt`` (H W sha256 of the decoded uint8 RGB pixels) and
    ``rain100l_near.npz`` (:func:`build_index`). ``tests/data/test_heldout_lists.py`` ties them to the folder.

        python -m drsedge.data.near_copy ../shared/data/rain100L
    """
    import hashlib

    from drsedge.fileio import atomic_write, sha256

    from .images import image_files, read_uint8

    folder = Path(folder)
    files = [f for sub in ("input", "target") for f in image_files(folder / sub)]
    if not files:
        raise SystemExit(f"{folder}: no images in input/ and target/")
    here = Path(__file__).parent
    n = len(files) // 2
    hashes = sorted({sha256(f) for f in files})
    head = f"# sha256 of the file bytes of the Rain100L test pairs 1-{n} (input/ and target/) in ../shared/data/rain100L\n"
    atomic_write(here / "rain100l_sha256.txt", lambda tmp: Path(tmp).write_text(head + "\n".join(hashes) + "\n"))
    rows = set()
    for f in files:
        a = read_uint8(f)
        rows.add(f"{a.shape[0]} {a.shape[1]} {hashlib.sha256(a.tobytes()).hexdigest()}")
    head = (f"# sha256 of the decoded pixels ([H, W, 3] uint8 RGB, drsedge.data.images.read_uint8) of the Rain100L test pairs 1-{n}\n"
            "# (input/ and target/) in ../shared/data/rain100L, with H and W: a re-encoded copy (another PNG writer, 16-bit, alpha)\n"
            "# has other bytes but the same pixels. Format: H W sha256\n")
    atomic_write(here / "rain100l_pixels.txt", lambda tmp: Path(tmp).write_text(head + "\n".join(sorted(rows)) + "\n"))
    build_index(folder)


if __name__ == "__main__":
    import sys

    rebuild(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/rain100L")
