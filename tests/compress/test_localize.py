"""Per-layer drift localisation between ONNX models, mapped back to PyTorch module names."""

import pytest
import torch

from drsedge.calibration import calibration_set
from drsedge.cli import main
from drsedge.compress import quantize_onnx
from drsedge.compress.localize import first_offenders, localize, worst_modules
from drsedge.export import export_onnx
from drsedge.models import student_config
from drsedge.onnx_graph import module_path

pytestmark = pytest.mark.slow  # trains or quantizes (CPU-sized); deselect with -m 'not slow'


def test_module_path():
    assert module_path("/encoder_level2/encoder_level2.0/attn/qkv/Conv") == "encoder_level2.0.attn.qkv"
    assert module_path("/output/Conv") == "output"
    assert module_path("Conv_3") == "Conv_3"
    assert module_path("/Add") == ""  # the model's own global residual


def test_localize_int8_against_fp32(tmp_path, data_dir, capsys):
    torch.manual_seed(0)
    model = student_config(dim=8, num_blocks=[1, 1, 1, 1]).build()
    fp32 = export_onnx(model, tmp_path / "fp32.onnx")
    calib = calibration_set([data_dir / "rain200H" / "train" / "input"], size=64, limit=2)
    int8 = quantize_onnx(fp32, tmp_path / "int8.onnx", calib)
    same = localize(fp32, fp32, calib.inputs)
    assert same and max(d.rel_err for d in same) == 0.0
    drifts = localize(fp32, int8, calib.inputs)
    assert len(drifts) == len(same) and max(d.rel_err for d in drifts) > 0
    from drsedge.models.reparam import reparameterize

    modules = {name for name, _ in reparameterize(model).named_modules()}  # the default export is the deploy copy
    assert all(d.module in modules for d in drifts if d.node.startswith("/"))
    assert any(".ffn.branch_a" in d.module for d in drifts)  # module paths of the deploy structure, as keep-float reads them
    assert first_offenders(drifts, threshold=0.0, top=3) == [d for d in drifts if d.rel_err > 0][:3]
    assert worst_modules(drifts, 2)[0][1] >= worst_modules(drifts, 2)[1][1]
    assert main(["localize", str(fp32), str(int8), "--images", str(data_dir / "real"), "--limit", "1", "--size", "64"]) == 0
    assert "Drift localisation" in capsys.readouterr().out
    # Polygraphy output comparison: identical models pass at zero tolerance, INT8 fails a tight one (exit 3).
    imgs = ["--images", str(data_dir / "real"), "--limit", "2", "--size", "64"]
    assert main(["compare", str(fp32), str(fp32), "--atol", "0", "--rtol", "0", *imgs]) == 0
    assert main(["compare", str(fp32), str(int8), "--atol", "1e-6", "--rtol", "1e-6", *imgs]) == 3
    assert "FAIL" in capsys.readouterr().out
    assert main(["compare", str(fp32), *imgs]) == 2  # neither a test ONNX nor --trt
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    assert main(["compare", str(fp32), str(bad), *imgs]) == 2
    assert "bad.onnx: not a valid ONNX model" in capsys.readouterr().err


def test_trt_side_needs_tensorrt(tmp_path, data_dir, capsys):
    import importlib.util

    import pytest

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed: the GPU comparison is exercised on the device, not here")
    torch.manual_seed(0)
    fp32 = export_onnx(student_config(dim=8, num_blocks=[1, 1, 1, 1]).build(), tmp_path / "fp32.onnx")
    assert main(["compare", str(fp32), "--trt", "fp16", "--images", str(data_dir / "real"), "--limit", "1", "--size", "64"]) == 2
    assert "TensorRT Python bindings are not installed" in capsys.readouterr().err


def test_check_localize_when_int8_budget_breaks(tmp_path, data_dir, capsys):
    torch.manual_seed(0)
    model = student_config(dim=8, num_blocks=[1, 1, 1, 1]).build()
    fp32 = export_onnx(model, tmp_path / "fp32.onnx")
    int8 = quantize_onnx(fp32, tmp_path / "int8.onnx", calibration_set([data_dir / "real"], size=64, limit=2))
    code = main(["check", "--test", str(data_dir / "rain200H" / "test"), "--onnx", str(fp32), "--int8", str(int8), "--limit", "1",
                 "--latency-size", "64", "64", "--latency-runs", "1", "--budget", "onnx_int8=-100", "--out", str(tmp_path / "r"),
                 "--localize", str(data_dir / "real")])
    out = capsys.readouterr().out
    # A budget of -100 dB demands a 100 dB gain, so the INT8 stage always breaks it and gets localised.
    import re

    assert code == 3 and "BROKEN" in out and "Drift localisation" in out and "Modules adding the most error" in out
    assert re.search(r"^\| (encoder_level|decoder_level|latent|down|up|reduce_chan|output|patch_embed)\S* \| \d", out, re.M)
