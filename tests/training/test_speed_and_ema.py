"""Training options that must not change the result (activation checkpointing, channels-last) or must change it in
a stated way (EMA of the weights, Restormer's progressive patch schedule)."""

import pytest
import torch

from drsedge.data import CropSampler, find_pairs, load_samples
from drsedge.data.sampling import progressive_crop, progressive_stage
from drsedge.errors import DrsedgeError
from drsedge.models import student_config
from drsedge.training import TrainConfig, train
from drsedge.training.speed import activation_checkpointing

pytestmark = pytest.mark.slow  # trains (CPU-sized); deselect with -m 'not slow'

TINY = dict(dim=8, num_blocks=[1, 1, 1, 1], ffn_expansion_factor=1.5)


def _sampler(data_dir, patch=32, batch=2):
    return CropSampler(load_samples(find_pairs(data_dir / "rain200L" / "train")), patch=patch, batch_size=batch, seed=1)


def _grads(model, x, y, **kw):
    model.zero_grad()
    with activation_checkpointing(model, **kw) as n:
        torch.nn.functional.l1_loss(model(x), y).backward()
    return n, {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def test_activation_checkpointing_gives_the_same_gradients(data_dir):
    torch.manual_seed(0)
    model = student_config(**TINY).build().train()
    keys = list(model.state_dict())
    x, y, _ = _sampler(data_dir).batch(0)
    n0, g0 = _grads(model, x, y, enabled=False)
    n1, g1 = _grads(model, x, y, enabled=True)
    assert n0 == 0 and n1 == 7  # every TransformerBlock of [1, 1, 1, 1] + refinement 1 + decoder levels 1 + 1
    assert g0.keys() == g1.keys()
    for k in g0:
        torch.testing.assert_close(g1[k], g0[k], rtol=1e-5, atol=1e-7, msg=k)
    assert list(model.state_dict()) == keys and "forward" not in vars(next(m for m in model.modules() if type(m).__name__ == "TransformerBlock"))


def test_channels_last_trains_the_same(tmp_path, data_dir):
    cfg = TrainConfig(steps=2, batch_size=2, patch=32)
    out = []
    for cl in (False, True):
        torch.manual_seed(3)
        m = student_config(**TINY).build()
        out.append(train(m, _sampler(data_dir), cfg, tmp_path / str(cl), progress=False, channels_last=cl)["losses"])
    assert out[0] == pytest.approx(out[1], rel=1e-4)


def test_ema_is_the_exponential_average_of_the_steps(tmp_path, data_dir):
    """EMA decay d over 3 steps (torch.optim.swa_utils: the first update copies): e = d^2 w1 + d(1-d) w2 + (1-d) w3,
    where w1..w3 are the raw weights after each step (EMA does not change the raw trajectory)."""
    d = 0.5
    raw = []
    for k in (1, 2, 3):
        torch.manual_seed(5)
        m = student_config(**TINY).build()
        train(m, _sampler(data_dir), TrainConfig(steps=3, batch_size=2, patch=32), tmp_path / "raw", progress=False,
              stop_after=1, resume=k > 1)
        raw.append(torch.load(tmp_path / "raw" / "train_state.pt", weights_only=True)["model"])
    torch.manual_seed(5)
    m = student_config(**TINY).build()
    train(m, _sampler(data_dir), TrainConfig(steps=3, batch_size=2, patch=32, ema=d), tmp_path / "ema", progress=False)
    st = torch.load(tmp_path / "ema" / "train_state.pt", weights_only=True)
    for name, w in m.state_dict().items():
        if not w.is_floating_point():
            continue
        want = d * d * raw[0][name] + d * (1 - d) * raw[1][name] + (1 - d) * raw[2][name]
        torch.testing.assert_close(w, want, rtol=1e-5, atol=1e-6, msg=name)
        assert torch.equal(st["model"][name], raw[2][name]), name  # the raw weights are still what resumes
    assert "ema" in st


def test_progressive_schedule_and_crop():
    sched = [(0.5, 4, 32), (0.25, 2, 48), (0.25, 1, 64)]
    assert [progressive_stage(s, 8, sched) for s in (0, 3, 4, 5, 6, 7)] == [(4, 32), (4, 32), (2, 48), (2, 48), (1, 64), (1, 64)]
    assert progressive_stage(3, 8, []) is None
    x, y, has = torch.rand(4, 3, 64, 64), torch.rand(4, 3, 64, 64), torch.tensor([True, False, True, True])
    a = progressive_crop((x, y, has), 0, 5, 2, 48)
    b = progressive_crop((x, y, has), 0, 5, 2, 48)
    assert a[0].shape == (2, 3, 48, 48) and all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    # the crop is a window of the drawn rows, the same window for rainy and clean
    found = [(r, i, j) for r in range(4) for i in range(17) for j in range(17) if torch.equal(x[r, :, i : i + 48, j : j + 48], a[0][0])]
    assert len(found) == 1
    r, i, j = found[0]
    assert torch.equal(y[r, :, i : i + 48, j : j + 48], a[1][0]) and bool(a[2][0]) == bool(has[r])
    with pytest.raises(DrsedgeError, match="sum to 1"):
        TrainConfig(progressive=[(0.5, 2, 32)], batch_size=4, patch=64)
    with pytest.raises(DrsedgeError, match="largest"):
        TrainConfig(progressive=[(1.0, 8, 32)], batch_size=4, patch=64)


def test_progressive_training_runs(tmp_path, data_dir):
    torch.manual_seed(0)
    m = student_config(**TINY).build()
    seen = []
    m.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape)))
    cfg = TrainConfig(steps=4, batch_size=4, patch=48, progressive=[(0.5, 4, 32), (0.5, 2, 48)])
    res = train(m, _sampler(data_dir, patch=48, batch=4), cfg, tmp_path, progress=False)
    assert res["step"] == 4 and all(torch.isfinite(torch.tensor(res["losses"])))
    assert seen == [(4, 3, 32, 32)] * 2 + [(2, 3, 48, 48)] * 2
