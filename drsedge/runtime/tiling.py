"""Upstream test.py pre/post-processing: reflect-pad to a multiple of 8 and overlapped tiling.

Source: DRSformer ``test.py`` (pad right/bottom with ``F.pad(..., 'reflect')``;
tiles of ``tile`` px with stride ``tile - overlap``, row starts
``range(0, H - tile, stride) + [H - tile]``, outputs summed and divided by the
per-pixel count).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Forward = Callable[[torch.Tensor], torch.Tensor]


def pad_to_multiple(x: torch.Tensor, multiple: int = 8) -> torch.Tensor:
    """Reflect-pad ``[B, C, H, W]`` on the right/bottom so H and W are multiples of ``multiple``.

    Raises:
        ValueError: if a side is too small for reflect padding (pad >= side).
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    if ph >= h or pw >= w:
        raise ValueError(f"image {w}x{h} is too small to reflect-pad to a multiple of {multiple}")
    return F.pad(x, (0, pw, 0, ph), mode="reflect")


def tile_starts(size: int, tile: int, stride: int) -> list[int]:
    """Tile start offsets along one axis, exactly as upstream: ``list(range(0, size - tile, stride)) + [size - tile]``."""
    return [*list(range(0, size - tile, stride)), size - tile]


def tiled_forward(forward: Forward, x: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
    """Run ``forward`` on overlapping ``tile x tile`` crops of ``[B, C, H, W]`` and average the overlaps.

    ``tile`` is clipped to ``min(H, W)`` and must be a multiple of 8; ``overlap < tile``.

    Raises:
        ValueError: on a tile that is not a multiple of 8 or an overlap >= tile.
    """
    b, _c, h, w = x.shape
    tile = min(tile, h, w)
    if tile % 8:
        raise ValueError(f"tile size {tile} must be a multiple of 8")
    if not 0 <= overlap < tile:
        raise ValueError(f"tile overlap {overlap} must be in [0, {tile})")
    stride = tile - overlap
    acc = None
    count = torch.zeros(b, 1, h, w, dtype=x.dtype)
    for i in tile_starts(h, tile, stride):
        for j in tile_starts(w, tile, stride):
            out = forward(x[..., i : i + tile, j : j + tile])
            if acc is None:
                acc = torch.zeros(b, out.shape[1], h, w, dtype=out.dtype)
            acc[..., i : i + tile, j : j + tile] += out
            count[..., i : i + tile, j : j + tile] += 1
    return acc / count


def static_tiled(forward: Forward, x: torch.Tensor, th: int, tw: int, overlap: int = 64) -> torch.Tensor:
    """Run a fixed-size model (``th x tw`` input, e.g. a UDR-S2Former export) on any ``[B, C, H, W]``: a frame smaller
    than the tile is padded (reflect, or replicate when too small to reflect) and cropped back; a larger one is cut
    into overlapping ``th x tw`` tiles (stride ``tile - overlap``, upstream UDR-S2Former test.py: 320 tiles, overlap
    64) whose outputs are averaged.

    Raises:
        ValueError: an overlap that is negative or not below both tile sides.
    """
    if not 0 <= overlap < min(th, tw):
        raise ValueError(f"tile overlap {overlap} must be in [0, {min(th, tw)})")
    b, _c, h, w = x.shape
    ph, pw = max(th - h, 0), max(tw - w, 0)
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")
    hh, ww = x.shape[-2:]
    acc, count = None, torch.zeros(b, 1, hh, ww, dtype=x.dtype)
    for i in tile_starts(hh, th, th - overlap) if hh > th else [0]:
        for j in tile_starts(ww, tw, tw - overlap) if ww > tw else [0]:
            out = forward(x[..., i : i + th, j : j + tw])
            if acc is None:
                acc = torch.zeros(b, out.shape[1], hh, ww, dtype=out.dtype)
            acc[..., i : i + th, j : j + tw] += out
            count[..., i : i + th, j : j + tw] += 1
    return (acc / count)[..., :h, :w]


def restore(forward: Forward, x: torch.Tensor, tile: int | None = None, overlap: int = 32, clamp: bool = True) -> torch.Tensor:
    """Derain ``[B, 3, H, W]`` in [0, 1] like upstream test.py: pad to x8, forward (tiled if ``tile``), crop, clamp to [0, 1]."""
    h, w = x.shape[-2:]
    xp = pad_to_multiple(x, 8)
    y = tiled_forward(forward, xp, tile, overlap) if tile else forward(xp)
    y = y[..., :h, :w]
    return y.clamp(0, 1) if clamp else y
