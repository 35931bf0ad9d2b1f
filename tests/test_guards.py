"""Issue 10: bad input never gets a traceback, a wrong model or lost data. One test per class; each asserts the
exit code, one line naming the file, and that inputs are unchanged and nothing was written."""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from drsedge.cli import main
from drsedge.models import save_model, student_config
from tests.conftest import one_error_line

TINY = dict(dim=8, num_blocks=[1, 1, 1, 1])


def _tree_hash(*paths) -> str:
    h = hashlib.sha256()
    for root in paths:
        root = Path(root)
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for f in files:
            if f.is_file():
                h.update(str(f.relative_to(root.parent)).encode() + f.read_bytes())
    return h.hexdigest()


def _one_line(capsys, code, *needles, exit_code=2):
    """``code`` is ``exit_code`` and stderr is one error line holding every needle (:func:`tests.conftest.one_error_line`)."""
    err = capsys.readouterr().err
    assert code == exit_code, err
    return one_error_line(err, *needles)


@pytest.fixture
def tiny_ckpt(tmp_path):
    torch.manual_seed(0)
    cfg = student_config(**TINY)
    return save_model(tmp_path / "s.safetensors", cfg.build(), cfg)


def _onnx(path: Path, nodes, inputs, outputs, inits=()):
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)
    return path


def _img(ch=3):
    return helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", ch, "H", "W"])


# 2. the held-out guard checks content, not names ---------------------------------------------------------
def test_copy_or_link_of_the_test_set_is_refused(tmp_path, data_dir, capsys):
    copy = tmp_path / "mydata"
    shutil.copytree(data_dir / "rain100L", copy)
    link = tmp_path / "train_link"
    os.symlink(data_dir / "rain100L", link)
    for d in (copy, link):
        code = main(["train-teacher", "--train", str(d), "--out", str(tmp_path / "t"), "--steps", "1"])
        _one_line(capsys, code, "held-out")
    calib = tmp_path / "calib"
    calib.mkdir()
    shutil.copy(data_dir / "rain100L" / "input" / "7.png", calib / "frame.png")
    code = main(["quantize", str(tmp_path / "x.onnx"), "--calib", str(calib), "-o", str(tmp_path / "q.onnx")])
    _one_line(capsys, code, "frame.png", "held-out")
    nested = tmp_path / "nested"  # a real folder whose input/ links into rain100L (rglob does not follow it)
    nested.mkdir()
    os.symlink(data_dir / "rain100L" / "input", nested / "input")
    code = main(["quantize", str(tmp_path / "x.onnx"), "--calib", str(nested), "-o", str(tmp_path / "q.onnx")])
    _one_line(capsys, code, "nested", "held-out")
    reenc = tmp_path / "reenc"  # other bytes, same pixels: a 16-bit re-encode of a Rain100L input
    reenc.mkdir()
    from PIL import Image

    px = np.asarray(Image.open(data_dir / "rain100L" / "input" / "7.png").convert("RGB")).astype(np.uint16) * 257
    import cv2

    cv2.imwrite(str(reenc / "frame16.png"), px[..., ::-1])
    assert (reenc / "frame16.png").read_bytes() != (data_dir / "rain100L" / "input" / "7.png").read_bytes()
    code = main(["quantize", str(tmp_path / "x.onnx"), "--calib", str(reenc), "-o", str(tmp_path / "q.onnx")])
    _one_line(capsys, code, "frame16.png", "same pixels")
    assert not (tmp_path / "t").exists() and not (tmp_path / "q.onnx").exists()


# 3. NaN and Inf stop the run ------------------------------------------------------------------------------
def test_nan_model_output_writes_nothing(tmp_path, data_dir, capsys):
    nan = helper.make_tensor("nan", TensorProto.FLOAT, [1], [float("nan")])
    model = _onnx(tmp_path / "nan.onnx", [helper.make_node("Mul", ["image", "nan"], ["out"])], [_img()],
                  [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3, "H", "W"])], [nan])
    before = _tree_hash(data_dir / "real")
    code = main(["derain", str(model), str(data_dir / "real"), "-o", str(tmp_path / "out")])
    _one_line(capsys, code, "NaN")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert _tree_hash(data_dir / "real") == before


