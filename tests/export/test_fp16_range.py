"""fp16-check: per-node FP16 range of an FP32 ONNX on real images; the --fp16-safe export stays in range."""

import numpy as np
import pytest
import torch

from drsedge.calibration.calib import calibration_set
from drsedge.cli import main
from drsedge.export import export_onnx
from drsedge.export.fp16_range import FP16_MAX, fp16_overflows, fp16_ranges
from drsedge.models import student_config
from drsedge.onnx_graph import fp16_unsafe_nodes
from drsedge.onnx_io import load_onnx


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """A tiny student whose level-1 q/k are scaled up (as in trained models, where |q| ~ 2 over 1e5 pixels)."""
    torch.manual_seed(0)
    model = student_config(dim=8, num_blocks=[1, 1, 1, 1]).build().eval()
    with torch.no_grad():
        model.encoder_level1[0].attn.qkv.weight.mul_(40)
    d = tmp_path_factory.mktemp("fp16")
    return export_onnx(model, d / "native.onnx"), export_onnx(model, d / "safe.onnx", fp16_safe=True)


def test_default_export_overflows_and_safe_export_does_not(exports, data_dir):
    native, safe = exports
    images = calibration_set([data_dir / "real"], size=None, limit=1)
    assert images.inputs[0].shape[2:] == (320, 480)  # whole frame, cropped to multiples of 8
    bad = fp16_overflows(fp16_ranges(native, images.inputs))
    assert bad and {r.op_type for r in bad} == {"ReduceL2"}
    assert "encoder_level1.0.attn" in {r.module for r in bad} and all(r.module.endswith(".attn") for r in bad)
    ranges = fp16_ranges(safe, images.inputs, project_hw=(720, 1280))
    assert not fp16_overflows(ranges) and max(r.projected for r in ranges) < FP16_MAX / 10
    assert "ReduceL2" not in {r.op_type for r in ranges}
    assert fp16_unsafe_nodes(load_onnx(native)) and fp16_unsafe_nodes(load_onnx(safe)) == []  # no FP32 layers needed for the safe export


def test_projection_scales_pixel_sums(exports):
    native, _ = exports
    x = [np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)]
    at = {r.node: r for r in fp16_ranges(native, x, project_hw=(128, 128))}
    l2 = [r for r in at.values() if r.op_type == "ReduceL2"]
    assert l2 and all(r.projected == pytest.approx(4 * r.peak) for r in l2)
    assert all(r.projected == r.peak for r in at.values() if r.op_type == "Conv")


def test_cli_fp16_check_exit_codes(exports, data_dir, capsys):
    native, safe = exports
    assert main(["fp16-check", str(native), "--images", str(data_dir / "real"), "--limit", "1"]) == 3
    assert "export --fp16-safe" in capsys.readouterr().err
    assert main(["fp16-check", str(safe), "--images", str(data_dir / "real"), "--limit", "1"]) == 0
    assert main(["fp16-check", str(safe), "--images", str(data_dir / "real"), "--project", "720"]) == 2
