"""The pipeline end to end on a tiny config with a few real images; re-running skips finished stages."""

import json
from pathlib import Path

import pytest
import yaml

from drsedge.cli import main
from tests.conftest import one_error_line

pytestmark = pytest.mark.slow  # trains or quantizes (CPU-sized); deselect with -m 'not slow'

TINY = {
    "extends": "demo",  # the demo config under these keys (a run config stands alone otherwise)
    "seed": 0,
    "data": {"test_limit": 2, "calibration": ["rain200H/train/input"], "unlabeled": ["real"],
             "synthetic": {"clean": ["clean/kodak24"], "preset": "light", "limit": 2}},
    "teacher": {
        "checkpoint": None,
        "model": {"dim": 8, "num_blocks": [1, 1, 1, 1], "heads": [1, 2, 4, 8], "ffn_expansion_factor": 2.0, "mefc": False},
        "train": {"steps": 6, "batch_size": 2, "patch": 32, "checkpoint_every": 3},
    },
    "student": {
        "init": None,
        "model": {"dim": 8, "num_blocks": [1, 1, 1, 1], "heads": [1, 1, 2, 4], "ffn_expansion_factor": 1.5, "attention": "topk"},
        "distill": {"steps": 6, "batch_size": 2, "patch": 32, "feature_weight": 0.1, "checkpoint_every": 3},
    },
    "prune": {"enabled": True, "ratio": 0.5, "iterations": 1, "scope": ["msfn", "streams"], "finetune": {"steps": 2, "batch_size": 2, "patch": 32}},
    "quantize": {"backend": "nncf", "size": 64, "limit": 4},
    "export": {"fp16": True},
    "check": {"latency_runs": 1, "latency_hw": [64, 64], "budgets": {"student": 100.0, "pruned": 100.0, "onnx_fp32": 0.05, "onnx_int8": 100.0}},
}


