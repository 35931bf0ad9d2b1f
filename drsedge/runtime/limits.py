"""Which frame sizes a model accepts, and the tile size that makes a frame fit (profile-driven tiling).

An ONNX with a static input ``[N, 3, S, S]`` takes exactly ``S x S``; a TensorRT engine takes what its optimization
profile allows (min..max per axis, NVIDIA TensorRT docs, "Optimization Profiles"); a dynamic ONNX or a checkpoint
takes any multiple of 8. Frames larger than that are cut into overlapping tiles (upstream ``test.py`` tiling) of the
largest allowed size; a side shorter than the model's minimum is padded up to it (reflect, as upstream UDR-S2Former's
``check_image_size``) and cropped back. :func:`plan_tiles` is the one policy: the numpy path
(:func:`drsedge.runtime.onnx_np.restore_np`: ``derain``, ``stream``) and the torch runners (``check``) both follow it.
"""

from __future__ import annotations

from dataclasses import dataclass

from drsedge.errors import DrsedgeError


@dataclass(frozen=True)
class ShapeLimits:
    """Input sizes in px (H, W) a model accepts; ``max_hw=None``: any size (multiples of 8)."""

    min_hw: tuple[int, int] = (8, 8)
    max_hw: tuple[int, int] | None = None
    source: str = "dynamic input"


DEFAULT_OVERLAP = 32  # px shared by neighbouring tiles when none is given, at most a quarter of the tile's shorter side


@dataclass(frozen=True)
class TilePlan:
    """Overlapping ``th x tw`` tiles (px, multiples of 8) sharing ``overlap`` px, averaged (:mod:`drsedge.runtime.tile_plan`)."""

    th: int
    tw: int
    overlap: int

    def __str__(self) -> str:
        return f"{self.th}" if self.th == self.tw else f"{self.th}x{self.tw}"


def plan_tiles(limits: ShapeLimits, height: int, width: int, tile: int | None = None, overlap: int | None = None,
               model: str = "model") -> TilePlan | None:
    """The one tiling policy of every runner (``drsedge check``'s PyTorch/ORT/engine runners, ``derain``, ``stream``):
    how to feed a ``height x width`` frame to a model with ``limits``, or None for whole frames.

    * ``tile`` (``--tile``, square, px): the user's choice, checked against the limits; on a dynamic model a tile longer
      than the frame is clipped to it.
    * None: whole frames when the frame (padded to x8) fits the limits; else the largest tile the model takes, per
      axis (a static ``[1, 3, S_h, S_w]`` export: ``S_h x S_w``; an engine profile: its max, down to the frame), a
      side shorter than the model's minimum padded up to it (reflect, as upstream UDR-S2Former's ``check_image_size``).
    * ``overlap``: as given (below the tile's shorter side), else :data:`DEFAULT_OVERLAP` px, at most a quarter of the
      tile's shorter side.

    Raises:
        DrsedgeError: a tile the model cannot take (``--tile`` below its minimum or above its maximum), a frame it
            cannot be fed, or an overlap not below the tile.
    """
    ph, pw = height + (-height) % 8, width + (-width) % 8
    lo_h, lo_w = limits.min_hw
    if limits.max_hw is None:  # any size: a tile longer than the frame is clipped to it (no padding up)
        if tile is None:
            return None
        th = tw = min(tile, ph, pw)
    else:
        hi_h, hi_w = limits.max_hw
        if tile is not None and (tile > hi_h or tile > hi_w):
            raise DrsedgeError(f"{model}: --tile {tile} exceeds what the model takes ({limits.source}); use --tile "
                               f"{min(hi_h, hi_w) // 8 * 8} or less")
        if tile is None and lo_h <= ph <= hi_h and lo_w <= pw <= hi_w:
            return None
        if tile is not None:  # restore_np clips the tile to the frame, or pads a smaller frame up to it
            th = tw = min(tile, max(ph, lo_h), max(pw, lo_w))
        else:
            th, tw = min(hi_h // 8 * 8, max(ph, lo_h)), min(hi_w // 8 * 8, max(pw, lo_w))
        if th < lo_h or tw < lo_w or th > hi_h or tw > hi_w:
            raise DrsedgeError(f"{model}: a {width}x{height} frame cannot be fed to it ({limits.source}, min {lo_h}x{lo_w}); "
                               "re-export the ONNX with dynamic axes or rebuild the engine with a wider profile")
    side = min(th, tw)
    if overlap is None:
        overlap = min(DEFAULT_OVERLAP, side // 4)
    elif overlap >= side:
        given = f"--tile {tile}" if tile == side else f"the {th}x{tw} tile ({limits.source})"
        raise DrsedgeError(f"{model}: --tile-overlap {overlap} must be smaller than {given}; lower --tile-overlap")
    return TilePlan(th, tw, overlap)
