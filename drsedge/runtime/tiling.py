"""Upstream test.py pre/post-processing for PyTorch tensors: reflect-pad to a multiple of 8 and overlapped tiling.

The tile plan (starts, checks, averaging) is :mod:`drsedge.runtime.tile_plan`, shared with the torch-free runtime.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .tile_plan import TileError, overlap_average, pad_amounts, square_tile, tile_starts

__all__ = ["Forward", "TileError", "pad_to_multiple", "restore", "static_tiled", "tile_starts", "tiled_forward"]

Forward = Callable[[torch.Tensor], torch.Tensor]


def pad_to_multiple(x: torch.Tensor, multiple: int = 8) -> torch.Tensor:
    """Reflect-pad ``[B, C, H, W]`` on the right/bottom so H and W are multiples of ``multiple``.

    Raises:
        TileError (a ValueError): if a side is too small for reflect padding (pad >= side).
    """
    ph, pw = pad_amounts(*x.shape[-2:], multiple)
    return F.pad(x, (0, pw, 0, ph), mode="reflect") if ph or pw else x


def tiled_forward(forward: Forward, x: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
    """Run ``forward`` on overlapping ``tile x tile`` crops of ``[B, C, H, W]`` and average the overlaps.

    ``tile`` is clipped to ``min(H, W)`` and must be a multiple of 8; ``overlap < tile``.

    Raises:
        TileError (a ValueError): on a tile that is not a multiple of 8 or an overlap >= tile.
    """
    t = square_tile(tile, overlap, *x.shape[-2:])
    return overlap_average(forward, x, t, t, overlap, lambda shape: x.new_zeros(shape))


def static_tiled(forward: Forward, x: torch.Tensor, th: int, tw: int, overlap: int = 64) -> torch.Tensor:
    """Run a fixed-size model (``th x tw`` input, e.g. a UDR-S2Former export) on any ``[B, C, H, W]``: a frame smaller
    than the tile is padded (reflect, or replicate when too small to reflect) and cropped back; a larger one is cut
    into overlapping ``th x tw`` tiles (stride ``tile - overlap``, upstream UDR-S2Former test.py: 320 tiles, overlap
    64) whose outputs are averaged.

    Raises:
        TileError (a ValueError): an overlap that is negative or not below both tile sides.
    """
    if not 0 <= overlap < min(th, tw):
        raise TileError(f"tile overlap {overlap} must be in [0, {min(th, tw)})")
    h, w = x.shape[-2:]
    ph, pw = max(th - h, 0), max(tw - w, 0)
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")
    out = overlap_average(forward, x, th, tw, overlap, lambda shape: x.new_zeros(shape))
    return out[..., :h, :w]


def restore(forward: Forward, x: torch.Tensor, tile: int | None = None, overlap: int | None = None, clamp: bool = True) -> torch.Tensor:
    """Derain ``[B, 3, H, W]`` in [0, 1] like upstream test.py: pad to x8, forward (tiled if ``tile``), crop, clamp to [0, 1].

    ``overlap`` None: the default of :func:`drsedge.runtime.limits.plan_tiles` (32 px, at most a quarter of the tile),
    so ``drsedge check --tile T`` tiles as ``drsedge derain --tile T`` does."""
    h, w = x.shape[-2:]
    xp = pad_to_multiple(x, 8)
    if tile and overlap is None:
        from .limits import ShapeLimits, plan_tiles

        overlap = plan_tiles(ShapeLimits(), *xp.shape[-2:], tile).overlap
    y = tiled_forward(forward, xp, tile, overlap) if tile else forward(xp)
    y = y[..., :h, :w]
    return y.clamp(0, 1) if clamp else y
