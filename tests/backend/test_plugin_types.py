"""The pre-build verdict for every ONNX drsedge writes, on every TensorRT version: buildable by the plugin's type
rules and the version's precision rules, or refused before the build in one line (review-2 N3)."""

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from drsedge.backend.trt import BuildOptions, build_path
from drsedge.backend.trt.plugin_types import ACCEPTED, fused_type_problems
from drsedge.backend.trt.version import KNOWN_VERSIONS
from drsedge.errors import DrsedgeError
from tests.conftest import DATA, need

pytestmark = pytest.mark.slow  # exports and quantizes ten ONNX files (four INT8 backends); deselect with -m 'not slow'

ROOT = Path(__file__).resolve().parents[2]
INT8 = [("nncf", "fp32"), ("ort", "fp32"), ("modelopt", "fp32"), ("modelopt", "fp16")]


@pytest.fixture(scope="module")
def every_onnx(tmp_path_factory):
    """native/fused x FP32 export, FP16 export, and the INT8 Q/DQ ONNX of each backend (ModelOpt with FP32 and FP16
    float parts): ``{name: (path, intended precision)}``."""
    pytest.importorskip("modelopt.onnx.quantization", reason="NVIDIA ModelOpt not installed (pip install -e '.[modelopt]')")
    from drsedge.calibration.calib import calibration_set
    from drsedge.compress.quantize import quantize_onnx
    from drsedge.export import export_onnx
    from drsedge.export.fp16 import convert_fp16
    from drsedge.models import student_config

    data_dir = need(DATA)
    d = tmp_path_factory.mktemp("every_onnx")
    torch.manual_seed(0)
    model = student_config(dim=8, num_blocks=[1, 1, 1, 1]).build()
    calib = calibration_set([data_dir / "real"], size=64, limit=2)
    out = {}
    for attn in ("native", "fused"):
        src = export_onnx(model, d / f"{attn}.onnx", attention=attn)
        out[f"{attn}_fp32"] = (src, "fp32")
        out[f"{attn}_fp16"] = (Path(convert_fp16(src, d / f"{attn}_fp16.onnx", calib.inputs).path), "fp16")
        for backend, hp in INT8:
            q = quantize_onnx(src, d / f"{attn}_int8_{backend}_{hp}.onnx", calib, backend, high_precision=hp)
            out[f"{attn}_int8_{backend}_{hp}"] = (q, "int8")
    plugin = d / "libdrsedge_trt_plugin_static.so"
    plugin.write_bytes(b"\x7fELF stand-in\0drsedge-plugin-registration:static\0")
    return out, plugin


def _verdict(path, precision, version, plugin):
    try:
        BuildOptions(str(path), str(path.with_suffix(".engine")), precision=precision, plugin=str(plugin)).validate(build_path(version))
        return "ok"
    except DrsedgeError as e:
        assert "\n" not in str(e)
        return "refused: " + str(e)


def test_every_onnx_drsedge_writes_is_buildable_or_refused_on_every_version(every_onnx):
    """The verdict table: each file x version x precision is "ok" or one refusal line; the precision each file is
    made for is "ok" on every version (it was refused on 11.x/10.12+ for the ModelOpt FP16 fused INT8 ONNX, which fed
    FP16 scores to the FP32-only plugin, and ModelOpt's fused INT8 ONNX did not even load)."""
    files, plugin = every_onnx
    table = {}
    for name, (path, intended) in files.items():
        for v in KNOWN_VERSIONS:
            for prec in ("fp32", "fp16", "int8"):
                table[name, v, prec] = _verdict(path, prec, v, plugin)
            assert table[name, v, intended] == "ok", (name, v, table[name, v, intended])
            if build_path(v).strongly_typed and "fused" in name:
                assert fused_type_problems(onnx.load(str(path))) == []
    # the rules the table must show: no INT8 from a float file, no FP16 engine from an FP32 file on strong typing
    for name, (_, intended) in files.items():
        if intended != "int8":
            assert all(table[name, v, "int8"].startswith("refused") for v in KNOWN_VERSIONS)
    assert table["native_fp32", "11.4", "fp16"].startswith("refused") and table["native_fp32", "10.3", "fp16"] == "ok"
    print("\n".join(f"{k}: {v[:100]}" for k, v in sorted(table.items())))