def test_nan_checkpoint_is_refused(tmp_path, capsys):
    cfg = student_config(**TINY)
    m = cfg.build()
    state = {k: v.clone() for k, v in m.state_dict().items()}
    state["output.weight"][0, 0, 0, 0] = float("nan")
    from safetensors.torch import save_file

    save_file(state, str(tmp_path / "nan.safetensors"), metadata={"drsedge_model_config": __import__("json").dumps(cfg.to_dict())})
    code = main(["export", str(tmp_path / "nan.safetensors"), "-o", str(tmp_path / "n.onnx")])
    _one_line(capsys, code, "NaN or Inf", "nan.safetensors")
    assert not (tmp_path / "n.onnx").exists()


def test_absurd_learning_rate_saves_no_model(tmp_path, data_dir, capsys):
    code = main(["train-teacher", "--preset", "student", "--model", "dim=8", "--model", "num_blocks=[1,1,1,1]", "--train",
                 str(data_dir / "rain200L" / "train"), "--skip-held-out-copies", "--out", str(tmp_path / "t"), "--steps", "20", "--patch", "32", "--batch-size", "2",
                 "--lr", "1e30"])
    _one_line(capsys, code, "diverged")
    assert not (tmp_path / "t" / "model.safetensors").exists()


# 4. outputs never overwrite inputs ------------------------------------------------------------------------
def test_outputs_never_overwrite_inputs(tmp_path, tiny_ckpt, data_dir, capsys):
    frames = tmp_path / "frames"
    shutil.copytree(data_dir / "real", frames)
    before = _tree_hash(frames, tiny_ckpt)
    code = main(["derain", str(tiny_ckpt), str(frames), "-o", str(frames)])
    _one_line(capsys, code, "overwrite")
    code = _exit_code(["export", str(tiny_ckpt), "-o", str(tiny_ckpt)])  # argparse: ONNX outputs end in .onnx
    _one_line(capsys, code, "must end in .onnx")
    code = main(["derain", str(tiny_ckpt), str(frames / "1.png"), "-o", str(frames / "1.png")])  # one image onto itself
    _one_line(capsys, code, "overwrite")
    code = main(["prune", str(tiny_ckpt), "-o", str(tiny_ckpt)])
    _one_line(capsys, code, "overwrite")
    model = tmp_path / "m.onnx"
    shutil.copy(tiny_ckpt, tmp_path / "copy.safetensors")
    assert main(["export", str(tmp_path / "copy.safetensors"), "-o", str(model)]) == 0
    capsys.readouterr()
    h = _tree_hash(model)
    code = main(["quantize", str(model), "--calib", str(frames), "-o", str(model)])
    _one_line(capsys, code, "overwrite")
    assert _tree_hash(model) == h and _tree_hash(frames, tiny_ckpt) == before
    # two inputs with the same stem would collide in the output folder
    shutil.copy(frames / "1.png", frames / "1.jpg")
    code = main(["derain", str(tiny_ckpt), str(frames), "-o", str(tmp_path / "out")])
    _one_line(capsys, code, "same name")
    assert not (tmp_path / "out").exists()


def test_derain_one_image(tmp_path, tiny_ckpt, data_dir, capsys):
    """One image in (not only a folder): ``-o`` an image path or a folder; same pixels as the folder run; a non-image
    output suffix and a non-image input are refused in one line with nothing written."""
    from drsedge.data.images import read_image

    src = data_dir / "real" / "3.png"
    assert main(["derain", str(tiny_ckpt), str(src), "-o", str(tmp_path / "a.png")]) == 0
    assert main(["derain", str(tiny_ckpt), str(src), "-o", str(tmp_path / "d")]) == 0
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(src, one / "3.png")
    assert main(["derain", str(tiny_ckpt), str(one), "-o", str(tmp_path / "f")]) == 0
    ref = read_image(tmp_path / "f" / "3.png")
    assert np.array_equal(read_image(tmp_path / "a.png"), ref) and np.array_equal(read_image(tmp_path / "d" / "3.png"), ref)
    capsys.readouterr()
    _one_line(capsys, main(["derain", str(tiny_ckpt), str(src), "-o", str(tmp_path / "x.onnx")]), "PNG or JPEG")
    (tmp_path / "notes.txt").write_text("x")
    _one_line(capsys, main(["derain", str(tiny_ckpt), str(tmp_path / "notes.txt"), "-o", str(tmp_path / "y")]), "not an image")
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "y").exists()


