"""The one tiler: upstream test.py's padding and overlapped tiling, for torch tensors and numpy arrays alike (torch-free).

Source: DRSformer ``test.py`` (pad right/bottom by reflection to a multiple of 8; tiles of ``tile`` px with stride
``tile - overlap``, row starts ``range(0, H - tile, stride) + [H - tile]``, outputs summed and divided by the per-pixel
count). Used by :mod:`drsedge.runtime.tiling` (PyTorch) and :func:`drsedge.runtime.onnx_np.restore_np` (numpy).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drsedge.errors import DrsedgeError


class TileError(DrsedgeError, ValueError):
    """A tile size, overlap or image that cannot be tiled/padded (a ValueError for library callers, exit 2 in the CLI)."""


def tile_starts(size: int, tile: int, stride: int) -> list[int]:
    """Tile start offsets along one axis, exactly as upstream: ``list(range(0, size - tile, stride)) + [size - tile]``."""
    return [*range(0, size - tile, stride), size - tile]


def pad_amounts(h: int, w: int, multiple: int = 8) -> tuple[int, int]:
    """Bottom/right reflect-pad ``(ph, pw)`` that make ``h x w`` multiples of ``multiple``.

    Raises:
        TileError: a side too small to reflect-pad (pad >= side).
    """
    ph, pw = (-h) % multiple, (-w) % multiple
    if (ph or pw) and (ph >= h or pw >= w):
        raise TileError(f"image {w}x{h} is too small to reflect-pad to a multiple of {multiple}")
    return ph, pw


def square_tile(tile: int, overlap: int, h: int, w: int) -> int:
    """``tile`` clipped to ``min(h, w)``, checked: a multiple of 8 and ``0 <= overlap < tile``.

    Raises:
        TileError: otherwise.
    """
    t = min(tile, h, w)
    if t % 8:
        raise TileError(f"tile size {t} must be a multiple of 8")
    if not 0 <= overlap < t:
        raise TileError(f"tile overlap {overlap} must be in [0, {t})")
    return t


def overlap_average(forward: Callable[[Any], Any], x: Any, th: int, tw: int, overlap: int, zeros: Callable[..., Any]) -> Any:
    """``forward`` on overlapping ``th x tw`` crops of ``x`` ``[B, C, H, W]`` (torch or numpy), overlaps averaged.

    Along a side no longer than its tile there is one tile at 0 (``x`` must be at least the tile there); ``zeros(shape)``
    allocates an accumulator of ``x``'s kind and dtype. Returns ``[B, C_out, H, W]``.

    Raises:
        TileError: an overlap that is negative or not below both tile sides.
    """
    if not 0 <= overlap < min(th, tw):
        raise TileError(f"tile overlap {overlap} must be in [0, {min(th, tw)})")
    b, _c, h, w = x.shape
    acc, count = None, zeros((b, 1, h, w))
    for i in tile_starts(h, th, th - overlap) if h > th else [0]:
        for j in tile_starts(w, tw, tw - overlap) if w > tw else [0]:
            out = forward(x[..., i : i + th, j : j + tw])
            if acc is None:
                acc = zeros((b, out.shape[1], h, w))
            acc[..., i : i + th, j : j + tw] += out
            count[..., i : i + th, j : j + tw] += 1
    return acc / count
