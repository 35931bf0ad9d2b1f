"""TensorRT by the book, without TensorRT: the per-version dispatch, the function-stripped ONNX, trtexec lines per
version, profile/sidecar checks, the FP16 ONNX (precision in the graph). Building skips without TensorRT + GPU."""

import json

import onnx
import pytest
import torch

from drsedge.backend.trt import (
    BuildOptions,
    Profile,
    build_path,
    check_sidecar,
    make_sidecar,
    parse_version,
    read_sidecar,
    trtexec_command,
    verify_plugin_layers,
)
from drsedge.backend.trt.onnx_prep import inspect, strip_fused_functions, write_plugin_only_copy
from drsedge.cli import main
from drsedge.errors import DrsedgeError
from drsedge.export import export_onnx
from drsedge.models import student_config
from drsedge.onnx_graph import fused_nodes, graph_float_types
from tests.conftest import one_error_line

# (version, strongly typed, network creation flag, strip local function, trtexec plugin flag, --stronglyTyped, opt level flag)
DISPATCH = [
    ("8.5.2.2", False, "EXPLICIT_BATCH", True, "--plugins", False, False),
    ("8.6.1.post1", False, "EXPLICIT_BATCH", True, "--staticPlugins", False, True),
    ("10.3.0", False, None, True, "--staticPlugins", False, True),
    ("10.7.0.23", False, None, False, "--staticPlugins", False, True),
    ("10.12.0", True, "STRONGLY_TYPED", False, "--staticPlugins", True, True),
    ("10.13.0.35", True, "STRONGLY_TYPED", False, "--staticPlugins", True, True),
    ("11.1.0.106", True, None, False, "--staticPlugins", False, True),
    ("11.4", True, None, False, "--staticPlugins", False, True),
]


@pytest.mark.parametrize("version,strong,flag,strip,plugin_flag,st_flag,opt_level", DISPATCH, ids=[d[0] for d in DISPATCH])
def test_dispatch_per_version(version, strong, flag, strip, plugin_flag, st_flag, opt_level):
    p = build_path(version)
    assert (p.strongly_typed, p.create_flag, p.strip_local_functions, p.trtexec_plugin_flag, p.trtexec_strongly_typed,
            p.builder_optimization_level) == (strong, flag, strip, plugin_flag, st_flag, opt_level)
    assert p.weak_precision_flags is not strong


def test_unsupported_versions_are_refused():
    for bad in ("8.4.3", "7.2", "ten", ""):
        with pytest.raises(DrsedgeError, match="not supported|is not MAJOR.MINOR"):
            build_path(bad)
    assert parse_version("10.13.0.35") == (10, 13)


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("trt")
    torch.manual_seed(0)
    model = student_config(dim=8, num_blocks=[1, 1, 1, 1]).build()
    native = export_onnx(model, d / "native.onnx")
    fused = export_onnx(model, d / "fused.onnx", attention="fused")
    plugin = d / "libdrsedge_trt_plugin_static.so"
    plugin.write_bytes(b"\x7fELF stand-in for flag tests\0drsedge-plugin-registration:static\0")
    return native, fused, plugin


@pytest.fixture(scope="module")
def dynamic_plugin(tmp_path_factory):
    p = tmp_path_factory.mktemp("dyn") / "libdrsedge_trt_plugin.so"
    p.write_bytes(b"\x7fELF stand-in for flag tests\0drsedge-plugin-registration:dynamic\0")
    return p


