"""Profile-driven tiling: which tile a frame gets from an ONNX static shape or an engine's optimization profile,
and the one-line refusals when a frame cannot be fed to the model."""

import pytest

from drsedge.errors import DrsedgeError
from drsedge.runtime.engine_np import limits_from_sidecar
from drsedge.runtime.limits import ShapeLimits, TilePlan, plan_tiles


def test_dynamic_models_keep_the_users_choice():
    assert plan_tiles(ShapeLimits(), 720, 1280) is None
    assert plan_tiles(ShapeLimits(), 720, 1280, 256, 32) == TilePlan(256, 256, 32)
    assert plan_tiles(ShapeLimits(), 60, 100, 256) == TilePlan(64, 64, 16)  # clipped to the frame (x8); overlap <= a quarter


def test_engine_profile_tiles_only_frames_above_its_max():
    side = {"profile": {"input": "input", "min": [1, 3, 64, 64], "opt": [1, 3, 256, 256], "max": [1, 3, 512, 768]}}
    lim = limits_from_sidecar(side, "e.engine")
    assert lim.min_hw == (64, 64) and lim.max_hw == (512, 768)
    assert plan_tiles(lim, 480, 640) is None  # fits the profile: whole frame
    assert plan_tiles(lim, 720, 1280) == TilePlan(512, 768, 32)  # 720p: the largest tile the profile takes, per axis
    assert plan_tiles(lim, 1080, 1920, 256) == TilePlan(256, 256, 32)
    with pytest.raises(DrsedgeError, match="exceeds"):
        plan_tiles(lim, 1080, 1920, 1024, 32)
    assert plan_tiles(lim, 40, 40) == TilePlan(64, 64, 16)  # below the profile min: padded up to it
    with pytest.raises(DrsedgeError, match="cannot be fed"):
        plan_tiles(lim, 40, 40, 32, 16)  # a --tile below the profile min
    with pytest.raises(DrsedgeError, match="no \\[N, 3, H, W\\] optimization profile"):
        limits_from_sidecar({"profile": {"min": [1, 3]}}, "e.engine")


def test_static_onnx_shape_is_the_tile():
    lim = ShapeLimits((128, 128), (128, 128), "ONNX static input 128x128")
    assert plan_tiles(lim, 128, 128) is None
    assert plan_tiles(lim, 321, 481) == TilePlan(128, 128, 32)
    assert plan_tiles(lim, 96, 200) == TilePlan(128, 128, 32)  # shorter side below the fixed shape: padded up to it
    assert plan_tiles(lim, 37, 60) == TilePlan(128, 128, 32)
    with pytest.raises(DrsedgeError, match="overlap 128 must be smaller"):
        plan_tiles(lim, 300, 300, None, 128)
    # a non-square fixed shape is tiled by its own rectangle (was refused: square tiles could not fill it)
    rect = ShapeLimits((128, 256), (128, 256), "ONNX static input 128x256")
    assert plan_tiles(rect, 300, 600) == TilePlan(128, 256, 32)
    assert str(plan_tiles(rect, 300, 600)) == "128x256" and str(TilePlan(64, 64, 16)) == "64"
    with pytest.raises(DrsedgeError, match="cannot be fed"):
        plan_tiles(rect, 300, 600, 128)  # a square --tile cannot fill it
