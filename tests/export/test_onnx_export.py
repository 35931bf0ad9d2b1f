"""ONNX export with dynamic H/W: ONNX Runtime matches PyTorch at two sizes; plain ONNX ops only."""

import onnx
import pytest

from drsedge.export import check_parity, export_onnx
from drsedge.models import student_config


@pytest.mark.parametrize("attention", ["topk", "assa"])
def test_torchscript_export_parity(tmp_path, attention):
    model = student_config(dim=8, num_blocks=[1, 1, 1, 1], attention=attention).build()
    path = export_onnx(model, tmp_path / "s.onnx", opset=17)
    m = onnx.load(path)
    ops = {n.op_type for n in m.graph.node}
    assert "ScatterElements" not in ops
    if attention == "topk":
        assert "TopK" in ops
    assert m.opset_import[0].version >= 17
    parity = check_parity(model, path, sizes=((64, 64), (48, 80)))
    assert parity.worst <= 1e-4, parity.max_abs
    assert not list(tmp_path.glob(".*tmp*"))  # no partial artifact left


@pytest.mark.slow
def test_dynamo_export_parity(tmp_path):
    model = student_config(dim=8, num_blocks=[1, 1, 1, 1]).build()
    path = export_onnx(model, tmp_path / "d.onnx", exporter="dynamo")
    assert check_parity(model, path, sizes=((64, 64), (48, 80))).worst <= 1e-4


def test_upstream_fixture_model_exports(fixtures_dir, tmp_path):
    from drsedge.models import load_any

    model, _ = load_any(fixtures_dir / "small_mefc_state.safetensors")
    path = export_onnx(model, tmp_path / "t.onnx")
    assert check_parity(model, path, sizes=((40, 40), (48, 64))).worst <= 1e-4