def test_function_stripped_copy_keeps_plugin_attributes(onnx_files, tmp_path):
    _, fused, _ = onnx_files
    m = onnx.load(str(fused))
    assert any(f.domain == "drsedge" for f in m.functions)
    copy = write_plugin_only_copy(fused, tmp_path / "x.plugin_only.onnx")
    s = onnx.load(str(copy))
    assert not any(f.domain == "drsedge" for f in s.functions)
    nodes = [n for n in s.graph.node if n.op_type == "TopKSparseSoftmax"]
    assert len(nodes) == len(fused_nodes(m)) > 0
    for n in nodes:
        assert {"ks", "plugin_version", "plugin_namespace"} <= {a.name for a in n.attribute}
    assert inspect(copy)["fused_nodes"] == fused_nodes(m)
    # a fused node that lost its plugin attributes is refused
    bad = onnx.load(str(fused))
    node = next(n for n in bad.graph.node if n.op_type == "TopKSparseSoftmax")
    keep = [a for a in node.attribute if a.name != "plugin_namespace"]
    del node.attribute[:]
    node.attribute.extend(keep)
    with pytest.raises(DrsedgeError, match="plugin_namespace"):
        strip_fused_functions(bad)


def test_plugin_layer_count_names_the_first_missing_node():
    verify_plugin_layers(["a", "b"], ["a", "b"], "m.onnx")
    with pytest.raises(DrsedgeError, match="'b' was imported as something else"):
        verify_plugin_layers(["a", "b"], ["a"], "m.onnx")
    with pytest.raises(DrsedgeError, match="2 TopKSparseSoftmax node"):
        verify_plugin_layers(["a", "b"], [], "m.onnx")


def _flags(cmd: str) -> set[str]:
    return {a.split("=", 1)[0] for a in cmd.split()}


def test_trtexec_lines_per_version(onnx_files):
    _native, fused, plugin = onnx_files
    o = BuildOptions(str(fused), "s.engine", precision="fp16", plugin=str(plugin), timing_cache="t.cache")
    o.validate()
    v85 = trtexec_command(o, build_path("8.5"))
    assert {"--plugins", "--fp16", "--precisionConstraints", "--layerPrecisions"} <= _flags(v85)
    assert "--builderOptimizationLevel" not in _flags(v85)
    v86 = trtexec_command(o, build_path("8.6"))
    assert {"--staticPlugins", "--fp16", "--builderOptimizationLevel"} <= _flags(v86)  # --plugins is deprecated in 8.6
    assert f"--plugins={plugin}" in v85 and f"--staticPlugins={plugin}" in v86  # the library given, loaded as it registers
    v103 = trtexec_command(o, build_path("10.3"))
    assert {"--staticPlugins", "--fp16"} <= _flags(v103) and "--stronglyTyped" not in _flags(v103)
    v1013 = trtexec_command(o, build_path("10.13"))
    assert "--stronglyTyped" in _flags(v1013) and not _flags(v1013) & {"--fp16", "--int8", "--layerPrecisions", "--precisionConstraints"}
    v11 = trtexec_command(o, build_path("11.4"))
    assert not _flags(v11) & {"--fp16", "--int8", "--best", "--stronglyTyped", "--layerPrecisions", "--plugins"}
    assert "--staticPlugins" in _flags(v11) and "--optShapes=image:1x3x256x256" in v11 and "--memPoolSize=workspace:1024" in v11
    # FP16 safety on weak typing: LayerNorm and q/k normalisation nodes named exactly, kept in FP32
    spec = next(a for a in v86.split() if a.startswith("--layerPrecisions="))
    names = {n.name for n in onnx.load(str(fused)).graph.node}
    kept = [s.rsplit(":", 1)[0] for s in spec.split("=", 1)[1].split(",")]
    assert kept and all(k in names for k in kept) and any("norm1/body" in k for k in kept)
    # the top-k attention core and the fused nodes are pinned too (weak typing would pick FP16 for them)
    assert set(fused_nodes(onnx.load(str(fused)))) <= set(kept) and any("/attn/" in k and "Mul" in k for k in kept)
    o8 = BuildOptions(str(_native), "s.engine", precision="int8")
    o8.precision = "int8"  # flags only (validate would ask for a Q/DQ graph)
    assert "--layerPrecisions" in " ".join(trtexec_command(o8, build_path("10.3")).split()) and "--layerPrecisions" not in \
        trtexec_command(BuildOptions(str(_native), "s.engine", precision="fp32"), build_path("10.3"))
    # INT8 on weak typing: explicit Q/DQ with --fp16 --int8, never a calibrator
    assert "--calib" not in v86