# 5. no traceback for a user error -------------------------------------------------------------------------
def _png_header_only(path: Path, w: int, h: int) -> Path:
    """A tiny PNG whose header claims w x h (a decompression bomb costs nothing to make)."""
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    raw = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", raw) + chunk(b"IEND", b""))
    return path


def test_user_errors_are_one_line(tmp_path, tiny_ckpt, data_dir, capsys):
    bomb_dir = tmp_path / "bomb"
    bomb_dir.mkdir()
    _png_header_only(bomb_dir / "big.png", 10000, 10000)
    code = main(["derain", str(tiny_ckpt), str(bomb_dir), "-o", str(tmp_path / "o1")])
    _one_line(capsys, code, "big.png", "MP")
    # corrupt model metadata in a safetensors file
    from safetensors.torch import load_file, save_file

    bad = tmp_path / "badmeta.safetensors"
    save_file(load_file(str(tiny_ckpt)), str(bad), metadata={"drsedge_model_config": "{not json"})
    code = main(["export", str(bad), "-o", str(tmp_path / "b.onnx")])
    _one_line(capsys, code, "badmeta.safetensors", "corrupt model config")
    save_file(load_file(str(tiny_ckpt)), str(bad), metadata={"drsedge_model_config": '{"dim": "wide"}'})
    code = main(["export", str(bad), "-o", str(tmp_path / "b.onnx")])
    _one_line(capsys, code, "badmeta.safetensors", "dim")
    # an ONNX with one input channel
    one = _onnx(tmp_path / "gray.onnx", [helper.make_node("Identity", ["image"], ["out"])], [_img(1)],
                [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 1, "H", "W"])])
    code = main(["derain", str(one), str(data_dir / "real"), "-o", str(tmp_path / "o2")])
    _one_line(capsys, code, "gray.onnx", "N x 3 x H x W")
    # numbers argparse refuses
    for argv, needle in ((["derain", str(tiny_ckpt), str(data_dir / "real"), "-o", str(tmp_path / "o3"), "--tile", "100"], "multiple of 8"),
                         (["train-teacher", "--train", "x", "--out", str(tmp_path / "t"), "--checkpoint-every", "0"], ">= 1"),
                         (["train-teacher", "--train", "x", "--out", str(tmp_path / "t"), "--steps", "-5"], ">= 1"),
                         (["quantize", "x.onnx", "--calib", "c", "-o", "y.onnx", "--limit", "-1"], ">= 1")):
        code = _exit_code(argv)
        _one_line(capsys, code, needle)
    # a truncated resume file for --resume
    out = tmp_path / "resume"
    out.mkdir()
    (out / "train_state.pt").write_bytes(b"PK\x03\x04garbage")
    code = main(["train-teacher", "--preset", "student", "--model", "dim=8", "--model", "num_blocks=[1,1,1,1]", "--train",
                 str(data_dir / "rain200L" / "train"), "--skip-held-out-copies", "--out", str(out), "--steps", "1", "--patch", "32", "--resume"])
    _one_line(capsys, code, "train_state.pt", "unreadable")
    # an -o whose parent is a file
    code = main(["export", str(tiny_ckpt), "-o", str(tiny_ckpt) + "/x.onnx"])
    _one_line(capsys, code)
    assert not any((tmp_path / n).exists() for n in ("o1", "o2", "o3", "b.onnx"))


def _exit_code(argv) -> int:
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


# 6. typos and impossible numbers in a run config ----------------------------------------------------------
@pytest.mark.parametrize("text,needle", [("prune: {ratioo: 0.3}", "prune.ratioo"), ("check: {tilee: 64}", "check.tilee"),
                                         ("data: {test_limit: -1}", "data.test_limit"), ("teacher: {train: {steps: -2}}", "steps"),
                                         ("student: {model: {dimm: 8}}", "dimm")])
def test_run_config_schema(tmp_path, capsys, text, needle):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("extends: demo\n" + text)
    code = main(["pipeline", "--config", str(cfg), "--run-dir", str(tmp_path / "run")])
    _one_line(capsys, code, "run.yaml", needle)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text,needle", [("seed: 1", "data: Field required"),  # no hidden defaults layer: data is required
                                         ("extends: nosuch.yaml", "base config (extends: nosuch.yaml) not found"),
                                         ("extends: [demo]", "extends: give a shipped config's name"),
                                         ("extends: base.yaml", "may not extend another")])
