"""Prune, then distill (issue 34): the student starts as the teacher pruned to a MACs target, from the CLI and from a
run config; a family that cannot be pruned to a target is refused in one line."""

import pytest

from drsedge.cli import main
from drsedge.models.checkpoint import load_any
from drsedge.models.info import model_info
from tests.conftest import one_error_line

pytestmark = pytest.mark.slow  # prunes the shipped teacher and distills a few steps


def test_distill_from_the_pruned_teacher_meets_the_target(tmp_path, data_dir, capsys):
    out = tmp_path / "s"
    code = main(["distill", "--teacher", "shipped:teacher", "--init", "prune-teacher", "--target-gmacs", "0.6",
                 "--train", str(data_dir / "rain200H" / "train"), "--skip-held-out-copies", "-o", str(out), "--steps", "2",
                 "--patch", "32", "--batch-size", "2"])
    printed = capsys.readouterr().out
    assert code == 0 and "initial student: the teacher pruned to" in printed
    model, cfg = load_any(out / "model.safetensors")
    assert model_info(model, 256, 256).gmacs <= 0.6 and cfg.depths  # the initial student's MACs meet the target
    initial = float(printed.split("pruned to ")[1].split(" GMACs")[0])
    assert initial <= 0.6


def test_refusals(tmp_path, data_dir, capsys):
    from drsedge.models import save_model
    from drsedge.models.udr_config import udr_small_config

    cfg = udr_small_config()
    udr = save_model(tmp_path / "u.safetensors", cfg.build(), cfg)
    train = ["--train", str(data_dir / "rain200H" / "train"), "--skip-held-out-copies", "-o", str(tmp_path / "o"), "--steps", "1"]
    assert main(["distill", "--teacher", str(udr), "--init", "prune-teacher", "--target-gmacs", "1", *train]) == 2
    one_error_line(capsys.readouterr().err, "prune-teacher", "DRSformer family")
    assert main(["distill", "--teacher", "shipped:teacher", "--init", "prune-teacher", *train]) == 2
    one_error_line(capsys.readouterr().err, "--target-gmacs")


def test_the_prune_distill_config_validates():
    from pathlib import Path

    from drsedge.run_config import load_run_config

    run = load_run_config(Path(__file__).resolve().parents[2] / "drsedge" / "configs" / "prune_distill.yaml")
    spec = run.student.init.prune_teacher
    assert spec.target_gmacs == 2.15 and "depth" in spec.scope and not run.prune.enabled


def test_pipeline_student_from_the_pruned_teacher(tmp_path, data_dir, capsys):
    """``student.init: {prune_teacher: ...}`` in a run config: the student stage prunes the trained teacher to the
    target, distills it, and the manifest's student meets the target."""
    import json

    import yaml

    from drsedge.models import student_config
    from tests.test_pipeline import TINY

    tmodel = {**TINY["teacher"]["model"], "num_blocks": [1, 2, 2, 2]}
    teacher_macs = model_info(student_config(**tmodel).build(), 64, 64).macs
    target = round(0.6 * teacher_macs / 1e9, 6)
    cfg = {**TINY, "run_dir": str(tmp_path / "run"), "teacher": {**TINY["teacher"], "model": tmodel},
           "student": {"init": {"prune_teacher": {"target_gmacs": target, "size": [64, 64]}}, "distill": TINY["student"]["distill"]},
           "prune": {"enabled": False}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["pipeline", "--config", str(tmp_path / "run.yaml"), "--data", str(data_dir)]) == 0, capsys.readouterr().err
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    model, scfg = load_any(tmp_path / "run" / manifest["stages"]["student"]["artifacts"]["model"]["path"])
    assert model_info(model, 64, 64).macs <= target * 1e9 and scfg.depths