def test_weak_fp32_layers_are_float_valued_and_cover_the_attention_core(onnx_files):
    """Review defects 4 and 5: the TKSA core and fused nodes are pinned; INT64 shape Divs (``c // heads``) are not."""
    from drsedge.backend.trt import weak_fp32_layers
    from drsedge.onnx_graph import fp16_unsafe_nodes, value_types
    from drsedge.onnx_io import load_onnx

    native, fused, _ = onnx_files
    torch.manual_seed(0)  # the unfolded upstream structure still computes c // heads as INT64 shape arithmetic
    upstream = export_onnx(student_config(dim=8, num_blocks=[1, 1, 1, 1]).build(), native.with_name("upstream.onnx"),
                           structure="upstream")
    seen_int_divs = False
    for path in (native, fused, upstream):
        m = onnx.load(str(path))
        types = value_types(m)
        by_name = {n.name: n for n in m.graph.node}
        int_divs = [n.name for n in m.graph.node if n.op_type == "Div" and "/attn/" in n.name
                    and types.get(n.output[0]) == onnx.TensorProto.INT64]
        seen_int_divs |= bool(int_divs)
        for names in (fp16_unsafe_nodes(load_onnx(path)), weak_fp32_layers(path)):
            assert names and not set(names) & set(int_divs)
            assert all(types.get(o) in (1, 10) for nm in names for o in by_name[nm].output if by_name[nm].op_type != "TopKSparseSoftmax")
        core = weak_fp32_layers(path)
        assert any(by_name[n].op_type in ("TopK", "Softmax") for n in core) or set(fused_nodes(m)) <= set(core)
    assert seen_int_divs, "no export has integer shape-arithmetic Divs inside attention: the check above tests nothing"


def test_plugin_library_kind_and_the_right_one_per_version(onnx_files, dynamic_plugin, tmp_path):
    """Review defect 1/6: the library's registration kind is read from its marker; 8.5 cannot use the loadLibrary
    library, version-compatible engines must serialize it; trtexec gets the flag that matches the library."""
    from drsedge.backend.trt import check_plugin, plugin_kind

    _, fused, static = onnx_files
    assert plugin_kind(static) == "static" and plugin_kind(dynamic_plugin) == "dynamic"
    other = tmp_path / "libother.so"
    other.write_bytes(b"\x7fELF no marker")
    with pytest.raises(DrsedgeError, match="not a drsedge TopKSparseSoftmax plugin library"):
        plugin_kind(other)
    with pytest.raises(DrsedgeError, match="no IPluginRegistry::loadLibrary.*libdrsedge_trt_plugin_static.so"):
        check_plugin(dynamic_plugin, build_path("8.5"))
    with pytest.raises(DrsedgeError, match="version-compatible.*libdrsedge_trt_plugin.so"):
        check_plugin(static, build_path("10.3"), version_compatible=True)
    assert check_plugin(dynamic_plugin, build_path("8.6"), version_compatible=True) == "dynamic"
    o = BuildOptions(str(fused), str(tmp_path / "v.engine"), precision="fp32", plugin=str(dynamic_plugin), version_compatible=True)
    line = trtexec_command(o, build_path("10.13"))
    assert f"--dynamicPlugins={dynamic_plugin}" in line and f"--setPluginsToSerialize={dynamic_plugin}" in line
    assert "--staticPlugins" not in line and "--versionCompatible" in line
    with pytest.raises(DrsedgeError, match="no IPluginRegistry::loadLibrary"):
        BuildOptions(str(fused), str(tmp_path / "w.engine"), plugin=str(dynamic_plugin)).validate(build_path("8.5"))
    with pytest.raises(DrsedgeError, match="version-compatible"):
        BuildOptions(str(fused), str(tmp_path / "w.engine"), precision="fp32", plugin=str(static),
                     version_compatible=True).validate(build_path("10.13"))
    # on 8.5 the refusal is the flag, not "pass the loadLibrary library", which 8.5 would then refuse (issue 37)
    with pytest.raises(DrsedgeError, match="8.5 has no hardware/version-compatible engines"):
        BuildOptions(str(fused), str(tmp_path / "w.engine"), precision="fp32", plugin=str(static),
                     version_compatible=True).validate(build_path("8.5"))