def test_every_onnx_drsedge_writes_runs_in_onnx_runtime_close_to_fp32(every_onnx):
    """ModelOpt renamed the shared per-head weights of fused calls (``NAME_1``...), so its fused INT8 ONNX named a
    missing input: ONNX Runtime refused to load it. Every file must now load and stay near the FP32 export."""
    from drsedge.runtime.onnx_np import ort_session

    files, _ = every_onnx
    x = np.random.RandomState(0).rand(1, 3, 64, 64).astype(np.float32)
    ref = None
    for name, (path, _) in sorted(files.items(), key=lambda kv: kv[0] != "native_fp32"):
        onnx.checker.check_model(onnx.load(str(path)))
        s = ort_session(path)
        y = s.run(None, {s.get_inputs()[0].name: x})[0]
        ref = y if ref is None else ref
        psnr = 10 * np.log10(1 / max(float(np.mean((y - ref) ** 2)), 1e-20))
        assert np.isfinite(y).all() and psnr > 35, (name, psnr)


def _drop_fp32_casts(m):
    """A fused INT8 ONNX as ModelOpt FP16 wrote it before the fix: the Casts around the fused nodes removed."""
    casts = {n.output[0]: n for n in m.graph.node if n.op_type == "Cast" and ("/fp32_in_" in n.name or "/fp16_out_" in n.name)}
    assert casts, "no Casts around the fused nodes: the fix is gone"
    for n in m.graph.node:
        if n.op_type == "TopKSparseSoftmax":
            n.input[:] = [casts[i].input[0] if i in casts else i for i in n.input]
            back = [c for c in casts.values() if c.input[0] == n.output[0]]
            if back:
                n.output[0] = back[0].output[0]
    keep = [n for n in m.graph.node if not (n.op_type == "Cast" and ("/fp32_in_" in n.name or "/fp16_out_" in n.name))]
    del m.graph.node[:]
    m.graph.node.extend(keep)
    return m


def test_fp16_scores_into_the_plugin_are_refused_on_strong_typing_only(every_onnx, tmp_path):
    files, plugin = every_onnx
    bad = tmp_path / "fused_int8_fp16_scores.onnx"
    onnx.save(_drop_fp32_casts(onnx.load(str(files["fused_int8_modelopt_fp16"][0]))), str(bad))
    assert fused_type_problems(onnx.load(str(bad)))
    for v in KNOWN_VERSIONS:
        got = _verdict(bad, "int8", v, plugin)
        if build_path(v).strongly_typed:
            assert got.startswith("refused") and "FP32 scores" in got, (v, got)
        else:
            assert got == "ok", (v, got)  # weak typing: TensorRT inserts the reformat the plugin asks for


def test_python_type_rules_mirror_the_plugins_cpp():
    """``ACCEPTED`` is read against ``supportedCombination`` in plugin_common.h: change one, this fails."""
    src = (ROOT / "native/topk_sparse_softmax/src/plugin_common.h").read_text()
    body = src[src.index("inline bool supportedCombination"):]
    body = body[: body.index("\n}\n")]
    cpp = {}
    for pos, rhs in re.findall(r"if \(pos == (\d)\) return (.*);", body):
        cpp[int(pos)] = tuple(sorted({"kFLOAT": 1, "kHALF": 10}[t] for t in re.findall(r"DataType::(k\w+)", rhs)))
    assert cpp == {k: tuple(sorted(v)) for k, v in ACCEPTED.items()}
    assert "return t == types[0];" in body  # the output takes the scores' type (OUTPUT_AS_INPUT)


def test_weak_int8_never_pins_qdq_or_casts(every_onnx):
    """Review-2 N4: NNCF names its DequantizeLinear nodes after the tensors they feed (``…/norm1/body/Div_output_0_1``,
    ``…/attn/MatMul_1_output_0_1``), which matched the FP32 pins; IDequantizeLayer is INT8-only."""
    from drsedge.backend.trt import weak_fp32_layers

    files, _ = every_onnx
    for name, (path, intended) in files.items():
        m = onnx.load(str(path))
        kinds = {n.name: n.op_type for n in m.graph.node}
        pinned = weak_fp32_layers(path)
        assert pinned and not {kinds[n] for n in pinned} & {"QuantizeLinear", "DequantizeLinear", "Cast"}, name
        if intended == "int8" and "nncf" in name:  # the names that used to match are there
            assert any(op == "DequantizeLinear" and ("/attn/" in n or "norm1/body" in n) for n, op in kinds.items())
