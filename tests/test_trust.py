"""Issue 21: no silent result, no lost file, signals handled like a service, the same numbers on every machine.
Each test fails on 4ce09a9 (the main the issue was filed against)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from drsedge.cli import main
from drsedge.models import student_config
from tests.runtime.test_stream import _count_frames
from tests.test_guards import TINY, _exit_code, _one_line


def _md5(p: Path) -> str:
    return hashlib.md5(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    from drsedge.export import export_onnx

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("onnx")
    return export_onnx(student_config(**TINY).build(), d / "m.onnx")


def _frames(folder: Path, sizes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    return folder


def _avi(path: Path, n: int, hw=(64, 96)) -> Path:
    import cv2

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (hw[1], hw[0]))
    rng = np.random.default_rng(1)
    for _ in range(n):
        w.write(rng.integers(0, 255, (hw[0], hw[1], 3), dtype=np.uint8))
    w.release()
    return path


# -- data loss ------------------------------------------------------------------------------------------------
def test_stream_stats_never_overwrite_the_source_or_the_model(tmp_path, tiny_onnx, capsys):
    src = _avi(tmp_path / "in.avi", 3)
    before, model_before = _md5(src), _md5(tiny_onnx)
    for target in (src, tiny_onnx):
        code = main(["stream", str(src), "--model", str(tiny_onnx), "--quiet", "--stats", str(target)])
        _one_line(capsys, code, str(target), "--stats")
    assert _md5(src) == before and _md5(tiny_onnx) == model_before
    # the default OUTPUT.json goes through the same guard: an output named after the model's sidecar-like path
    side = tmp_path / "out.avi.json"
    side.write_text("precious")
    code = main(["stream", str(src), "--model", str(tiny_onnx), "--quiet", "-o", str(tmp_path / "out.avi"), "--reference", str(side)])
    assert code == 2 and side.read_text() == "precious"


# -- silent wrong results ---------------------------------------------------------------------------------------
def test_float_tiff_in_unit_range_is_read_by_its_range(tmp_path, capsys):
    from drsedge.data.images import read_image

    rng = np.random.default_rng(0)
    a = rng.random((32, 32)).astype(np.float32)
    Image.fromarray(a, mode="F").save(tmp_path / "unit.tif")
    Image.fromarray(a * 255.0, mode="F").save(tmp_path / "byte.tif")
    np.testing.assert_allclose(read_image(tmp_path / "unit.tif")[..., 0], a, atol=1e-6)
    np.testing.assert_allclose(read_image(tmp_path / "byte.tif")[..., 0], a, atol=1e-5)
    Image.fromarray(a * 1000.0, mode="F").save(tmp_path / "big.tif")
    (tmp_path / "p").mkdir()
    (tmp_path / "t").mkdir()
    shutil.copy(tmp_path / "big.tif", tmp_path / "p" / "x.tif")
    shutil.copy(tmp_path / "unit.tif", tmp_path / "t" / "x.tif")
    _one_line(capsys, main(["metrics", str(tmp_path / "p"), str(tmp_path / "t")]), "x.tif", "rescale")


def test_metrics_json_is_strict_and_same_stems_are_refused(tmp_path, capsys):
    _frames(tmp_path / "a", [(32, 32)])
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert main(["metrics", str(tmp_path / "a"), str(tmp_path / "b"), "--json"]) == 0
    out = capsys.readouterr().out
    d = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert d["psnr"] == "inf" and d["per_image"]["000"]["psnr"] == "inf"
    Image.open(tmp_path / "a" / "000.png").convert("RGB").save(tmp_path / "a" / "000.jpg")
    _one_line(capsys, main(["metrics", str(tmp_path / "a"), str(tmp_path / "b")]), "000", "same name")


def test_zero_steps_is_refused_before_training(tmp_path, capsys):
    code = _exit_code(["train-teacher", "--steps", "0", "--out", str(tmp_path / "t")])
    _one_line(capsys, code, "--steps", ">= 1")
    assert not (tmp_path / "t").exists() or not any((tmp_path / "t").iterdir())


def test_truncated_video_is_not_a_success(tmp_path, tiny_onnx, capsys):
    src = _avi(tmp_path / "full.avi", 12)
    cut = tmp_path / "cut.avi"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size * 4 // 10])
    code = main(["stream", str(cut), "--model", str(tiny_onnx), "--quiet", "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "announces 12 frames" in err, err
    stats = json.loads((tmp_path / "o.json").read_text())
    assert stats["frames_announced"] == 12 and stats["frames_read"] < 12


def test_video_output_refuses_a_second_frame_size(tmp_path, tiny_onnx, capsys):
    src = _frames(tmp_path / "f", [(64, 64), (64, 64), (96, 64), (64, 64)])
    out = tmp_path / "o.avi"
    _one_line(capsys, main(["stream", str(src), "--model", str(tiny_onnx), "--quiet", "-o", str(out)]), "o.avi", "one frame size")
    assert _count_frames(out) == 2  # the frames before the odd one, playable


def test_reference_of_another_size_is_reported(tmp_path, tiny_onnx, capsys):
    src = _frames(tmp_path / "f", [(64, 64), (64, 64)])
    ref = _frames(tmp_path / "r", [(32, 32), (32, 32)])
    assert main(["stream", str(src), "--model", str(tiny_onnx), "--quiet", "--reference", str(ref), "--stats", str(tmp_path / "s.json")]) == 0
    err = capsys.readouterr().err
    assert "2 reference frame(s) differ in size" in err
    assert json.loads((tmp_path / "s.json").read_text())["reference_mismatches"] == 2


def test_quantize_refuses_a_nan_model_and_writes_nothing(tmp_path, tiny_onnx, data_dir, capsys):
    m = onnx.load(str(tiny_onnx))
    init = next(i for i in m.graph.initializer if i.data_type == onnx.TensorProto.FLOAT and len(i.dims) == 4)
    arr = onnx.numpy_helper.to_array(init).copy()
    arr[:] = np.nan
    init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
    onnx.save(m, tmp_path / "nan.onnx")
    out = tmp_path / "q.onnx"
    code = main(["quantize", str(tmp_path / "nan.onnx"), "--calib", str(data_dir / "real"), "--limit", "1", "-o", str(out)])
    _one_line(capsys, code, "nan.onnx", "NaN")
    assert not out.exists()


def test_nan_budget_is_refused(tmp_path, capsys, data_dir):
    for bad, needle in (("student=nan", "finite"), ("student=abc", "'abc' is not a number"), ("student", "STAGE=DB")):
        code = main(["check", "--test", str(data_dir / "rain200H" / "test"), "--budget", bad, "--out", str(tmp_path / "r")])
        _one_line(capsys, code, "--budget", needle)


# -- names, checkpoints ---------------------------------------------------------------------------------------------
def test_shipped_names_work_for_info_and_export(tmp_path, capsys):
    assert main(["info", "--checkpoint", "shipped:student", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["params"] > 0
    from drsedge.models.checkpoint import load_any

    _, cfg = load_any("shipped:student")
    assert cfg.dim > 0


def test_params_ema_is_preferred_over_params(tmp_path):
    from drsedge.models.checkpoint import load_any

    torch.manual_seed(0)
    cfg = student_config(**TINY)
    good = cfg.build().state_dict()
    junk = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in good.items()}
    torch.save({"params": junk, "params_ema": good}, tmp_path / "both.pth")
    model, _ = load_any(tmp_path / "both.pth")
    for k, v in good.items():
        assert torch.equal(model.state_dict()[k], v), k


# -- late refusals, leftovers, modes, allocations --------------------------------------------------------------------
def test_pipeline_refuses_held_out_calibration_before_any_stage(tmp_path, data_dir, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"extends: demo\nrun_dir: {tmp_path / 'run'}\ndata: {{root: {data_dir}, calibration: rain100L/input}}\n")
    code = main(["pipeline", "--config", str(cfg)])
    _one_line(capsys, code, "calibration")
    run = tmp_path / "run"
    assert not (run / "teacher").exists() and not (run / "export").exists()


def test_derain_checks_every_input_before_the_first_write(tmp_path, tiny_onnx, capsys):
    src = _frames(tmp_path / "in", [(32, 32), (32, 32)])
    p = src / "001.png"
    p.write_bytes(p.read_bytes()[:200])
    _one_line(capsys, main(["derain", str(tiny_onnx), str(src), "-o", str(tmp_path / "out")]), "001.png")
    assert not list((tmp_path / "out").glob("*.png")) if (tmp_path / "out").exists() else True


def test_written_files_honour_the_umask(tmp_path):
    from drsedge.fileio import atomic_write

    old = os.umask(0o022)
    try:
        p = atomic_write(tmp_path / "a.txt", lambda t: Path(t).write_text("x"))
        assert stat.S_IMODE(p.stat().st_mode) == 0o644
        os.chmod(p, 0o640)
        atomic_write(p, lambda t: Path(t).write_text("y"))  # an existing file keeps its mode, as open() does
        assert stat.S_IMODE(p.stat().st_mode) == 0o640
        os.umask(0o077)
        assert stat.S_IMODE(atomic_write(tmp_path / "b.txt", lambda t: Path(t).write_text("x")).stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_huge_size_is_refused_before_allocating(capsys):
    _one_line(capsys, _exit_code(["info", "--hw", "100000", "100000"]), "--hw", "MP")


def test_huge_values_are_refused_before_allocating(tmp_path, data_dir, capsys):
    test = str(data_dir / "rain200H" / "test")
    code = _exit_code(["check", "--test", test, "--student", "shipped:student", "--latency-size", "100000", "100000"])
    _one_line(capsys, code, "--latency-size", "limit")
    code = main(["check", "--test", test, "--student", "shipped:student", "--latency-size", "16384", "16384", "-o", str(tmp_path / "r")])
    _one_line(capsys, code, "--latency-size", "16384x16384", "MP frame limit")
    code = main(["train-teacher", "--train", test, "-o", str(tmp_path / "t"), "--model", "dim=100000", "--steps", "1"])
    _one_line(capsys, code, "dim <= 1024")
    code = main(["train-teacher", "--train", test, "-o", str(tmp_path / "t"), "--batch-size", "100000", "--patch", "512", "--steps", "1"])
    _one_line(capsys, code, "batch_size x patch^2")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"run_dir: {tmp_path / 'run'}\ndata: {{root: {data_dir}, train: [rain200H/train], calibration: [clean], "
                   "test: rain200H/test}\nteacher: {}\nstudent: {}\ncheck: {latency_hw: [16384, 8192]}\n")
    _one_line(capsys, main(["pipeline", "--config", str(cfg)]), "check.latency_hw", "MP frame limit")
    assert not (tmp_path / "run").exists()


def test_newer_opset_gets_the_specific_line(tmp_path, tiny_onnx, capsys):
    m = onnx.load(str(tiny_onnx))
    m.opset_import[0].version = 99
    onnx.save(m, str(tmp_path / "o99.onnx"))
    src = _frames(tmp_path / "in", [(32, 32)])
    code = main(["derain", str(tmp_path / "o99.onnx"), str(src), "-o", str(tmp_path / "out")])
    _one_line(capsys, code, "o99.onnx", "opset 99", "--opset 17")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux) to fill a disk")
def test_full_disk_is_one_line_and_leaves_nothing(tmp_path):
    from drsedge.errors import DrsedgeError
    from drsedge.fileio import atomic_write, is_disk_full

    def write(tmp):  # what any writer sees on a full file system: ENOSPC from the kernel
        with open("/dev/full", "wb") as f:
            f.write(b"x" * (1 << 16))

    with pytest.raises(DrsedgeError, match="disk is full"):
        atomic_write(tmp_path / "model.safetensors", write)
    assert list(tmp_path.iterdir()) == []
    # torch.save and safetensors report it in their own words; the cause chain still says ENOSPC
    assert is_disk_full(RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file data/3: file write failed"))
    assert is_disk_full(Exception("Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: \"No space left on device\" })"))
    assert not is_disk_full(OSError(2, "No such file or directory"))


# -- the same numbers everywhere ---------------------------------------------------------------------------------------
def test_y_is_exact_integer_arithmetic():
    from drsedge.metrics.psnr_ssim import rgb_to_y

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    img[0, 0] = (5, 65, 25)  # 16 + 9307.5/255 = 52.5 exactly
    c = img.astype(object)  # Python integers: exact
    s = 16 * 255000 + 65481 * c[..., 0] + 128553 * c[..., 1] + 24966 * c[..., 2]
    want = ((s + 127500) // 255000).astype(np.float64)
    assert np.array_equal(rgb_to_y(img), want) and rgb_to_y(img)[0, 0] == 53.0
    assert rgb_to_y(img, "basicsr")[0, 0] == 52.5


# -- signals -----------------------------------------------------------------------------------------------------------
def _default_signals():
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a child of a shell that ignores SIGINT would inherit SIG_IGN
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_sigterm_stops_stream_like_ctrl_c(tmp_path, tiny_onnx):
    src = _avi(tmp_path / "long.avi", 400, (240, 320))
    out = tmp_path / "cut.avi"
    p = subprocess.Popen([sys.executable, "-m", "drsedge", "stream", str(src), "-o", str(out), "--model", str(tiny_onnx), "--quiet"],
                         stderr=subprocess.PIPE, text=True, preexec_fn=_default_signals, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while time.time() < deadline and not (out.exists() and out.stat().st_size > 20_000):
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143, err
    assert "SIGTERM" in err and "playable" in err
    stats = json.loads((tmp_path / "cut.avi.json").read_text())
    assert stats["interrupted"] and stats["signal"] == "SIGTERM"
    assert 0 < _count_frames(out) < 400