def test_int8_float_precision_is_stated_per_version(onnx_files):
    """Review defect 7: the same FP32 Q/DQ graph is INT8+FP16 on weak typing and INT8+FP32 on strong typing."""
    from drsedge.backend.trt.config import int8_float_precision

    info = {"float_types": ["float32"]}
    assert int8_float_precision(build_path("10.3"), info) == "fp16"
    assert int8_float_precision(build_path("10.13"), info) == "fp32"
    assert int8_float_precision(build_path("11.1"), {"float_types": ["float16", "float32"]}) == "fp16"


def test_profile_comes_from_the_onnx_and_refuses_bad_dims(onnx_files, tmp_path):
    native, _, _ = onnx_files
    p = Profile().for_onnx(native)
    assert p.input == "image"
    with pytest.raises(DrsedgeError, match="outside"):
        Profile(min=(1, 3, 64, 64), opt=(1, 3, 32, 32), max=(1, 3, 128, 128)).check()
    with pytest.raises(DrsedgeError, match="multiples of 8"):
        Profile(opt=(1, 3, 250, 256)).check()
    with pytest.raises(DrsedgeError, match="NxCxHxW"):
        Profile.parse("256x256")
    for bad in ("0x3x64x64", "1x3x-8x64"):
        with pytest.raises(DrsedgeError, match="> 0"):
            Profile.parse(bad)
    with pytest.raises(DrsedgeError, match="> 0"):
        Profile(min=(0, 3, 64, 64)).check()
    # a renamed input is read from the file, not assumed
    m = onnx.load(str(native))
    old = m.graph.input[0].name
    m.graph.input[0].name = "frames"
    for n in m.graph.node:
        n.input[:] = ["frames" if i == old else i for i in n.input]
    onnx.save(m, tmp_path / "renamed.onnx")
    assert Profile().for_onnx(tmp_path / "renamed.onnx").input == "frames"


def test_custom_op_needs_plugin_int8_needs_qdq_strong_fp16_needs_fp16_graph(onnx_files, tmp_path):
    native, fused, plugin = onnx_files
    with pytest.raises(DrsedgeError, match="no plugin library"):
        BuildOptions(str(fused), str(tmp_path / "e")).validate()
    with pytest.raises(DrsedgeError, match="plugin library not found"):
        BuildOptions(str(fused), str(tmp_path / "e"), plugin=str(tmp_path / "missing.so")).validate()
    BuildOptions(str(fused), str(tmp_path / "e"), plugin=str(plugin)).validate()
    with pytest.raises(DrsedgeError, match="explicit quantization"):
        BuildOptions(str(native), str(tmp_path / "e"), precision="int8").validate()
    BuildOptions(str(native), str(tmp_path / "e"), precision="fp16").validate(build_path("10.3"))
    for v in ("10.13", "11.4"):
        with pytest.raises(DrsedgeError, match="drsedge export MODEL --precision fp16"):
            BuildOptions(str(native), str(tmp_path / "e"), precision="fp16").validate(build_path(v))
    with pytest.raises(DrsedgeError, match="8.6"):
        BuildOptions(str(native), str(tmp_path / "e"), precision="fp32", version_compatible=True).validate(build_path("8.5"))
    with pytest.raises(DrsedgeError, match="overwrite"):
        BuildOptions(str(native), str(native), precision="fp32").validate()


