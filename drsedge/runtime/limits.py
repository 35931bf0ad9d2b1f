"""Which frame sizes a model accepts, and the tile size that makes a frame fit (profile-driven tiling).

An ONNX with a static input ``[N, 3, S, S]`` takes exactly ``S x S``; a TensorRT engine takes what its optimization
profile allows (min..max per axis, NVIDIA TensorRT docs, "Optimization Profiles"); a dynamic ONNX or a checkpoint
takes any multiple of 8. Frames larger than that are cut into overlapping square tiles (upstream ``test.py``
tiling, :func:`drsedge.runtime.onnx_np.restore_np`) of the largest allowed side; a side shorter than the model's
minimum is padded up to it (reflect, as upstream UDR-S2Former's ``check_image_size``) and cropped back, as
:func:`drsedge.runtime.tiling.static_tiled` does for the PyTorch runners.
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


def plan_tile(limits: ShapeLimits, height: int, width: int, tile: int | None, overlap: int, model: str = "model") -> int | None:
    """The tile side (px, multiple of 8) to derain a ``height x width`` frame with, or None for whole frames.

    ``tile``: the user's choice (``--tile``), checked against the limits; None lets the limits decide: whole frames
    when the frame (padded to x8) fits, else the largest allowed square tile. A tile larger than a side of the frame
    means that side is padded up to the tile (:func:`drsedge.runtime.onnx_np.restore_np`).

    Raises:
        DrsedgeError: a tile the model cannot take (``--tile`` below its minimum, a non-square fixed shape, a tile
            above the maximum or not above the overlap).
    """
    ph, pw = height + (-height) % 8, width + (-width) % 8
    lo_h, lo_w = limits.min_hw
    if limits.max_hw is None:  # any size: a tile longer than the frame is clipped to it (no padding up)
        return tile if tile is None else min(tile, ph, pw)
    hi_h, hi_w = limits.max_hw
    side = min(hi_h, hi_w) // 8 * 8
    if tile is not None and (tile > hi_h or tile > hi_w):
        raise DrsedgeError(f"{model}: --tile {tile} exceeds what the model takes ({limits.source}); use --tile {side} or less")
    fits = lo_h <= ph <= hi_h and lo_w <= pw <= hi_w
    if tile is None and fits:
        return None
    t = tile if tile is not None else side
    t = min(t, max(ph, lo_h), max(pw, lo_w))  # restore_np clips the tile to the frame, or pads a smaller frame up to it
    if t < lo_h or t < lo_w or t > hi_h or t > hi_w:
        raise DrsedgeError(f"{model}: a {width}x{height} frame cannot be fed to it ({limits.source}, min {lo_h}x{lo_w}); "
                           "re-export the ONNX with dynamic axes or rebuild the engine with a wider profile")
    if overlap >= t:
        raise DrsedgeError(f"{model}: tile {t} px ({limits.source}) is not larger than the overlap {overlap}; lower --tile-overlap")
    return t
