"""CLI: bad input gives one line naming the file, a non-zero exit and no partial artifact."""

import json
import subprocess
import sys

import torch

from drsedge.cli import main
from drsedge.models import ModelConfig, save_model, student_config
from tests.conftest import one_error_line


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_metrics_json_reproduces_published(capsys, data_dir):
    root = data_dir / "drsformer_outputs" / "rain200L"
    code, out, _ = run(capsys, "metrics", str(root / "drsformer"), str(root / "target"), "--json")
    d = json.loads(out)
    assert code == 0 and abs(d["psnr"] - 41.95) <= 0.01 and abs(d["ssim"] - 0.9891) <= 0.0005


def test_info_counts_paper_model(capsys):
    code, out, _ = run(capsys, "info", "--json", "--size", "64", "64")
    d = json.loads(out)
    assert code == 0 and d["params"] == 33_655_424 and d["macs"] > 0


def _one_error_line(code, err, *needles):
    """Exit 2 and stderr is nothing but the one error line (:func:`tests.conftest.one_error_line`)."""
    assert code == 2, err
    one_error_line(err, *needles)
    assert len([ln for ln in err.splitlines() if ln.strip()]) == 1, err


def test_empty_folder_and_unpaired(capsys, tmp_path, data_dir):
    (tmp_path / "p").mkdir()
    (tmp_path / "t").mkdir()
    code, _, err = run(capsys, "metrics", str(tmp_path / "p"), str(tmp_path / "t"))
    _one_error_line(code, err, str(tmp_path / "p"), "no images")
    # unpaired: a prediction whose name has no target
    src = data_dir / "drsformer_outputs" / "rain200L"
    (tmp_path / "p" / "99.png").write_bytes((src / "drsformer" / "1.png").read_bytes())
    code, _, err = run(capsys, "metrics", str(tmp_path / "p"), str(src / "target"))
    _one_error_line(code, err, "99", "no target with this name")
    # paired layout with a rainy image that has no clean partner
    pair = tmp_path / "pairs"
    for sub, name in (("input", "1.png"), ("input", "2.png"), ("target", "1.png")):
        (pair / sub).mkdir(parents=True, exist_ok=True)
        (pair / sub / name).write_bytes((src / "target" / "1.png").read_bytes())
    code, _, err = run(capsys, "check", "--test", str(pair), "--onnx", str(tmp_path / "none.onnx"), "--out", str(tmp_path / "r"))
    _one_error_line(code, err, "unpaired names", "input/ only (first: 2)")


def test_corrupt_image(capsys, tmp_path, data_dir):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    code, _, err = run(capsys, "metrics", str(tmp_path / "p"), str(data_dir / "drsformer_outputs" / "rain200L" / "target"))
    _one_error_line(code, err, "1.png", "cannot decode")


def test_wrong_checkpoint_and_refused_pickle(capsys, tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"params": {"foo": torch.zeros(1)}}, bad)
    code, _, err = run(capsys, "export", str(bad), "-o", str(tmp_path / "m.onnx"))
    _one_error_line(code, err, "bad.pth", "patch_embed")
    assert not (tmp_path / "m.onnx").exists()
    evil = tmp_path / "evil.pth"
    evil.write_bytes(b"\x80\x04\x95\x1d\x00\x00\x00\x00\x00\x00\x00\x8c\x08builtins\x94\x8c\x05print\x94\x93\x94\x8c\x01x\x94\x85\x94R\x94.")
    code, _, err = run(capsys, "info", "--checkpoint", str(evil))
    _one_error_line(code, err, "evil.pth", "weights_only")


def test_unparsable_onnx(capsys, tmp_path, data_dir):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    code, _, err = run(capsys, "quantize", str(bad), "--calib", str(data_dir / "real"), "-o", str(tmp_path / "q.onnx"), "--limit", "1")
    _one_error_line(code, err, "bad.onnx")
    assert not (tmp_path / "q.onnx").exists()
    code, _, err = run(capsys, "check", "--test", str(data_dir / "rain200H" / "test"), "--onnx", str(bad), "--out", str(tmp_path / "r"))
    _one_error_line(code, err, "bad.onnx")
    assert not (tmp_path / "r" / "report.md").exists()


def test_train_on_test_set_refused(capsys, tmp_path, data_dir):
    code, _, err = run(capsys, "train-teacher", "--train", str(data_dir / "rain100L"), "--out", str(tmp_path / "t"), "--steps", "1")
    _one_error_line(code, err, "held-out")


def test_check_budget_exit_code(capsys, tmp_path, data_dir):
    """A student that is certainly worse than its teacher breaks a 0.5 dB budget (exit 3, report says so); a loose budget passes."""
    torch.manual_seed(0)
    tiny = dict(dim=8, num_blocks=[1, 1, 1, 1])
    teacher = ModelConfig(**tiny, mefc=False).build()
    torch.nn.init.zeros_(teacher.output.weight)  # identity: output = input, PSNR of the rainy input
    t = save_model(tmp_path / "t.safetensors", teacher, ModelConfig(**tiny, mefc=False))
    student = student_config(**tiny).build()
    with torch.no_grad():
        student.output.weight.normal_(0, 1.0)  # adds strong noise: several dB below the teacher
    s = save_model(tmp_path / "s.safetensors", student, student_config(**tiny))
    args = ["check", "--test", str(data_dir / "rain200H" / "test"), "--teacher", str(t), "--student", str(s), "--limit", "1",
            "--latency-size", "64", "64", "--latency-runs", "1", "--out", str(tmp_path / "r")]
    code, _out, err = run(capsys, *args, "--budget", "student=0.5")
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    assert rep["stages"][1]["delta_vs_prev"] < -0.5
    assert code == 3 and rep["ok"] is False and "budget broken" in err
    code, _, _ = run(capsys, *args, "--budget", "student=100")
    assert code == 0


def test_console_script_entry_point():
    r = subprocess.run([sys.executable, "-m", "drsedge.cli", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "pipeline" in r.stdout and "demo" in r.stdout


def test_prune_cli(capsys, tmp_path):
    from drsedge.models import load_model

    torch.manual_seed(0)
    cfg = student_config(dim=8, num_blocks=[1, 1, 1, 1], ffn_expansion_factor=2.0)
    src = save_model(tmp_path / "s.safetensors", cfg.build(), cfg)
    out = tmp_path / "p.safetensors"
    assert main(["prune", str(src), "-o", str(out), "--ratio", "0.5", "--size", "64", "64"]) == 0
    text = capsys.readouterr().out
    assert "| original |" in text and "| pruned step 1 |" in text
    _pruned, pcfg = load_model(out)
    assert pcfg.ffn_hidden["latent.0"] == 64
    code = main(["prune", str(src), "-o", str(tmp_path / "q.safetensors"), "--ratio", "1.0"])
    assert code == 2 and "ratio: Input should be less than 1" in capsys.readouterr().err  # the run config's rule (PruneSection)
    assert not (tmp_path / "q.safetensors").exists()
