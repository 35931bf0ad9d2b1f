"""Training/distillation: loss goes down on real crops, resume is bit-identical, LR schedule follows upstream."""

import pytest
import torch

from drsedge.data import CropSampler, find_pairs, find_unlabeled, load_samples
from drsedge.errors import DrsedgeError
from drsedge.models import student_config
from drsedge.training import TrainConfig, cosine_restart_lr, train

pytestmark = pytest.mark.slow  # trains or quantizes (CPU-sized); deselect with -m 'not slow'

TINY = dict(dim=8, num_blocks=[1, 1, 1, 1], ffn_expansion_factor=1.5)


def _sampler(data_dir, unlabeled=False):
    pairs = find_pairs(data_dir / "rain200L" / "train")
    unl = find_unlabeled(data_dir / "real")[:2] if unlabeled else []
    return CropSampler(load_samples(pairs, unl), patch=32, batch_size=2, seed=1)


def test_lr_schedule_is_constant_then_cosine():
    cfg = TrainConfig(steps=300)
    assert cosine_restart_lr(0, cfg) == pytest.approx(3e-4)
    assert cosine_restart_lr(91, cfg) == pytest.approx(3e-4)
    assert cosine_restart_lr(92, cfg) == pytest.approx(3e-4)
    assert cosine_restart_lr(92 + 104, cfg) == pytest.approx((3e-4 + 1e-6) / 2, rel=1e-3)
    assert cosine_restart_lr(299, cfg) < 2e-6 + 1e-7


def test_resume_gives_identical_weights(tmp_path, data_dir):
    teacher = student_config(**TINY).build()
    cfg = TrainConfig(steps=6, batch_size=2, patch=32, checkpoint_every=3, feature_weight=0.1)

    def fresh():
        torch.manual_seed(7)
        return student_config(**TINY, attention="assa").build()

    full = fresh()
    train(full, _sampler(data_dir, True), cfg, tmp_path / "a", teacher=teacher, progress=False)

    part = fresh()
    # Interrupt after 3 steps (checkpointed at step 3): the sampler raises when asked for step 3.
    sampler = _sampler(data_dir, True)
    orig = sampler.batch

    def stop_at_3(step):
        if step == 3:
            raise KeyboardInterrupt
        return orig(step)

    sampler.batch = stop_at_3
    with pytest.raises(KeyboardInterrupt):
        train(part, sampler, cfg, tmp_path / "b", teacher=teacher, progress=False)
    resumed = fresh()  # a new process would start from fresh weights and load train_state.pt
    res = train(resumed, _sampler(data_dir, True), cfg, tmp_path / "b", teacher=teacher, resume=True, progress=False)
    assert res["step"] == 6
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_teacher_training_lowers_loss_and_needs_gt(tmp_path, data_dir):
    torch.manual_seed(0)
    model = student_config(**TINY).build()
    res = train(model, _sampler(data_dir), TrainConfig(steps=30, batch_size=2, patch=32, checkpoint_every=100), tmp_path, progress=False)
    first, last = sum(res["losses"][:5]) / 5, sum(res["losses"][-5:]) / 5
    assert last < first
    with pytest.raises(DrsedgeError, match="paired data"):
        train(model, _sampler(data_dir, unlabeled=True), TrainConfig(steps=1), tmp_path / "x", progress=False)


def test_resume_with_other_config_is_refused(tmp_path, data_dir):
    model = student_config(**TINY).build()
    train(model, _sampler(data_dir), TrainConfig(steps=1, batch_size=2, patch=32), tmp_path, progress=False)
    with pytest.raises(DrsedgeError, match="belongs to another run"):
        train(model, _sampler(data_dir), TrainConfig(steps=2, batch_size=2, patch=32, lr=1e-3), tmp_path, resume=True, progress=False,
              stale="refuse")


def test_stale_resume_file_is_not_reused(tmp_path, data_dir):
    """Issue 10.1: a finished state of another run (other data) is ignored, not returned as the new model."""
    torch.manual_seed(0)
    model = student_config(**TINY).build()
    cfg = TrainConfig(steps=2, batch_size=2, patch=32)
    train(model, _sampler(data_dir), cfg, tmp_path, progress=False)
    first = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(0)
    other = student_config(**TINY).build()
    samples = load_samples(find_pairs(data_dir / "rain200H" / "train")[:3])
    res = train(other, CropSampler(samples, 32, 2, 1), cfg, tmp_path, resume=True, progress=False, log=lambda m: None)
    assert res["step"] == 2
    assert any(not torch.equal(first[k], v) for k, v in other.state_dict().items())
    # the same run resumes: nothing to do, weights restored bit-identically
    again = student_config(**TINY).build()
    train(again, _sampler(data_dir), cfg, tmp_path / "b", progress=False)
    again2 = student_config(**TINY).build()
    res = train(again2, _sampler(data_dir), cfg, tmp_path / "b", resume=True, progress=False)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in again2.state_dict().items())


def test_truncated_resume_file(tmp_path, data_dir):
    model = student_config(**TINY).build()
    (tmp_path / "train_state.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DrsedgeError, match="unreadable"):
        train(model, _sampler(data_dir), TrainConfig(steps=1, batch_size=2, patch=32), tmp_path, resume=True, progress=False, stale="refuse")


def test_divergence_stops_without_saving(tmp_path, data_dir):
    """Issue 10.3: an absurd learning rate ends in one NonFiniteError and no model file."""
    from drsedge.errors import NonFiniteError

    model = student_config(**TINY).build()
    with pytest.raises(NonFiniteError, match="diverged"):
        train(model, _sampler(data_dir), TrainConfig(steps=30, batch_size=2, patch=32, lr=1e30, checkpoint_every=100), tmp_path,
              progress=False)
    assert not (tmp_path / "train_state.pt").exists()


def test_validation_keeps_the_best_checkpoint(tmp_path, data_dir, capsys):
    import json

    from safetensors import safe_open

    from drsedge.cli import main

    args = ["train-teacher", "--preset", "student", "--model", "dim=8", "--model", "num_blocks=[1,1,1,1]", "--train",
            str(data_dir / "rain200L" / "train"), "--skip-held-out-copies", "-o", str(tmp_path / "o"), "--steps", "6", "--patch", "32", "--batch-size", "2",
            "--lr", "2e-3", "--val", str(data_dir / "rain200L" / "test"), "--val-every", "2", "--val-limit", "1"]
    assert main(args) == 0
    rows = [json.loads(line) for line in (tmp_path / "o" / "train_log.jsonl").read_text().splitlines()]
    vals = [r for r in rows if "val_psnr" in r]
    assert [r["step"] for r in vals] == [2, 4, 6]
    best = max(vals, key=lambda r: r["val_psnr"])
    with safe_open(str(tmp_path / "o" / "best.safetensors"), "pt") as f:
        extra = json.loads(f.metadata()["drsedge_extra"])
    assert extra["step"] == best["step"] and abs(extra["val_psnr"] - best["val_psnr"]) < 1e-9
    assert all("images_per_s" in r and "loss" in r for r in rows)
    capsys.readouterr()
    assert main([*args[:-6], "--val", str(data_dir / "rain100L")]) == 2
    assert "held-out" in capsys.readouterr().err
