"""Profile-driven tiling: which tile a frame gets from an ONNX static shape or an engine's optimization profile,
and the one-line refusals when a frame cannot be fed to the model."""

import pytest

from drsedge.errors import DrsedgeError
from drsedge.runtime.engine_np import limits_from_sidecar
from drsedge.runtime.limits import ShapeLimits, plan_tile


def test_dynamic_models_keep_the_users_choice():
    assert plan_tile(ShapeLimits(), 720, 1280, None, 32) is None
    assert plan_tile(ShapeLimits(), 720, 1280, 256, 32) == 256
    assert plan_tile(ShapeLimits(), 60, 100, 256, 32) == 64  # clipped to the frame (x8), not padded up to the tile


def test_engine_profile_tiles_only_frames_above_its_max():
    side = {"profile": {"input": "input", "min": [1, 3, 64, 64], "opt": [1, 3, 256, 256], "max": [1, 3, 512, 768]}}
    lim = limits_from_sidecar(side, "e.engine")
    assert lim.min_hw == (64, 64) and lim.max_hw == (512, 768)
    assert plan_tile(lim, 480, 640, None, 32) is None  # fits the profile: whole frame
    assert plan_tile(lim, 720, 1280, None, 32) == 512  # 720p: the largest square the profile takes
    assert plan_tile(lim, 1080, 1920, 256, 32) == 256
    with pytest.raises(DrsedgeError, match="exceeds"):
        plan_tile(lim, 1080, 1920, 1024, 32)
    assert plan_tile(lim, 40, 40, None, 16) == 64  # below the profile min: padded up to it
    with pytest.raises(DrsedgeError, match="cannot be fed"):
        plan_tile(lim, 40, 40, 32, 16)  # a --tile below the profile min
    with pytest.raises(DrsedgeError, match="no \\[N, 3, H, W\\] optimization profile"):
        limits_from_sidecar({"profile": {"min": [1, 3]}}, "e.engine")


def test_static_onnx_shape_is_the_tile():
    lim = ShapeLimits((128, 128), (128, 128), "ONNX static input 128x128")
    assert plan_tile(lim, 128, 128, None, 32) is None
    assert plan_tile(lim, 321, 481, None, 32) == 128
    assert plan_tile(lim, 96, 200, None, 32) == 128  # shorter side below the fixed shape: padded up to it
    assert plan_tile(lim, 37, 60, None, 32) == 128
    with pytest.raises(DrsedgeError, match="overlap"):
        plan_tile(lim, 300, 300, None, 128)
    rect = ShapeLimits((128, 256), (128, 256), "ONNX static input 128x256")
    with pytest.raises(DrsedgeError, match="dynamic axes"):
        plan_tile(rect, 300, 600, None, 32)  # square tiles cannot fill a non-square fixed shape
