"""FP16-safe LayerNorm / q,k normalisation: the upstream outputs in FP32, bounded intermediates in FP16."""

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from drsedge.models import ModelConfig, load_checkpoint, set_fp16_safe
from drsedge.models.drsformer import BiasFree_LayerNorm, WithBias_LayerNorm
from drsedge.models.fp16_safe import l2_normalize


@pytest.mark.parametrize("variant", ["mefc", "nomefc"])
def test_fp16_safe_model_reproduces_upstream_outputs(fixture_config, fixtures_dir, variant):
    cfg = ModelConfig.from_dict({**fixture_config["constructor_kwargs"], "mefc": variant == "mefc"})
    model = load_checkpoint(cfg.build().eval(), fixtures_dir / f"small_{variant}_state.safetensors")
    inputs = load_file(fixtures_dir / "inputs.safetensors")
    ref = load_file(fixtures_dir / f"small_{variant}_outputs.safetensors")
    set_fp16_safe(model, True)
    with torch.no_grad():
        for name in ("48x64", "40x40", "b2_32x32"):
            torch.testing.assert_close(model(inputs[f"x_{name}"]), ref[f"y_{name}"], atol=1e-5, rtol=1e-5)


def test_l2_normalize_matches_and_survives_fp16():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 40, 56, generator=g) * torch.logspace(-3, 3, 4)[None, None, :, None, None]
    ref = F.normalize(x.reshape(2, 3, 4, -1), dim=-1)
    torch.testing.assert_close(l2_normalize(x, (-2, -1)).reshape(ref.shape), ref, atol=1e-6, rtol=1e-5)
    assert l2_normalize(torch.zeros(1, 1, 2, 8, 8), (-2, -1)).abs().max() == 0  # zero rows stay zero, no NaN
    # 720p pixels of magnitude ~3: the sum of squares (what ReduceL2 forms) is ~8e6, far beyond FP16's 65504.
    big = (torch.rand(1, 1, 2, 720, 1280, generator=g) * 3).half()
    assert torch.isinf(big.square().sum((-2, -1))).all()
    y = l2_normalize(big, (-2, -1))
    assert y.dtype == torch.half and torch.isfinite(y).all()
    want = F.normalize(big.float().reshape(1, 1, 2, -1), dim=-1).reshape(y.shape)
    assert (y.float() - want).abs().max() < 2e-5  # values ~1e-3; FP16 rounding only


@pytest.mark.parametrize("cls", [WithBias_LayerNorm, BiasFree_LayerNorm])
def test_layer_norm_matches_and_survives_fp16(cls):
    ln = cls(16)
    with torch.no_grad():
        ln.weight.uniform_(0.5, 1.5)
        if hasattr(ln, "bias"):
            ln.bias.uniform_(-0.5, 0.5)
    x = torch.randn(2, 16, 12, 12) * 400  # |x - mu| > 256: (x - mu)^2 overflows FP16
    ref = ln(x)
    ln.fp16_safe = True
    torch.testing.assert_close(ln(x), ref, atol=1e-5, rtol=1e-5)
    ln_h = ln.half()
    ln_h.fp16_safe = False
    err_default = (ln_h(x.half()).float() - ref).abs().nan_to_num(float("inf")).max()
    assert err_default > 1.0  # the default form's variance overflows: outputs collapse
    ln_h.fp16_safe = True
    assert (ln_h(x.half()).float() - ref).abs().max() < 2e-2  # FP16 rounding of O(1) outputs
