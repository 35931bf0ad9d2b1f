"""Image decode/encode with Pillow: any PNG/JPEG flavour in, ``[H, W, 3]`` float32 RGB in [0, 1] out."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from drsedge.errors import DrsedgeError, NonFiniteError
from drsedge.fileio import atomic_write

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
MIN_SIDE = 8
MAX_PIXELS = 64_000_000  # 64 MP (8K frames are 33 MP); checked from the header before decoding


def check_frame_size(h: int, w: int, what: str) -> None:
    """Refuse an ``h x w`` frame size (px) over :data:`MAX_PIXELS` before anything of that size is allocated.

    Raises:
        DrsedgeError: one line naming ``what`` (the flag or config key) and the limit.
    """
    if h * w > MAX_PIXELS:
        raise DrsedgeError(f"{what} {h}x{w}: {h * w / 1e6:.0f} MP is over drsedge's {MAX_PIXELS // 1_000_000} MP frame limit; "
                           "use a smaller size (MACs and latency scale with H x W)")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image to ``[H, W, 3]`` float32 RGB in [0, 1].

    Gray (L, I;16), palette, RGBA/LA (alpha dropped) and 16-bit PNGs are
    accepted; 16-bit data is scaled by 1/65535, 8-bit by 1/255. Floating-point images (Pillow mode ``F``,
    e.g. 32-bit float TIFF) are scaled by their range: values in [0, 1] are taken as they are, values in
    [0, 255] are divided by 255 (the two conventions float images are written in).

    Raises:
        DrsedgeError: missing, corrupt or truncated file, a side < 8 px, more than 64 MP
            (read from the header, before any pixel is decoded: a decompression bomb costs nothing), or a
            float image with NaN/Inf or values outside [0, 255].
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():  # our own header check below refuses large images with a clearer message
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise DrsedgeError(f"{path}: image is {w}x{h} ({w * h / 1e6:.0f} MP), over drsedge's {MAX_PIXELS // 1_000_000} MP limit; "
                                   "resize it or remove it from the folder")
            im.load()
            mode = im.mode
            if mode == "F":
                arr = np.asarray(im, dtype=np.float64)
                if not np.isfinite(arr).all():
                    raise DrsedgeError(f"{path}: float image holds NaN or Inf; replace or remove the file")
                lo, hi = float(arr.min()), float(arr.max())
                if lo < 0.0 or hi > 255.0:
                    raise DrsedgeError(f"{path}: float image with values in [{lo:g}, {hi:g}]; drsedge reads float images in "
                                       "[0, 1] or [0, 255]: rescale it")
                arr = np.repeat((arr if hi <= 1.0 else arr / 255.0)[..., None], 3, axis=2)
            elif mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64)
                scale = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
                arr = np.repeat((arr / scale)[..., None], 3, axis=2)
            else:
                arr = np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
    except FileNotFoundError:
        raise DrsedgeError(f"{path}: image not found") from None
    except DrsedgeError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError, EOFError) as e:
        raise DrsedgeError(f"{path}: cannot decode image ({e}); replace or remove the file") from None
    h, w = arr.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise DrsedgeError(f"{path}: image is {w}x{h}, smaller than {MIN_SIDE} px on a side; remove it from the folder")
    return np.clip(arr, 0.0, 1.0).astype(np.float32)


def to_tensor(img: np.ndarray):
    """``[H, W, 3]`` float32 -> ``[1, 3, H, W]`` torch float32."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]


def to_uint8(img) -> np.ndarray:
    """``[H, W, 3]`` or ``[1, 3, H, W]`` float in [0, 1] -> ``[H, W, 3]`` uint8, clamped and rounded (as upstream test.py's ``img_as_ubyte``)."""
    if hasattr(img, "detach"):  # a torch tensor
        img = img.detach().cpu().numpy()
    if img.ndim == 4:
        img = img[0].transpose(1, 2, 0)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def read_uint8(path: str | os.PathLike) -> np.ndarray:
    """Decode to ``[H, W, 3]`` uint8 RGB (8-bit files bit-exact; 16-bit rounded)."""
    return to_uint8(read_image(path))


def write_image(path: str | os.PathLike, img) -> Path:
    """Write a float [0, 1] image as 8-bit PNG/JPEG, atomically (temp file + rename).

    Raises:
        NonFiniteError: the image holds NaN or Inf (nothing is written).
    """
    data = img.detach().cpu().numpy() if hasattr(img, "detach") else np.asarray(img)
    if not np.isfinite(data).all():
        raise NonFiniteError(f"{path}: image to write holds NaN or Inf; nothing written")
    arr = to_uint8(img)
    path = Path(path)
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    return atomic_write(path, lambda tmp: Image.fromarray(arr).save(tmp, format=fmt))


def _natural_key(p: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.stem)]


def is_image_file(p: Path) -> bool:
    """An image file by suffix; hidden files (``.name``: leftovers of interrupted atomic writes) are not."""
    return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")


def image_files(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in ``folder`` in natural order (2 before 10), no guard applied (the held-out guard's own
    index builder reads the held-out folder with it; everything else uses :func:`drsedge.data.folders.list_images`)."""
    return sorted((p for p in Path(folder).iterdir() if is_image_file(p)), key=_natural_key)