def test_sidecar_refuses_other_trt_gpu_or_plugin(onnx_files, tmp_path):
    native, fused, plugin = onnx_files
    o = BuildOptions(str(fused), str(tmp_path / "s.engine"), plugin=str(plugin))
    side = make_sidecar(o, "10.3.0", "Orin", "8.7", 12.0, build_path("10.3").to_dict(), plugin_layers=2)
    assert side["build_path"]["strip_local_functions"] and side["plugin_layers"] == 2
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
    check_sidecar(hw, "11.0.0", "9.0")  # 10 -> 11 is supported (NVIDIA "Engine Compatibility", 11.1 docs)
    for runtime in ("10.2.0", "12.0.0"):  # an older runtime, or a major jump NVIDIA does not support
        with pytest.raises(DrsedgeError, match="cannot run on"):
            check_sidecar(hw, runtime, "9.0")
    (tmp_path / "x.engine.json").write_text(json.dumps(side))
    assert read_sidecar(tmp_path / "x.engine")["plugin_sha256"] == side["plugin_sha256"]
    with pytest.raises(DrsedgeError, match="no sidecar"):
        read_sidecar(tmp_path / "y.engine")
    (tmp_path / "z.engine.json").write_text("[1, 2")
    with pytest.raises(DrsedgeError, match="corrupt"):
        read_sidecar(tmp_path / "z.engine")


def test_cli_print_trtexec_and_errors(onnx_files, tmp_path, capsys):
    native, fused, plugin = onnx_files
    assert main(["build-engine", str(native), "-o", str(tmp_path / "e.engine"), "--precision", "fp32", "--print-trtexec"]) == 0
    assert capsys.readouterr().out.startswith("trtexec --onnx=")
    # before 10.7 the recipe builds from the function-stripped copy written next to the engine
    assert main(["build-engine", str(fused), "-o", str(tmp_path / "f.engine"), "--plugin", str(plugin), "--print-trtexec",
                 "--trt-version", "10.3"]) == 0
    out = capsys.readouterr().out
    assert f"--onnx={tmp_path / 'f.engine.plugin_only.onnx'}" in out and (tmp_path / "f.engine.plugin_only.onnx").is_file()
    assert main(["build-engine", str(fused), "-o", str(tmp_path / "g.engine"), "--plugin", str(plugin), "--print-trtexec",
                 "--trt-version", "10.13", "--precision", "fp32"]) == 0
    assert f"--onnx={fused}" in capsys.readouterr().out and not (tmp_path / "g.engine.plugin_only.onnx").exists()
    for args, msg in (
        ([str(fused), "--print-trtexec"], "no plugin library"),
        ([str(native), "--opt-shape", "1x3x800x800", "--print-trtexec"], "outside"),
        ([str(native), "--min-shape", "0x3x64x64", "--print-trtexec"], "> 0"),
        ([str(native), "--print-trtexec", "--trt-version", "8.2"], ">= 8.5"),
        ([str(native), "--print-trtexec", "--trt-version", "11.4", "--precision", "fp16"], "--precision fp16"),
    ):
        assert main(["build-engine", *args, "-o", str(tmp_path / "e.engine")]) == 2
        err = capsys.readouterr().err
        one_error_line(err, msg)
    assert not (tmp_path / "e.engine").exists() and not (tmp_path / "e.engine.json").exists()


def test_build_without_tensorrt_is_one_line(onnx_files, tmp_path, capsys):
    pytest.importorskip("polygraphy")
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    native, _, _ = onnx_files
    assert main(["build-engine", str(native), "-o", str(tmp_path / "e.engine"), "--precision", "fp32"]) == 2
    err = capsys.readouterr().err
    one_error_line(err, "TensorRT Python bindings are not installed")
    assert not any(tmp_path.iterdir())


