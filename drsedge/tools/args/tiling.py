"""The tiling flags of ``drsedge derain`` and ``drsedge stream``, declared once (the policy itself:
:func:`drsedge.runtime.limits.plan_tiles`, which ``check`` follows too)."""

from __future__ import annotations

from . import MULT8, NONNEG


def add_tiling_args(p) -> None:
    """``--tile N`` (square, px, multiple of 8) and ``--tile-overlap N`` (px); both default to the policy's choice."""
    p.add_argument("--tile", type=MULT8, help="tile side in px (multiple of 8); default: whole frames, or the largest tile the "
                   "model takes when a frame exceeds its static shape or engine profile")
    p.add_argument("--tile-overlap", type=NONNEG, help="px shared by neighbouring tiles, averaged (default 32, at most a quarter of "
                   "the tile's shorter side)")
