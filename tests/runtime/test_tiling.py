"""Padding and tiling semantics of upstream test.py (fixture-free cases)."""

import pytest
import torch

from drsedge.runtime import pad_to_multiple, restore, tile_starts, tiled_forward


def test_tile_starts_upstream():
    assert tile_starts(56, 32, 16) == [0, 16, 24]
    assert tile_starts(72, 32, 16) == [0, 16, 32, 40]
    assert tile_starts(32, 32, 16) == [0]


def test_identity_tiling_and_restore():
    x = torch.rand(1, 3, 37, 45)
    assert pad_to_multiple(x).shape[-2:] == (40, 48)
    assert torch.equal(tiled_forward(lambda t: t, pad_to_multiple(x), 16, 8), pad_to_multiple(x))
    assert torch.equal(restore(lambda t: t * 2, x), (x * 2).clamp(0, 1))


def test_bad_tiles():
    x = torch.rand(1, 3, 48, 48)
    with pytest.raises(ValueError, match="multiple of 8"):
        tiled_forward(lambda t: t, x, 12, 4)
    with pytest.raises(ValueError, match="overlap 16 must be in"):
        tiled_forward(lambda t: t, x, 16, 16)
