"""drsedge stream and the torch-free runtime: a short real clip end to end, drop accounting on a slow consumer,
Ctrl-C leaves a playable file, tiled vs whole-frame seams, and no torch imported on the ONNX path."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

cv2 = pytest.importorskip("cv2", reason="opencv-python-headless not installed (pip install -e '.[runtime]')")

from drsedge.cli import main  # noqa: E402
from drsedge.export import export_onnx  # noqa: E402
from drsedge.models import student_config  # noqa: E402
from tests.conftest import one_error_line  # noqa: E402

pytestmark = pytest.mark.slow  # streams videos through subprocesses; deselect with -m 'not slow'


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    torch.manual_seed(0)
    return export_onnx(student_config(dim=8, num_blocks=[1, 1, 1, 1]).build(), tmp_path_factory.mktemp("m") / "s.onnx")


@pytest.fixture
def clip(tmp_path, data_dir):
    """12 rainy NTURain frames as an .avi (MJPG) and as a folder, with their clean frames."""
    src = data_dir / "video" / "nturain_a1"
    frames = sorted((src / "a1_Rain").iterdir())[:12]
    folder, clean = tmp_path / "frames", tmp_path / "clean"
    folder.mkdir()
    clean.mkdir()
    for f in frames:
        shutil.copy(f, folder / f.name)
        shutil.copy(src / "a1_GT" / f.name, clean / f.name)
    w = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25, (640, 480))
    for f in frames:
        w.write(cv2.imread(str(f)))
    w.release()
    return tmp_path / "clip.avi", folder, clean


def _count_frames(path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_stream_file_end_to_end(onnx_model, clip, tmp_path, capsys):
    video, folder, clean = clip
    out = tmp_path / "out.avi"
    assert main(["stream", str(video), "-o", str(out), "--model", str(onnx_model), "--quiet", "--side-by-side"]) == 0
    stats = json.loads((tmp_path / "out.avi.json").read_text())
    assert stats["frames_read"] == stats["frames_written"] == 12 and stats["dropped"] == 0 and not stats["live"]
    assert _count_frames(out) == 12
    cap = cv2.VideoCapture(str(out))
    assert cap.get(cv2.CAP_PROP_FRAME_WIDTH) == 1280  # input | derained
    lat = stats["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] and stats["fps"] > 0
    # a folder of frames with clean references: per-frame PSNR-Y and the flicker figure
    assert main(["stream", str(folder), "-o", str(tmp_path / "outdir"), "--model", str(onnx_model), "--quiet", "--reference", str(clean)]) == 0
    s2 = json.loads((tmp_path / "outdir.json").read_text())
    assert len(s2["psnr_y"]) == 12 and all(10 < v < 60 for v in s2["psnr_y"].values())
    assert s2["flicker"]["derained"] > 0 and s2["flicker"]["clean"] > 0
    assert len(list((tmp_path / "outdir").glob("*.png"))) == 12


def test_live_source_drops_oldest_when_the_model_is_slow(onnx_model, clip, monkeypatch):
    from drsedge.runtime import stream as st

    video, _, _ = clip
    real = st.open_source

    def live(spec):
        r = real(spec)
        r.live = True
        return r

    monkeypatch.setattr(st, "open_source", live)
    stats = st.run_stream(str(video), str(onnx_model), None, progress=False, queue_size=1, infer_delay_s=0.3)
    assert stats.frames_read == 12
    assert stats.dropped > 0 and stats.frames_written + stats.dropped == stats.frames_read


def test_sigint_mid_file_leaves_a_playable_file(onnx_model, clip, tmp_path):
    video, _, _ = clip
    long = tmp_path / "long.avi"
    cap, w = cv2.VideoCapture(str(video)), None
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    w = cv2.VideoWriter(str(long), cv2.VideoWriter_fourcc(*"MJPG"), 25, (640, 480))
    for _ in range(20):
        for f in frames:
            w.write(f)
    w.release()
    out = tmp_path / "cut.avi"
    p = subprocess.Popen([sys.executable, "-m", "drsedge", "stream", str(long), "-o", str(out), "--model", str(onnx_model), "--quiet"],
                         stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # not inherited SIG_IGN
    deadline = time.time() + 120
    while time.time() < deadline and not (out.exists() and out.stat().st_size > 50_000):
        time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    n = _count_frames(out)
    assert 0 < n < 240


def test_tiled_matches_whole_frame_away_from_seams(onnx_model, data_dir):
    from drsedge.data.images import read_image
    from drsedge.runtime.onnx_np import OnnxModel, restore_np

    m = OnnxModel(onnx_model)
    img = read_image(data_dir / "real" / "1.png")
    whole = restore_np(m, img)
    tiled = restore_np(m, img, tile=128, overlap=32)
    # tiles see less context (channel attention is global over the tile): measured mean |diff| on this untrained model
    assert tiled.shape == whole.shape and float(np.abs(tiled - whole).mean()) < 0.02


def test_onnx_path_imports_no_torch(onnx_model, data_dir, tmp_path):
    code = ("import sys; from drsedge.cli import main; "
            f"rc = main(['derain', {str(onnx_model)!r}, {str(data_dir / 'real')!r}, '-o', {str(tmp_path / 'd')!r}]); "
            f"rc2 = main(['stream', {str(data_dir / 'real')!r}, '--model', {str(onnx_model)!r}, '--quiet', '--max-frames', '2', "
            f"'--stats', {str(tmp_path / 's.json')!r}]); "
            "assert rc == rc2 == 0; print('TORCH' if 'torch' in sys.modules else 'NO_TORCH')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().endswith("NO_TORCH")
    assert len(list((tmp_path / "d").glob("*.png"))) == 8


def test_bad_sources_and_outputs(onnx_model, clip, tmp_path, capsys):
    video, folder, _ = clip
    for args, needle in (([str(tmp_path / "nope.mp4")], "no such file"), (["rtsp://127.0.0.1:9/none"], "cannot open"),
                         ([str(video), "-o", str(tmp_path / "x.xyz")], "unknown output kind"),
                         ([str(folder), "-o", str(folder / "sub")], "into the source")):
        assert main(["stream", *args, "--model", str(onnx_model), "--quiet"]) == 2
        err = capsys.readouterr().err
        one_error_line(err, needle)
    # a model whose input is not N x 3 x H x W
    from onnx import TensorProto, helper, save

    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, "H", "W"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, "H", "W"])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    save(m, tmp_path / "gray.onnx")
    assert main(["stream", str(video), "--model", str(tmp_path / "gray.onnx"), "--quiet"]) == 2
    assert "N x 3 x H x W" in capsys.readouterr().err


def test_static_onnx_frames_are_tiled_to_its_shape(onnx_model, clip, tmp_path):
    """A 128x128 static ONNX streams 640x480 frames through 128 px tiles (the shape decides, not a flag)."""
    import onnx

    video, _, _ = clip
    m = onnx.load(str(onnx_model))
    for d, v in zip(m.graph.input[0].type.tensor_type.shape.dim[2:], (128, 128), strict=True):
        d.ClearField("dim_param")
        d.dim_value = v
    static = tmp_path / "static128.onnx"
    onnx.save(m, str(static))
    assert main(["stream", str(video), "--model", str(static), "--quiet", "--max-frames", "2", "--stats", str(tmp_path / "s.json")]) == 0
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["tile"] == 128 and "static input 128x128" in s["tile_reason"] and s["frames_written"] == 2


def test_checkpoint_and_engine_models(clip, tmp_path, capsys):
    """A checkpoint streams through PyTorch; an engine without TensorRT (or without its sidecar) fails in one line."""
    from drsedge.models.checkpoint import save_model

    video, folder, _ = clip
    cfg = student_config(dim=8, num_blocks=[1, 1, 1, 1])
    tiny_ckpt = save_model(tmp_path / "s.safetensors", cfg.build(), cfg)
    assert main(["stream", str(folder), "--model", str(tiny_ckpt), "--quiet", "--max-frames", "3", "-o", str(tmp_path / "ck")]) == 0
    assert len(list((tmp_path / "ck").glob("*.png"))) == 3
    eng = tmp_path / "m.engine"
    eng.write_bytes(b"\0" * 64)
    assert main(["stream", str(video), "--model", str(eng), "--quiet"]) == 2
    assert "no sidecar" in capsys.readouterr().err
    (tmp_path / "m.engine.json").write_text(json.dumps({"profile": {"input": "input", "min": [1, 3, 8, 8], "opt": [1, 3, 8, 8],
                                                                    "max": [1, 3, 256, 256]}}))
    assert main(["stream", str(video), "--model", str(eng), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "TensorRT" in one_error_line(err) or "cuda" in err.lower(), err
    assert main(["stream", str(video), "--model", str(tiny_ckpt), "--provider", "cuda", "--quiet"]) == 2
    assert "checkpoints run in PyTorch" in capsys.readouterr().err


def test_device_disappearing_mid_stream_keeps_the_frames(onnx_model, clip, tmp_path, monkeypatch, capsys):
    """A live source whose device goes away after 5 frames: exit 2, one line, the 5 frames play."""
    from drsedge.runtime import stream as st

    video, _, _ = clip
    real = st.open_source

    def flaky(spec):
        r = real(spec)
        r.live, read, n = True, r.read, [0]

        def read5():
            n[0] += 1
            return read() if n[0] <= 5 else None

        r.read = read5
        return r

    monkeypatch.setattr(st, "open_source", flaky)
    out = tmp_path / "cam.avi"
    assert main(["stream", str(video), "-o", str(out), "--model", str(onnx_model), "--quiet"]) == 2
    err = capsys.readouterr().err
    one_error_line(err, "disappeared after 5 frames")
    assert _count_frames(out) == 5


def test_unavailable_codec_is_one_line(onnx_model, clip, tmp_path, monkeypatch, capsys):
    """An OpenCV build that cannot encode the container: exit 2, the message names the file and the way out."""
    video, _, _ = clip

    class NoCodec:
        def __init__(self, *a, **k):
            pass

        def isOpened(self):
            return False

        def release(self):
            pass

    monkeypatch.setattr(cv2, "VideoWriter", NoCodec)
    out = tmp_path / "x.mp4"
    assert main(["stream", str(video), "-o", str(out), "--model", str(onnx_model), "--quiet"]) == 2
    err = capsys.readouterr().err
    one_error_line(err, "cannot encode", "x.mp4")


def test_full_disk_mid_video_names_the_video_and_its_playable_frames(onnx_model, clip, tmp_path, monkeypatch, capsys):
    """OpenCV's ``VideoWriter.write`` returns nothing: a full disk left a truncated video (7 of 12 frames) and a message
    about the stats file only (issue 37). Free space is checked before every frame and the frames that play back are
    counted after the writer closes."""
    import collections

    from drsedge.runtime import stream as stream_mod

    video, _, _ = clip
    out = tmp_path / "out.avi"
    usage = collections.namedtuple("usage", "total used free")
    calls = {"n": 0}

    def disk_usage(path):
        calls["n"] += 1
        return usage(10**9, 10**9, 10**9 if calls["n"] <= 7 else 4096)

    monkeypatch.setattr(stream_mod.shutil, "disk_usage", disk_usage)
    assert main(["stream", str(video), "-o", str(out), "--model", str(onnx_model), "--quiet"]) == 2
    line = one_error_line(capsys.readouterr().err, "out.avi", "disk is full", "at frame 7", "7 frames of")
    assert "playable" in line and _count_frames(out) == 7


def test_a_silently_failing_writer_is_caught_by_the_playback_count(onnx_model, clip, tmp_path, monkeypatch, capsys):
    """A writer that drops frames without a word (what OpenCV does on an I/O error): the count after closing says so."""
    video, _, _ = clip
    real = cv2.VideoWriter

    class Lossy:
        def __init__(self, *a, **k):
            self.w, self.n = real(*a, **k), 0

        def isOpened(self):
            return self.w.isOpened()

        def write(self, frame):
            self.n += 1
            if self.n <= 5:
                self.w.write(frame)

        def release(self):
            self.w.release()

    monkeypatch.setattr(cv2, "VideoWriter", Lossy)
    out = tmp_path / "out.avi"
    assert main(["stream", str(video), "-o", str(out), "--model", str(onnx_model), "--quiet"]) == 2
    one_error_line(capsys.readouterr().err, "out.avi", "only 5 of the 12 frames written are playable")
