"""Structural re-parameterization (drsedge.models.reparam): the deploy copy computes what the module computes."""

import pytest
import torch
from safetensors.torch import load_file

from drsedge.models import ModelConfig, load_checkpoint, set_topk_mode, student_config
from drsedge.models.drsformer import Attention, FeedForward, set_fp16_safe
from drsedge.models.reparam import MSFNDeploy, QKVDeploy, reparameterize

TOL = dict(atol=1e-5, rtol=1e-5)


def _randomize(module: torch.nn.Module, seed: int = 0) -> None:
    """LayerNorm scales/shifts, biases and zero-initialised weights made non-trivial (1/0 would hide a wrong fold);
    conv weights keep PyTorch's default init so activations stay O(1) and top-k rows keep clear gaps."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() == 1 or not p.abs().sum():
                base = 1.0 if name.endswith("weight") and p.dim() == 1 else 0.0
                p.copy_(base + 0.2 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("dim,hidden,bias", [(8, 21, False), (16, 32, True), (12, 7, False)])
def test_msfn_deploy_equals_msfn(dim, hidden, bias):
    ffn = FeedForward(dim, 2.66, bias, hidden=hidden).eval()
    _randomize(ffn)
    x = torch.randn(2, dim, 19, 23, generator=torch.Generator().manual_seed(1))
    dep = MSFNDeploy(ffn).eval()
    with torch.no_grad():
        torch.testing.assert_close(dep(x), ffn(x), **TOL)
    # the deploy form has no channel slicing/concatenation: only convs, one Add, ReLUs
    assert {type(m).__name__ for m in dep.modules()} <= {"MSFNDeploy", "Sequential", "Conv2d", "ReLU"}


@pytest.mark.parametrize("bias", [False, True])
def test_qkv_deploy_equals_chunk(bias):
    attn = Attention(16, 2, bias).eval()
    _randomize(attn)
    x = torch.randn(1, 16, 12, 10)
    with torch.no_grad():
        ref = attn.qkv_dwconv(attn.qkv(x)).chunk(3, dim=1)
        for got, want in zip(QKVDeploy(attn)(x), ref, strict=True):
            torch.testing.assert_close(got, want, **TOL)


@pytest.mark.parametrize("ln", ["WithBias", "BiasFree"])
@pytest.mark.parametrize("fp16_safe", [False, True])
def test_reparameterized_model_equals_model(ln, fp16_safe):
    torch.manual_seed(0)
    model = student_config(dim=8, num_blocks=[1, 1, 2, 1], LayerNorm_type=ln).build().eval()
    _randomize(model)
    set_fp16_safe(model, fp16_safe)
    dep = reparameterize(model)
    assert not any(isinstance(m, FeedForward) for m in dep.modules())
    assert all(m.qkv_split is not None and not hasattr(m, "qkv") for m in dep.modules() if isinstance(m, Attention))
    assert any(isinstance(m, FeedForward) for m in model.modules())  # the original keeps its structure
    x = torch.rand(2, 3, 40, 48)
    with torch.no_grad():
        torch.testing.assert_close(dep(x), model(x), **TOL)


def test_reparameterized_pruned_model_equals_model():
    from drsedge.compress.prune import prune_model

    torch.manual_seed(0)
    cfg = student_config(dim=16, num_blocks=[1, 1, 1, 1], heads=[1, 2, 2, 4])
    model = cfg.build().eval()
    _randomize(model)
    pruned, _ = prune_model(model, cfg, 0.4, "l2", ("msfn", "attention", "heads"))
    widths = {m.dwconv3x3_1.out_channels for m in pruned.modules() if isinstance(m, FeedForward)}
    assert any(w % 2 for w in widths) or len(widths) > 1  # odd / uneven widths are exercised
    x = torch.rand(1, 3, 32, 40)
    with torch.no_grad():
        torch.testing.assert_close(reparameterize(pruned.eval())(x), pruned(x), **TOL)


@pytest.mark.parametrize("variant", ["mefc", "nomefc"])
def test_reparameterized_upstream_fixture_matches_upstream_outputs(fixture_config, fixtures_dir, variant):
    cfg = ModelConfig.from_dict({**fixture_config["constructor_kwargs"], "mefc": variant == "mefc"})
    model = load_checkpoint(cfg.build().eval(), fixtures_dir / f"small_{variant}_state.safetensors")
    dep = reparameterize(model)
    set_topk_mode(dep, "threshold")
    inputs = load_file(fixtures_dir / "inputs.safetensors")
    ref = load_file(fixtures_dir / f"small_{variant}_outputs.safetensors")
    with torch.no_grad():
        for name in ("48x64", "40x40", "b2_32x32"):
            torch.testing.assert_close(dep(inputs[f"x_{name}"]), ref[f"y_{name}"], **TOL)
