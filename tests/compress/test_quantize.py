"""INT8 Q/DQ by NNCF and by ONNX Runtime: the model runs in ORT and stays close to FP32 on real images."""

import pytest
import torch

from drsedge.calibration import calibration_set
from drsedge.compress import count_qdq, quantize_onnx
from drsedge.compress.train import TrainConfig, train
from drsedge.data import CropSampler, find_pairs, load_samples, read_image, to_tensor, to_uint8
from drsedge.errors import DrsedgeError
from drsedge.export import export_onnx
from drsedge.metrics import psnr_y
from drsedge.models import student_config
from drsedge.runtime import OrtRunner, restore

# A briefly trained tiny student: INT8 output must stay within this PSNR-Y (dB) of the FP32 ONNX output
# on real rainy test images (quantization noise only, measured against the FP32 output itself).
INT8_VS_FP32_MIN_PSNR = 30.0


@pytest.fixture(scope="module")
def fp32_onnx(tmp_path_factory):
    from tests.conftest import DATA, need

    need(DATA)
    torch.manual_seed(0)
    model = student_config(dim=8, num_blocks=[1, 1, 1, 1]).build()
    sampler = CropSampler(load_samples(find_pairs(DATA / "rain200L" / "train")), 32, 2, 0)
    out = tmp_path_factory.mktemp("q")
    train(model, sampler, TrainConfig(steps=20, batch_size=2, patch=32, checkpoint_every=100), out, progress=False)
    return export_onnx(model, out / "fp32.onnx")


@pytest.mark.parametrize("backend", ["nncf", "ort"])
def test_int8_runs_and_stays_close(fp32_onnx, data_dir, backend):
    calib = calibration_set([data_dir / "rain200H" / "train" / "input", data_dir / "real"], size=64, limit=8)
    q = quantize_onnx(fp32_onnx, fp32_onnx.with_name(f"int8_{backend}.onnx"), calib, backend)
    counts = count_qdq(q)
    assert counts["QuantizeLinear"] > 10 and counts["DequantizeLinear"] > 10
    fp32, int8 = OrtRunner(fp32_onnx), OrtRunner(q)
    for pair in find_pairs(data_dir / "rain200H" / "test")[:2]:
        x = to_tensor(read_image(pair.rainy))
        a, b = to_uint8(restore(fp32, x)), to_uint8(restore(int8, x))
        assert psnr_y(b, a) > INT8_VS_FP32_MIN_PSNR


def test_calibration_refuses_test_set_and_bad_onnx(data_dir, tmp_path):
    with pytest.raises(DrsedgeError, match="held-out"):
        calibration_set([data_dir / "rain100L" / "input"])
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    calib = calibration_set([data_dir / "real"], size=64, limit=1)
    with pytest.raises(DrsedgeError, match="bad.onnx"):
        quantize_onnx(bad, tmp_path / "out.onnx", calib)
    assert not (tmp_path / "out.onnx").exists()


def test_keep_float_modules(fp32_onnx, data_dir):
    import onnx

    calib = calibration_set([data_dir / "real"], size=64, limit=2)
    q = quantize_onnx(fp32_onnx, fp32_onnx.with_name("int8_keep.onnx"), calib, "nncf", keep_float=["latent.0.attn"])
    m = onnx.load(q)
    by_name = {n.name: n for n in m.graph.node}
    qkv = by_name["/latent/latent.0/attn/qkv/Conv"]
    producers = {o: n for n in m.graph.node for o in n.output}
    # The kept module's conv reads a float weight (no DequantizeLinear in front of it).
    assert all(producers.get(i) is None or producers[i].op_type != "DequantizeLinear" for i in qkv.input)
    other = by_name["/encoder_level1/encoder_level1.0/attn/qkv/Conv"]
    assert any(producers.get(i) is not None and producers[i].op_type == "DequantizeLinear" for i in other.input)
    with pytest.raises(DrsedgeError, match="no ONNX node"):
        quantize_onnx(fp32_onnx, fp32_onnx.with_name("x.onnx"), calib, "nncf", keep_float=["not.a.module"])