def test_a_run_config_stands_alone_unless_it_extends_one_base(tmp_path, capsys, text, needle):
    (tmp_path / "base.yaml").write_text("extends: demo\n")
    cfg = tmp_path / "run.yaml"
    cfg.write_text(text)
    code = main(["pipeline", "--config", str(cfg), "--run-dir", str(tmp_path / "run")])
    _one_line(capsys, code, needle)
    assert not (tmp_path / "run").exists()


def test_extends_merges_key_by_key_and_a_new_family_drops_the_bases_model():
    import tempfile

    from drsedge.run_config import load_run_config

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "run.yaml"
        p.write_text("extends: demo\nquantize: {limit: 5}\nstudent: {model: {family: ast, embed_dim: 8}}\n")
        cfg = load_run_config(p)
    assert cfg.quantize.limit == 5 and cfg.quantize.size == 128 and cfg.data.test == "rain100L"  # the rest is demo's
    assert cfg.student.model == {"family": "ast", "embed_dim": 8} and cfg.student.init is None  # not demo's DRSformer weights


# 7. one run directory, one writer -------------------------------------------------------------------------
def test_second_pipeline_in_the_same_run_dir_is_refused(tmp_path, capsys, data_dir):
    from filelock import FileLock

    run = tmp_path / "run"
    run.mkdir()
    with FileLock(str(run / ".drsedge.lock")):
        code = main(["demo", "--run-dir", str(run), "--data", str(data_dir)])
    _one_line(capsys, code, "another drsedge pipeline")
    assert sorted(p.name for p in run.iterdir()) == [".drsedge.lock"]


# 8. leftovers are invisible -------------------------------------------------------------------------------
def test_hidden_temporaries_are_skipped_and_cleaned(tmp_path, data_dir):
    from drsedge.data import list_images
    from drsedge.fileio import STALE_TMP_SECONDS, atomic_write

    d = tmp_path / "imgs"
    shutil.copytree(data_dir / "real", d)
    stale = d / ".1.png.abc123.tmp.png"
    stale.write_bytes(b"half a png")
    assert stale not in list_images(d) and len(list_images(d)) == 8
    old = os.path.getmtime(stale) - STALE_TMP_SECONDS - 10
    os.utime(stale, (old, old))
    atomic_write(d / "1.png", lambda tmp: shutil.copyfile(data_dir / "real" / "1.png", tmp))
    assert not stale.exists()


# 9. what the README accepts works -------------------------------------------------------------------------
def test_check_accepts_official_pth_and_refuses_resizing_onnx(tmp_path, data_dir, capsys):
    cfg = student_config(**TINY)
    torch.save({"params": cfg.build().state_dict()}, tmp_path / "official.pth")
    code = main(["check", "--test", str(data_dir / "rain200H" / "test"), "--teacher", str(tmp_path / "official.pth"), "--limit", "1",
                 "--latency-runs", "1", "--latency-size", "64", "64", "--out", str(tmp_path / "r")])
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    half = _onnx(tmp_path / "half.onnx",
                 [helper.make_node("AveragePool", ["image"], ["out"], kernel_shape=[2, 2], strides=[2, 2])], [_img()],
                 [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3, "h", "w"])])
    code = main(["derain", str(half), str(data_dir / "real"), "-o", str(tmp_path / "o")])
    _one_line(capsys, code, "half.onnx", "differs from input")
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


# 10. MATLAB rounding --------------------------------------------------------------------------------------
def test_y_rounds_half_away_from_zero():
    from drsedge.metrics import rgb_to_y

    px = np.array([[[5, 65, 25]]], dtype=np.uint8)  # Y = 16 + (65.481*5 + 128.553*65 + 24.966*25)/255 = 52.5 exactly
    assert rgb_to_y(px, "basicsr")[0, 0] == 52.5
    assert rgb_to_y(px, "matlab")[0, 0] == 53.0  # MATLAB's round; np.round would give 52


# property: every subcommand, generic bad arguments, never a traceback --------------------------------------
SUBCOMMANDS = ["info", "metrics", "train-teacher", "distill", "synth-rain", "export", "fp16-check", "quantize", "check", "localize",
               "compare", "derain", "prune", "build-engine", "pipeline", "demo", "qat", "stream"]


