"""Quantization-aware fine-tuning: NNCF fake quantizers on the PyTorch student train without NaN, and the export's
FakeQuantize -> Q/DQ rewrite runs in ONNX Runtime exactly as the quantized PyTorch model computes."""

import numpy as np
import pytest
import torch

from drsedge.calibration import calibration_set
from drsedge.cli import main
from drsedge.compress.qat import export_qat_onnx, insert_quantizers
from drsedge.compress.quantize import count_qdq
from drsedge.data import CropSampler, find_pairs, load_samples
from drsedge.models import load_any
from drsedge.runtime.onnx_np import OnnxModel
from drsedge.weights import resolve

pytestmark = pytest.mark.slow  # quantizes and trains (CPU-sized); deselect with -m 'not slow'


@pytest.fixture(scope="module")
def qat_student():
    from tests.conftest import DATA, need

    need(DATA)
    model, _ = load_any(resolve("shipped:student"))
    calib = calibration_set([DATA / "rain200H" / "train"], size=64, limit=8)
    return insert_quantizers(model, calib.inputs)


def test_quantized_student_trains_without_nan(qat_student, data_dir):
    """A quantizer on LayerNorm's ``var + eps`` made the gradients NaN after one step (sqrt at 0); LN internals stay float."""
    x, y, _ = CropSampler(load_samples(find_pairs(data_dir / "rain200H" / "train")), 64, 4, 0).batch(0)
    qat_student.train()
    qat_student.zero_grad()
    torch.nn.functional.l1_loss(qat_student(x), y).backward()
    grads = [p.grad for p in qat_student.parameters() if p.grad is not None]
    assert len(grads) > 50 and all(bool(torch.isfinite(g).all()) for g in grads)
    qat_student.zero_grad()
    qat_student.eval()


def test_export_rewrites_fake_quantize_into_qdq(qat_student, data_dir, tmp_path):
    import onnx

    path = export_qat_onnx(qat_student, tmp_path / "qat.onnx")
    m = onnx.load(str(path))
    assert not any(n.op_type == "FakeQuantize" for n in m.graph.node) and count_qdq(path)["QuantizeLinear"] > 100
    x = CropSampler(load_samples(find_pairs(data_dir / "rain200L" / "train")), 64, 1, 3).batch(0)[0]
    with torch.no_grad():
        want = qat_student(x).numpy()
    got = OnnxModel(path)(x.numpy())
    # the same fake-quantized arithmetic in two runtimes; float-rounding differences flip a few quantization steps
    # (measured max 0.0095, mean ~5e-4); a wrong zero point, scale or axis gives errors of whole quantization ranges
    d = np.abs(got - want)
    assert float(d.max()) < 0.03 and float(d.mean()) < 2e-3, (float(d.max()), float(d.mean()))


def test_qat_cli_runs_and_refuses_the_test_set(data_dir, tmp_path, capsys):
    out = tmp_path / "q.onnx"
    assert main(["qat", "shipped:student", "--calib", str(data_dir / "rain200H" / "train"), "--train", str(data_dir / "rain200L" / "train"), "--skip-held-out-copies",
                 "--steps", "2", "--limit", "4", "--crop", "64", "--patch", "32", "--batch-size", "2", "-o", str(out), "--quiet"]) == 0
    assert out.is_file() and "qat int8" in capsys.readouterr().out
    assert main(["qat", "shipped:student", "--calib", str(data_dir / "rain200H" / "train"), "--train", str(data_dir / "rain100L"),
                 "--steps", "2", "-o", str(tmp_path / "x.onnx"), "--quiet"]) == 2
    assert "held-out" in capsys.readouterr().err and not (tmp_path / "x.onnx").exists()
