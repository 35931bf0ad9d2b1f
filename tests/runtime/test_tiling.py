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


def test_small_frame_is_padded_up_to_a_fixed_size_model():
    """A frame shorter than a static model's input (UDR-S2Former exports: 256x256) is padded up to it and cropped
    back (derain/stream, numpy), not refused; a larger one is tiled. The model sees only its own size."""
    import numpy as np

    from drsedge.data.images import read_image
    from drsedge.runtime.limits import ShapeLimits, plan_tiles
    from drsedge.runtime.onnx_np import restore_np
    from tests.conftest import SHARED

    if not (SHARED / "data" / "raindrop").is_dir():
        pytest.skip("../shared/data/raindrop is absent")
    seen = []

    def fixed(x):
        seen.append(x.shape)
        assert x.shape == (1, 3, 128, 128), x.shape
        return x[:, ::-1] * 0.5  # per-pixel: the crop must give back exactly the frame's own pixels

    lim = ShapeLimits((128, 128), (128, 128), "ONNX static input 128x128")
    img = read_image(sorted((SHARED / "data" / "raindrop").rglob("*.png"))[0])
    for h, w in ((37, 130), (100, 60), (8, 8), (200, 90)):
        crop = img[:h, :w]
        y = restore_np(fixed, crop, tile=plan_tiles(lim, h, w))
        assert y.shape == crop.shape
        np.testing.assert_allclose(y, crop[..., ::-1] * 0.5, atol=1e-7)
    assert seen