@pytest.mark.parametrize("cmd", SUBCOMMANDS)
def test_no_traceback_for_generic_bad_arguments(cmd, tmp_path, capsys):
    missing = str(tmp_path / "missing")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01not a model")
    generic = {
        "info": [["--checkpoint", missing], ["--checkpoint", str(junk)], ["--size", "0", "0"]],
        "metrics": [[missing, missing], [str(junk), str(junk)]],
        "train-teacher": [["--train", missing, "--out", str(tmp_path / "o")]],
        "distill": [["--teacher", missing, "--train", missing, "--out", str(tmp_path / "o")]],
        "synth-rain": [[missing, "-o", str(tmp_path / "o")], [str(tmp_path), "-o", str(tmp_path / "o"), "--preset", "storm"]],
        "export": [[missing, "-o", str(tmp_path / "o.onnx")], [str(junk), "-o", str(tmp_path / "o.onnx")]],
        "fp16-check": [[missing, "--images", missing], [str(junk), "--images", str(tmp_path)]],
        "quantize": [[missing, "--calib", missing, "-o", str(tmp_path / "o.onnx")]],
        "check": [["--test", missing], ["--test", str(tmp_path), "--onnx", str(junk)]],
        "localize": [[missing, missing, "--images", missing]],
        "compare": [[missing, missing, "--images", missing]],
        "derain": [[missing, missing, "-o", str(tmp_path / "o")], [str(junk), str(tmp_path), "-o", str(tmp_path / "o")]],
        "prune": [[missing, "-o", str(tmp_path / "o.safetensors")], [str(junk), "-o", str(tmp_path / "o.safetensors")]],
        "build-engine": [[missing, "-o", str(tmp_path / "e")], [str(junk), "-o", str(tmp_path / "e"), "--print-trtexec"]],
        "pipeline": [["--config", missing], ["--config", str(junk)]],
        "demo": [["--data", missing, "--run-dir", str(tmp_path / "r")]],
        "qat": [[missing, "--calib", missing, "-o", str(tmp_path / "o.onnx")],
                [str(junk), "--calib", str(tmp_path), "--train", str(tmp_path), "-o", str(tmp_path / "o.onnx")]],
        "stream": [[missing, "--model", missing], [str(tmp_path), "--model", str(junk)], [str(junk), "--model", str(junk) + ".onnx"]],
    }[cmd] + [["--no-such-flag"]]
    for args in generic:
        code = _exit_code([cmd, *args])
        _one_line(capsys, code)
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.onnx").exists() and not (tmp_path / "e").exists()


def test_a_killed_writers_temporaries_are_swept_whatever_their_age(tmp_path):
    """A SIGKILL during quantize left a hidden 1.26 MB ``.pre.onnx`` and a 0-byte temp that a re-run (which skips the
    finished stage) never removed (issue 37). Temporaries carry their writer's PID: a dead writer's are swept at once by
    the next write of that output and by a pipeline starting in that run directory; a live writer's stay."""
    import subprocess

    from drsedge.fileio import atomic_write, sweep_temporaries

    p = subprocess.Popen(["true"])
    p.wait()
    dead, live = p.pid, os.getpid()
    q = tmp_path / "quantize"
    q.mkdir()
    leftovers = [q / f".student_int8.onnx.{dead}-abc.tmp.onnx", q / f".student_int8.onnx.{dead}-abc.tmp.onnx.pre.onnx"]
    for f in leftovers:
        f.write_bytes(b"")
    mine = q / f".student_int8.onnx.{live}-xyz.tmp.onnx"
    mine.write_bytes(b"in flight")
    assert sweep_temporaries(tmp_path) == 2 and not any(f.exists() for f in leftovers) and mine.exists()
    leftovers[1].write_bytes(b"x" * 100)
    atomic_write(q / "student_int8.onnx", lambda tmp: Path(tmp).write_bytes(b"onnx"))
    assert not leftovers[1].exists() and mine.exists() and (q / "student_int8.onnx").read_bytes() == b"onnx"


