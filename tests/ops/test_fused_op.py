"""The fused TopKSparseSoftmax op: torch.library checks, gradients, parity with the native graph, ONNX export."""

import onnx
import pytest
import torch

from drsedge.export import check_parity, export_onnx
from drsedge.models import set_attention_impl, student_config, topk_sizes, topk_sparse_probs
from drsedge.ops.topk_sparse_softmax.op import OP_DOMAIN, OP_TYPE, topk_sparse_softmax, topk_sparse_softmax_op


def _inputs(c=16, dtype=torch.float32, requires_grad=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(2, 3, c, c, generator=g, dtype=dtype).requires_grad_(requires_grad)
    w = torch.tensor([0.3, 0.1, 0.4, 0.2], dtype=dtype).requires_grad_(requires_grad)
    return s, w, list(topk_sizes(c))


def test_opcheck():
    for c in (8, 16, 48):
        s, w, ks = _inputs(c, requires_grad=True)
        torch.library.opcheck(topk_sparse_softmax_op, (s, w, ks))


def test_gradcheck_float64():
    s, w, ks = _inputs(8, torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: topk_sparse_softmax(a, b, ks), (s, w))


@pytest.mark.parametrize("c", [8, 16, 48, 96])
def test_matches_native_threshold_and_upstream_index(c):
    s, w, ks = _inputs(c)
    fused = topk_sparse_softmax(s, w, ks)
    torch.testing.assert_close(fused, topk_sparse_probs(s, w, tuple(ks), "threshold"), atol=1e-6, rtol=0)
    torch.testing.assert_close(fused, topk_sparse_probs(s, w, tuple(ks), "index"), atol=1e-6, rtol=0)


def test_fp16_and_bad_input():
    s, w, ks = _inputs(48)
    half = topk_sparse_softmax(s.half(), w.half(), ks)
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.float(), topk_sparse_softmax(s, w, ks), atol=2e-3, rtol=0)
    with pytest.raises(TypeError, match="float32 and float16"):
        topk_sparse_softmax(s.to(torch.bfloat16), w.to(torch.bfloat16), ks)
    with pytest.raises(ValueError, match="ascending"):
        topk_sparse_softmax(s, w, [8, 4, 9, 10])
    with pytest.raises(ValueError, match="within"):
        topk_sparse_softmax(s, w, [4, 8, 9, 49])


def test_model_with_fused_attention_matches_native():
    model = student_config(dim=8, num_blocks=[1, 1, 1, 1]).build().eval()
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        native = model(x)
        set_attention_impl(model, "fused")
        fused = model(x)
    torch.testing.assert_close(fused, native, atol=1e-5, rtol=0)


@pytest.mark.parametrize("exporter", ["torchscript", pytest.param("dynamo", marks=pytest.mark.slow)])
def test_fused_onnx_export(tmp_path, exporter):
    model = student_config(dim=8, num_blocks=[1, 1, 1, 1]).build()
    path = export_onnx(model, tmp_path / "f.onnx", exporter=exporter, attention="fused")
    m = onnx.load(path)
    nodes = [n for n in m.graph.node if n.domain == OP_DOMAIN]
    assert nodes and all(n.op_type == OP_TYPE for n in nodes)
    attrs = {a.name for a in nodes[0].attribute}
    assert {"ks", "plugin_version", "plugin_namespace"} <= attrs
    assert "TopK" not in {n.op_type for n in m.graph.node}  # the top-k lives inside the fused node
    assert [(f.domain, f.name) for f in m.functions] == [(OP_DOMAIN, OP_TYPE)]
    onnx.checker.check_model(m)
    # ONNX Runtime runs the node through its model-local function; parity with PyTorch <= 1e-5.
    assert check_parity(model, path, sizes=((64, 64), (48, 80))).worst <= 1e-5


def test_ort_pyop_kernel_matches_function(tmp_path):
    pytest.importorskip("onnxruntime_extensions", reason="onnxruntime-extensions not installed")
    from drsedge.runtime import OrtRunner

    model = student_config(dim=8, num_blocks=[1, 1, 1, 1]).build().eval()
    path = export_onnx(model, tmp_path / "f.onnx", attention="fused")
    x = torch.rand(1, 3, 48, 64)
    with torch.no_grad():
        ref = model(x)
    with pytest.warns(UserWarning, match="slow"):
        pyop = OrtRunner(path, fused_kernel="pyop")
    torch.testing.assert_close(pyop(x), ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(OrtRunner(path)(x), ref, atol=1e-5, rtol=0)