def test_pipeline_end_to_end_and_skip(tmp_path, data_dir, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "run_dir": str(tmp_path / "run")}))
    assert main(["pipeline", "--config", str(cfg), "--data", str(data_dir)]) == 0
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert list(manifest["stages"]) == ["synth", "teacher", "student", "prune", "export", "quantize", "check"]
    assert manifest["stages"]["synth"]["metrics"]["pairs"] == 2
    for st in manifest["stages"].values():
        for art in st["artifacts"].values():
            assert (tmp_path / "run" / art["path"]).is_file() and len(art["sha256"]) == 64
    rep = json.loads((tmp_path / "run" / "check" / "report.json").read_text())
    assert [s["name"] for s in rep["stages"]] == ["teacher", "student", "pruned", "onnx_fp32", "onnx_fp16", "onnx_int8"]
    assert rep["stages"][2]["info"]["params"] < rep["stages"][1]["info"]["params"]
    fp16, int8 = rep["stages"][4], rep["stages"][5]
    assert fp16["parent"] == int8["parent"] == "onnx_fp32"  # fidelity and budgets against the FP32 ONNX
    assert fp16["psnr_vs_parent"] > 35 and int8["psnr_vs_parent"] > 15 and int8["max_abs_vs_parent"] > 0
    assert abs(int8["delta_vs_prev"] - (int8["psnr"] - rep["stages"][3]["psnr"])) < 1e-9
    assert manifest["stages"]["prune"]["metrics"]["stream_widths"]["encoder_level1"] == 4  # dim 8, streams pruned by half
    assert rep["n_images"] == 2 and "rain100L" in rep["test_dir"]
    fp32 = rep["stages"][3]
    assert abs(fp32["delta_vs_prev"]) < 0.05  # ONNX FP32 == PyTorch student
    assert manifest["stages"]["export"]["metrics"]["parity_max_abs"]["64x64"] <= 1e-4
    fp16 = manifest["stages"]["export"]["metrics"]["fp16"]  # measured on whole calibration frames, projected to 720p
    assert fp16["peak_projected_720p"] > 0 and "FP16:" in (tmp_path / "run" / "check" / "report.md").read_text()
    capsys.readouterr()

    assert main(["pipeline", "--config", str(cfg), "--data", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert out.count("up to date, skipped") == 7

    # Changing the quantizer (ORT, with a measured keep-float search on data.validation) re-runs quantize and check only.
    quantize = {"backend": "ort", "size": 64, "limit": 4, "budget_db": 100.0, "val_limit": 1}
    cfg.write_text(yaml.safe_dump({**TINY, "run_dir": str(tmp_path / "run"), "quantize": quantize}))
    assert main(["pipeline", "--config", str(cfg), "--data", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert out.count("up to date, skipped") == 5 and "[quantize] running" in out and "Δ vs FP32" in out
    qm = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"]["quantize"]["metrics"]
    assert qm["keep_float"] == [] and f"{qm['val_delta_db']:+.3f} |" in out  # the measured drop, as printed in the search table

    # Quantization-aware fine-tuning instead of PTQ: quantize and check re-run, the INT8 stage is the QAT export.
    cfg.write_text(yaml.safe_dump({**TINY, "run_dir": str(tmp_path / "run"), "quantize": {"qat_steps": 2, "size": 64, "limit": 2}}))
    assert main(["pipeline", "--config", str(cfg), "--data", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert out.count("up to date, skipped") == 5 and "[quantize] running" in out
    qm = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"]["quantize"]["metrics"]
    assert qm["qat_steps"] == 2 and qm["QuantizeLinear"] > 10
    rep = json.loads((tmp_path / "run" / "check" / "report.json").read_text())
    assert rep["stages"][-1]["name"] == "onnx_int8" and rep["stages"][-1]["psnr_vs_parent"] > 15

    # Turning pruning off exports the unpruned student again.
    cfg.write_text(yaml.safe_dump({**TINY, "run_dir": str(tmp_path / "run"), "prune": {"enabled": False}}))
    assert main(["pipeline", "--config", str(cfg), "--data", str(data_dir)]) == 0
    rep = json.loads((tmp_path / "run" / "check" / "report.json").read_text())
    assert [s["name"] for s in rep["stages"]] == ["teacher", "student", "onnx_fp32", "onnx_fp16", "onnx_int8"]


def test_training_on_held_out_set_is_refused(tmp_path, data_dir, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "run_dir": str(tmp_path / "run"), "data": {"train": ["rain100L"]}}))
    assert main(["pipeline", "--config", str(cfg), "--data", str(data_dir)]) == 2
    assert "held-out" in capsys.readouterr().err


def test_run_dir_inside_a_data_folder_is_refused_before_it_is_made(tmp_path, capsys):
    """A run directory in a folder the run reads (here the unlabeled ``real/``) would mix manifests, checkpoints and
    synthetic pairs into the data; refused in one line, nothing created (it used to write into ../shared/data/real)."""
    (tmp_path / "data" / "real").mkdir(parents=True)
    for run_dir in (tmp_path / "data" / "real", tmp_path / "data" / "real" / "run"):
        cfg = tmp_path / "run.yaml"
        cfg.write_text(yaml.safe_dump({**TINY, "run_dir": str(run_dir)}))
        assert main(["pipeline", "--config", str(cfg), "--data", str(tmp_path / "data")]) == 2
        assert "would be written into the input folder" in capsys.readouterr().err
    assert not any((tmp_path / "data" / "real").iterdir())


def test_run_dir_equal_to_or_above_the_data_is_refused(tmp_path, capsys):
    """A run directory equal to data.root, or containing a data folder, is refused before anything is made: with
    run_dir == data.root and the user's training folder called ``synth``, the synth stage used to delete its 6 real
    pairs and train on 2 generated ones, exit 0 (issue 37)."""
    data = tmp_path / "data"
    for sub in ("input", "target"):
        (data / "synth" / sub).mkdir(parents=True)
        (data / "synth" / sub / "1.png").write_bytes(b"png")
    (data / "real").mkdir()
    for run_dir, needle in ((data, "would be written into the input folder"), (tmp_path, "contains the input folder")):
        cfg = tmp_path / "run.yaml"
        cfg.write_text(yaml.safe_dump({**TINY, "run_dir": str(run_dir), "data": {**TINY["data"], "train": ["synth"]}}))
        assert main(["pipeline", "--config", str(cfg), "--data", str(data)]) == 2
        one_error_line(capsys.readouterr().err, needle)
    assert sorted(p.name for p in data.rglob("*")) == ["1.png", "1.png", "input", "real", "synth", "target"]


def test_a_stage_clears_only_a_folder_it_made(tmp_path):
    """The synth stage empties ``synth/`` only when an earlier run of it made the folder (its mark); a user's folder of
    that name in the run directory is refused and left as it was."""
    from drsedge.errors import DrsedgeError
    from drsedge.fileio import STAGE_MARK, owned_stage_dir

    user = tmp_path / "synth"
    user.mkdir()
    (user / "mine.png").write_bytes(b"x")
    with pytest.raises(DrsedgeError, match="not made by drsedge"):
        owned_stage_dir(user, clear=True)
    assert (user / "mine.png").read_bytes() == b"x"
    made = owned_stage_dir(tmp_path / "stage", clear=True)
    (made / "old.png").write_bytes(b"x")
    assert not any(p.name == "old.png" for p in owned_stage_dir(made, clear=True).iterdir())
    assert (made / STAGE_MARK).is_file()


@pytest.mark.parametrize("text,needle", [("teacher: [unclosed", "not valid YAML"), ("bogus: 1", "unknown section")])
def test_bad_run_config(tmp_path, capsys, text, needle):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(text)
    assert main(["pipeline", "--config", str(cfg)]) == 2
    assert needle in capsys.readouterr().err


def test_udr_run_config_is_its_own_family(tmp_path):
    """udr_raindrop.yaml validates; the demo's DRSformer model keys and shipped DRSformer weights are not merged into
    a UDR-S2Former section, and the held-out set appears nowhere in it."""
    from drsedge.run_config import load_run_config, validate_run_config

    path = Path(__file__).resolve().parents[1] / "drsedge" / "configs" / "udr_raindrop.yaml"
    run = load_run_config(path)
    assert run.teacher.model["family"] == run.student.model["family"] == "udr_s2former"
    assert run.teacher.checkpoint is None and run.student.init is None
    assert "num_blocks" not in run.teacher.model and run.export.size == [256, 256]
    cfg = run.model_dump(mode="json")
    assert "rain100L" not in json.dumps(cfg["data"])
    bad = {**cfg, "student": {**cfg["student"], "model": {**cfg["student"]["model"], "dim": [16, 20, 32, 32, 64]}}}
    with pytest.raises(Exception, match="multiples of 8"):
        validate_run_config(bad, "x.yaml")


@pytest.mark.parametrize("override,needle", [
    ({"prune": {"enabled": True, "scope": ["msfn"]}}, "scope msfn"),
    ({"export": {"size": [100, 100]}}, "multiples of 64"),
    ({"export": {"opset": 99}}, "export.opset 99"),
    ({"quantize": {"qat_steps": 5}}, "QAT"),
    ({"export": {"structure": "upstream"}}, "one exported structure"),
])
def test_udr_options_that_cannot_apply_are_refused_before_any_stage(tmp_path, data_dir, capsys, override, needle):
    """udr_raindrop.yaml with an option its family or the exporter cannot take: refused at preflight, before the
    teacher trains (issue 37: refused only when their stage started, after the teacher and student had trained)."""
    from drsedge.run_config import load_run_config

    path = Path(__file__).resolve().parents[1] / "drsedge" / "configs" / "udr_raindrop.yaml"
    cfg = load_run_config(path).model_dump(mode="json")
    for k, v in override.items():
        cfg[k] = {**cfg[k], **v}
    cfg["run_dir"] = str(tmp_path / "run")
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["pipeline", "--config", str(tmp_path / "run.yaml"), "--data", str(data_dir)]) == 2
    one_error_line(capsys.readouterr().err, needle)
    assert not (tmp_path / "run" / "teacher").exists() and not (tmp_path / "run" / "synth").exists()
