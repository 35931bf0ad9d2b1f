"""build-engine without a GPU: flag validation, the trtexec command, sidecar checks; building skips without TensorRT + GPU."""

import json

import onnx
import pytest
import torch

from drsedge.cli import main
from drsedge.errors import DrsedgeError
from drsedge.export import export_onnx
from drsedge.models import student_config
from drsedge.runtime.trt_engine import BuildOptions, Shapes, check_sidecar, make_sidecar, read_sidecar, trtexec_command


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("trt")
    model = student_config(dim=8, num_blocks=[1, 1, 1, 1]).build()
    native = export_onnx(model, d / "native.onnx")
    fused = export_onnx(model, d / "fused.onnx", attention="fused")
    plugin = d / "libdrsedge_trt_plugin.so"
    plugin.write_bytes(b"\x7fELF fake plugin for flag tests")
    return native, fused, plugin


def test_profile_checks():
    Shapes().check()
    with pytest.raises(DrsedgeError, match="outside"):
        Shapes(min=(1, 3, 64, 64), opt=(1, 3, 32, 32), max=(1, 3, 128, 128)).check()
    with pytest.raises(DrsedgeError, match="multiples of 8"):
        Shapes(opt=(1, 3, 250, 256)).check()
    with pytest.raises(DrsedgeError, match="NxCxHxW"):
        Shapes.parse("256x256")


def test_custom_op_needs_plugin_and_int8_needs_qdq(onnx_files, tmp_path):
    native, fused, plugin = onnx_files
    with pytest.raises(DrsedgeError, match="no plugin library"):
        BuildOptions(str(fused), str(tmp_path / "e")).validate()
    with pytest.raises(DrsedgeError, match="plugin library not found"):
        BuildOptions(str(fused), str(tmp_path / "e"), plugin=str(tmp_path / "missing.so")).validate()
    BuildOptions(str(fused), str(tmp_path / "e"), plugin=str(plugin)).validate()
    with pytest.raises(DrsedgeError, match="explicit quantization"):
        BuildOptions(str(native), str(tmp_path / "e"), precision="int8").validate()


def test_trtexec_command(onnx_files):
    native, fused, plugin = onnx_files
    cmd = trtexec_command(BuildOptions(str(fused), "s.engine", precision="fp16", plugin=str(plugin), timing_cache="t.cache"))
    assert "--staticPlugins=" in cmd and "libdrsedge_trt_plugin_static.so" in cmd
    assert "--optShapes=image:1x3x256x256" in cmd and "--fp16" in cmd and "--timingCacheFile=t.cache" in cmd
    # FP16 safety: LayerNorm and q/k normalisation nodes named exactly, kept in FP32.
    layer_spec = next(a for a in cmd.split() if a.startswith("--layerPrecisions="))
    names = {n.name for n in onnx.load(str(fused)).graph.node}
    kept = [s.rsplit(":", 1)[0] for s in layer_spec.split("=", 1)[1].split(",")]
    assert kept and all(k in names for k in kept) and any("norm1/body" in k for k in kept)
    assert "--plugins=" in trtexec_command(BuildOptions(str(fused), "s.engine", plugin=str(plugin)), tensorrt_major=8)
    assert "--layerPrecisions" not in trtexec_command(BuildOptions(str(native), "s.engine", precision="fp32"))


def test_sidecar_refuses_other_trt_gpu_or_plugin(onnx_files, tmp_path):
    native, fused, plugin = onnx_files
    o = BuildOptions(str(fused), str(tmp_path / "s.engine"), plugin=str(plugin))
    side = make_sidecar(o, "10.3.0", "Orin", "8.7", 12.0)
    check_sidecar(side, "10.3.0", "8.7", str(plugin))
    with pytest.raises(DrsedgeError, match="TensorRT 10.3.0, running 10.13"):
        check_sidecar(side, "10.13.0", "8.7", str(plugin))
    with pytest.raises(DrsedgeError, match="compute capability 8.7"):
        check_sidecar(side, "10.3.0", "9.0", str(plugin))
    other = tmp_path / "other.so"
    other.write_bytes(b"different")
    with pytest.raises(DrsedgeError, match="sha256"):
        check_sidecar(side, "10.3.0", "8.7", str(other))
    hw = make_sidecar(BuildOptions(str(native), "e", hardware_compatible=True, version_compatible=True), "10.3.0", "A100", "8.0", 1.0)
    check_sidecar(hw, "10.9.0", "9.0")
    with pytest.raises(DrsedgeError, match="same major"):
        check_sidecar(hw, "11.0.0", "9.0")
    (tmp_path / "x.engine.json").write_text(json.dumps(side))
    assert read_sidecar(tmp_path / "x.engine")["plugin_sha256"] == side["plugin_sha256"]
    with pytest.raises(DrsedgeError, match="no sidecar"):
        read_sidecar(tmp_path / "y.engine")


def test_cli_print_trtexec_and_errors(onnx_files, tmp_path, capsys):
    native, fused, plugin = onnx_files
    assert main(["build-engine", str(native), "-o", str(tmp_path / "e.engine"), "--precision", "fp32", "--print-trtexec"]) == 0
    assert capsys.readouterr().out.startswith("trtexec --onnx=")
    assert main(["build-engine", str(fused), "-o", str(tmp_path / "e.engine"), "--print-trtexec"]) == 2
    assert "no plugin library" in capsys.readouterr().err
    assert main(["build-engine", str(native), "-o", str(tmp_path / "e.engine"), "--opt-shape", "1x3x800x800", "--print-trtexec"]) == 2
    assert "outside" in capsys.readouterr().err
    assert not (tmp_path / "e.engine").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="building a TensorRT engine needs a CUDA GPU")
def test_build_fp32_engine(onnx_files, tmp_path):
    pytest.importorskip("tensorrt", reason="TensorRT Python bindings not installed (pip install -e '.[trt]')")
    from drsedge.runtime.trt_engine import build_engine

    native, _, _ = onnx_files
    engine, side = build_engine(BuildOptions(str(native), str(tmp_path / "s.engine"), precision="fp32"))
    assert engine.is_file() and side["precision"] == "fp32"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_check_with_engine_without_gpu_is_a_clear_error(onnx_files, tmp_path, capsys, data_dir):
    native, _, _ = onnx_files
    code = main(["check", "--test", str(data_dir / "rain200H" / "test"), "--onnx", str(native), "--engine", f"trt_fp16={tmp_path / 'x.engine'}",
                 "--limit", "1", "--out", str(tmp_path / "r")])
    assert code == 2 and "needs a CUDA GPU" in capsys.readouterr().err
