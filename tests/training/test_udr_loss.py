"""UDR-S2Former's upstream loss (training/udr_loss.py) and training with it through the CLI."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from drsedge.cli import main
from drsedge.training.udr_loss import psnr_loss, udr_loss
from tests.test_guards import _one_line

pytestmark = pytest.mark.slow  # trains UDR-S2Former; deselect with -m 'not slow'


def test_psnr_loss_is_minus_psnr():
    g = torch.Generator().manual_seed(0)
    y = torch.rand(2, 3, 16, 16, generator=g)
    p = y + 0.1 * torch.randn(2, 3, 16, 16, generator=g)
    mse = ((p - y) ** 2).mean(dim=(1, 2, 3))
    psnr = (10 * torch.log10(1 / mse)).mean()
    assert math.isclose(float(psnr_loss(p, y)), -float(psnr), rel_tol=1e-5)


def test_udr_loss_matches_the_upstream_formula():
    g = torch.Generator().manual_seed(1)
    y = torch.rand(2, 3, 64, 64, generator=g)
    sizes = (64, 64, 32, 16, 8)
    outs = [torch.rand(2, 3, s, s, generator=g) for s in sizes]
    var = [torch.rand(2, 3, s, s, generator=g) - 0.5 for s in sizes]
    loss, parts = udr_loss(outs, var, y)
    ys = [y, y] + [F.interpolate(y, scale_factor=f, mode="bicubic") for f in (0.5, 0.25, 0.125)]
    lf = 0.5 * sum(float(psnr_loss(outs[i], ys[i])) for i in range(1, 5)) / 4 + float(psnr_loss(outs[0], ys[0]))
    lu = sum(float(F.l1_loss(o * torch.exp(-v), t * torch.exp(-v)) + 2 * v.mean()) for o, v, t in zip(outs, var, ys)) / 5
    assert math.isclose(float(loss), lf + lu, rel_tol=1e-5) and parts["perceptual"] is None
    with_per, parts = udr_loss(outs, var, y, perceptual=lambda a, b: (a - b).abs().mean())
    assert math.isclose(float(with_per), lf + lu + 0.2 * parts["perceptual"], rel_tol=1e-5)


def test_train_a_udr_model_with_its_loss(tmp_path, data_dir, capsys):
    train = str(data_dir / "rain200H" / "train")
    out = tmp_path / "t"
    assert main(["train-teacher", "--preset", "udr-small", "--loss", "udr", "--train", train, "--skip-held-out-copies", "-o", str(out), "--steps", "2",
                 "--patch", "64", "--batch-size", "2"]) == 0
    from drsedge.models import UDRS2Former, load_any

    model, cfg = load_any(out / "model.safetensors")
    assert isinstance(model, UDRS2Former) and cfg.family == "udr_s2former"
    code = main(["train-teacher", "--loss", "udr", "--train", train, "--skip-held-out-copies", "-o", str(tmp_path / "d"), "--steps", "1", "--model", "dim=8"])
    _one_line(capsys, code, "loss 'udr'")
    code = main(["train-teacher", "--preset", "udr-small", "--loss", "udr", "--train", train, "-o", str(tmp_path / "e"),
                 "--steps", "1", "--patch", "96"])
    _one_line(capsys, code, "multiples of 64")


@pytest.mark.parametrize("family", ["udr_s2former"])
def test_distill_a_udr_student_from_a_drsformer_teacher(tmp_path, data_dir, family):
    """Cross-family distillation: the shipped DRSformer teacher teaches a small UDR-S2Former."""
    assert main(["distill", "--teacher", "shipped:teacher", "--model", f"family={family}", "--train",
                 str(data_dir / "rain200H" / "train"), "--skip-held-out-copies", "-o", str(tmp_path / "s"), "--steps", "2", "--patch", "64",
                 "--batch-size", "2"]) == 0
    from drsedge.models import load_any

    _, cfg = load_any(tmp_path / "s" / "model.safetensors")
    assert cfg.family == family and cfg.dim == [16, 16, 32, 32, 64]