def test_fp16_onnx_islands_io_and_fidelity(tmp_path, data_dir):
    """Precision in the graph: FP16 tensors except the islands fp16-check names, FP32 IO, output close to FP32 on real frames."""
    from drsedge.calibration.calib import calibration_set
    from drsedge.export.fp16 import convert_fp16
    from drsedge.export.fp16_range import fp16_overflows, fp16_ranges

    torch.manual_seed(0)
    model = student_config(dim=8, num_blocks=[1, 1, 1, 1]).build()
    src = export_onnx(model, tmp_path / "s.onnx")
    images = calibration_set([data_dir / "real"], size=None, limit=2)
    res = convert_fp16(src, tmp_path / "s16.onnx", images.inputs, [f.name for f in images.files])
    m = onnx.load(str(tmp_path / "s16.onnx"))
    assert "float16" in graph_float_types(m)
    for vi in list(m.graph.input) + list(m.graph.output):
        assert vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    overflow = {r.node for r in fp16_overflows(fp16_ranges(src, images.inputs, (720, 1280)))}
    assert overflow and overflow <= set(res.islands)
    assert res.mean_psnr > 40 and min(res.psnr_vs_fp32.values()) > 35
    assert "float16" not in graph_float_types(onnx.load(str(src)))
    with pytest.raises(DrsedgeError, match="already holds FP16"):
        convert_fp16(tmp_path / "s16.onnx", tmp_path / "again.onnx", images.inputs)
    assert not (tmp_path / "again.onnx").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="building a TensorRT engine needs a CUDA GPU")
def test_build_fp32_engine(onnx_files, tmp_path):
    pytest.importorskip("tensorrt", reason="TensorRT Python bindings not installed (pip install -e '.[trt]')")
    from drsedge.backend.trt.loader import build_engine

    native, _, _ = onnx_files
    engine, side = build_engine(BuildOptions(str(native), str(tmp_path / "s.engine"), precision="fp32"))
    assert engine.is_file() and side["precision"] == "fp32" and side["plugin_layers"] == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_check_with_engine_without_gpu_is_a_clear_error(onnx_files, tmp_path, capsys, data_dir):
    native, _, _ = onnx_files
    eng = tmp_path / "x.engine"
    args = ["check", "--test", str(data_dir / "rain200H" / "test"), "--onnx", str(native), "--engine", f"trt_fp16={eng}", "--limit", "1",
            "--out", str(tmp_path / "r")]
    assert main(args) == 2 and "engine file not found" in capsys.readouterr().err
    eng.write_bytes(b"\0" * 64)  # the same engine model as `drsedge stream`: the sidecar is read before TensorRT
    (tmp_path / "x.engine.json").write_text(json.dumps({"profile": {"input": "input", "min": [1, 3, 8, 8], "opt": [1, 3, 8, 8],
                                                                     "max": [1, 3, 256, 256]}}))
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and ("TensorRT" in one_error_line(err) or "cuda" in err.lower()), err
    assert not (tmp_path / "r" / "report.md").exists()


def test_a_shape_profile_for_a_static_onnx_is_refused_not_dropped(tmp_path, capsys):
    """A profile given for a static ONNX was dropped without a word (issue 37); now refused in one line, and the static
    shape alone is fine."""
    from drsedge.cli import main
    from tests.conftest import one_error_line, static_conv_onnx

    static_conv_onnx(tmp_path / "s.onnx")
    base = ["build-engine", str(tmp_path / "s.onnx"), "-o", str(tmp_path / "s.engine"), "--precision", "fp32", "--print-trtexec",
            "--trt-version", "10.13"]
    assert main(base) == 0
    capsys.readouterr()
    assert main([*base, "--max-shape", "1x3x720x1280"]) == 2
    one_error_line(capsys.readouterr().err, "s.onnx", "static export 1x3x64x64 takes no shape profile")