def test_tile_32_with_the_default_overlap_is_accepted(tmp_path, tiny_ckpt, data_dir, capsys):
    """``--tile 32`` was refused for the default 32 px overlap the user never set (issue 37); the default is now at most a
    quarter of the tile, and only an explicit overlap >= tile is refused."""
    from PIL import Image

    out, img = tmp_path / "o.png", tmp_path / "crop.png"
    Image.open(data_dir / "real" / "1.png").convert("RGB").crop((0, 0, 80, 64)).save(img)
    assert main(["derain", str(tiny_ckpt), str(img), "-o", str(out), "--tile", "32"]) == 0 and out.is_file()
    code = main(["derain", str(tiny_ckpt), str(img), "-o", str(tmp_path / "p.png"), "--tile", "32", "--tile-overlap", "32"])
    _one_line(capsys, code, "--tile-overlap 32 must be smaller than --tile 32")


def test_udr_checkpoint_mismatch_gets_no_mefc_hint(tmp_path, data_dir, capsys):
    """A UDR-S2Former checkpoint with a missing key was told to "toggle mefc", a DRSformer option (issue 37)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from drsedge.models.udr_config import udr_small_config

    cfg = udr_small_config()
    path = save_model(tmp_path / "u.safetensors", cfg.build(), cfg)
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    state.pop(sorted(state)[0])
    save_file(state, str(tmp_path / "broken.safetensors"), metadata=meta)
    code = main(["derain", str(tmp_path / "broken.safetensors"), str(data_dir / "real" / "1.png"), "-o", str(tmp_path / "o.png")])
    line = _one_line(capsys, code, "broken.safetensors", "1 missing", "UDRS2Former checkpoint needs the config")
    assert "mefc" not in line


def test_an_output_that_is_a_folder_names_the_folder(tmp_path, tiny_ckpt, capsys):
    """``-o x.onnx`` where x.onnx is a directory named the hidden temporary file (issue 37)."""
    (tmp_path / "x.onnx").mkdir()
    code = main(["export", str(tiny_ckpt), "-o", str(tmp_path / "x.onnx")])
    line = _one_line(capsys, code, "x.onnx: is a folder")
    assert ".tmp" not in line


@pytest.mark.parametrize("kind", ["nan", "rank", "renamed"])
def test_compare_with_a_broken_or_other_model_is_one_line(tmp_path, data_dir, capsys, kind):
    """``compare`` with a NaN model, a wrong output rank, or a model whose output has another name ended in the generic
    'unexpected' line (max() of an empty sequence; issue 37)."""
    nan = helper.make_tensor("k", TensorProto.FLOAT, [1], [float("nan") if kind == "nan" else 1.0])
    out_shape = ["N", "H", "W"] if kind == "rank" else ["N", 3, "H", "W"]
    node = (helper.make_node("ReduceMean", ["image"], ["out"], axes=[1], keepdims=0) if kind == "rank"
            else helper.make_node("Mul", ["image", "k"], ["out" if kind != "renamed" else "derained2"]))
    out_name = "derained2" if kind == "renamed" else "out"
    test = _onnx(tmp_path / "t.onnx", [node], [_img()], [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_shape)],
                 [] if kind == "rank" else [nan])
    ref = _onnx(tmp_path / "r.onnx", [helper.make_node("Identity", ["image"], ["out"])], [_img()],
                [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 3, "H", "W"])])
    code = main(["compare", str(ref), str(test), "--images", str(data_dir / "real"), "--limit", "1"])
    err = capsys.readouterr().err
    if kind == "renamed":  # identical numbers under another output name: compared by position, and they agree
        assert code == 0, err
    else:
        assert code == 2 and one_error_line(err, "t.onnx", "NaN" if kind == "nan" else "output shape")


def test_torch_save_on_a_full_disk_is_named_as_such(tmp_path):
    """torch.save's zip writer reports a short write as "unexpected pos N vs M" (a full disk): atomic_write turns it into
    the full-disk line, naming the file, with nothing written (issue 37: the pipeline's torch.save gave the catch-all)."""
    from drsedge.errors import DrsedgeError
    from drsedge.fileio import atomic_write, is_disk_full

    err = RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 576 vs 470")
    assert is_disk_full(err) and not is_disk_full(RuntimeError("unexpected keyword"))

    def write(tmp):
        raise err

    with pytest.raises(DrsedgeError, match="train_state.pt: the disk is full"):
        atomic_write(tmp_path / "train_state.pt", write)
    assert not any(tmp_path.iterdir())
