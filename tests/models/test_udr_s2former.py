"""UDR-S2Former vs the upstream code's own outputs (../shared/fixtures/udr_s2former), the default checkpoint layout,
the bisection ranking against upstream's TopK + scatter, and what upstream could not do (bf16, batch 2, any size)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from drsedge.models import UDRS2Former, load_any, save_model
from drsedge.models.udr_config import UDRConfig, udr_config_from_state_dict, udr_small_config
from drsedge.models.udr_s2former import kth_largest, rank_constraint, rank_modulation
from tests.conftest import SHARED, need

UDR = SHARED / "fixtures" / "udr_s2former"
TOL = dict(atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def udr_fixture():
    need(UDR)
    return json.loads((UDR / "config.json").read_text())


def _small(udr_fixture, mode="threshold") -> UDRS2Former:
    kw = dict(udr_fixture["small_kwargs"])
    kw["img_size"] = tuple(kw["img_size"])
    m = UDRS2Former(**kw, rank_mode=mode).eval()
    m.load_state_dict(load_file(UDR / "small_state.safetensors"), strict=True)
    return m


@pytest.mark.parametrize("mode", ["topk", "threshold"])
def test_all_ten_outputs_match_upstream(udr_fixture, mode):
    torch.set_num_threads(1)
    model = _small(udr_fixture, mode)
    assert [k for k in model.state_dict()] == [k for k, _ in udr_fixture["small_state_keys"]]
    inputs = load_file(UDR / "inputs.safetensors")
    ref = load_file(UDR / "small_outputs.safetensors")
    for name, x in inputs.items():
        with torch.no_grad():
            imgs, var = model.forward_all(x)
            deployed = model(x)
        for i in range(5):
            torch.testing.assert_close(imgs[i], ref[f"{name}.img{i}"], **TOL)
            torch.testing.assert_close(var[i], ref[f"{name}.var{i}"], **TOL)
        torch.testing.assert_close(deployed, ref[f"{name}.img0"], **TOL)


def test_default_layout_loads_strict_and_is_inferred(udr_fixture, tmp_path):
    expected = [(k, tuple(s)) for k, s in udr_fixture["default_state_keys"]]
    model = UDRConfig(img_size=[320, 320]).build()
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == expected
    assert sum(p.numel() for p in model.parameters()) == udr_fixture["default_params"] == 8_525_361
    # an "official" checkpoint: upstream's keys and shapes in BasicSR's wrapper; its config is read from the keys
    g = torch.Generator().manual_seed(0)
    state = {k: (torch.randn(s, generator=g) * 0.02 if not k.endswith("relative_position_index")
                 else model.state_dict()[k]) for k, s in expected}
    torch.save({"params": state}, tmp_path / "udrs2former_agan.pth")
    loaded, cfg = load_any(tmp_path / "udrs2former_agan.pth")
    assert isinstance(loaded, UDRS2Former) and cfg == UDRConfig()
    assert torch.equal(loaded.state_dict()["latent.7.ffn.conv4.weight"], state["latent.7.ffn.conv4.weight"])
    state.pop("out0.bias")
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(Exception, match="missing"):
        load_any(tmp_path / "broken.pth")


def test_small_config_is_the_fixture_shape(udr_fixture):
    state = load_file(UDR / "small_state.safetensors")
    cfg = udr_config_from_state_dict(state)
    small = udr_small_config()
    assert (cfg.dim, cfg.head, cfg.reconstruction_num, cfg.conv_num, cfg.transformer_blocks) == (
        small.dim, small.head, small.reconstruction_num, small.conv_num, small.transformer_blocks)
    assert sum(p.numel() for p in small.build().parameters()) == udr_fixture["small_params"] == 414_472


def test_safetensors_round_trip_keeps_the_family(udr_fixture, tmp_path):
    model = _small(udr_fixture)
    cfg = udr_config_from_state_dict(model.state_dict())
    path = save_model(tmp_path / "udr.safetensors", model, cfg)
    again, cfg2 = load_any(path)
    assert isinstance(again, UDRS2Former) and cfg2 == cfg
    x = load_file(UDR / "inputs.safetensors")["x_real_64"]
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x), atol=0, rtol=0)


def test_bisection_equals_topk_scatter_on_real_var_maps(udr_fixture, data_dir):
    """The deployable ranking gives upstream's masks on the var maps of real rainy images; where several values tie at
    the k-th (upstream keeps an implementation-defined subset of them), the threshold keeps them all."""
    from drsedge.data.images import read_image, to_tensor
    from drsedge.models.udr_s2former import window_partition

    model = _small(udr_fixture)
    total = ties = 0
    for name in ("1.png", "2.png"):
        x = to_tensor(read_image(data_dir / "rain200H" / "test" / "input" / name))[..., :128, :192]
        feats = {}
        hooks = [getattr(model, f"decoder_level{i}").register_forward_hook(
            lambda mod, inp, out, i=i, feats=feats: feats.__setitem__(i, inp[1])) for i in range(4)]
        with torch.no_grad():
            model(x)
        for h in hooks:
            h.remove()
        for var in feats.values():
            a, b = rank_constraint(var, "threshold"), rank_constraint(var, "topk")
            assert torch.equal(a, b)
            total += a.numel()
            vw = window_partition(var, 8).view(-1, 64, var.shape[1])
            a, b = rank_modulation(vw, 51, "threshold"), rank_modulation(vw, 51, "topk")
            s = vw @ vw.transpose(-2, -1)
            kth = torch.topk(s, 51, dim=-1)[0][..., -1:]
            tied = (s == kth).sum(-1) > 1  # rows where the 51st value is shared
            differ = (a != b).squeeze(1)
            assert not bool(differ[~tied].any()), "a mismatch in a row without a tie"
            assert bool((a[a != b] == 1.0).all())  # on a tie the threshold keeps every tied element
            ties += int(differ.sum())
            total += a.numel()
    assert total > 500_000 and ties <= 4


def test_kth_largest_is_exact():
    g = torch.Generator().manual_seed(0)
    for scale in (1e-6, 1.0, 1e3):
        v = torch.randn(3, 5, 4096, generator=g) * scale
        for k in (1, 51, 3276, 4096):
            ref = torch.topk(v, k, dim=-1)[0][..., -1:]
            assert torch.equal(kth_largest(v, k), ref), (scale, k)


def test_bf16_batch_two_and_any_size(udr_fixture):
    model = _small(udr_fixture)
    assert not any("coords" in k for k in model.state_dict())  # non-persistent buffers: upstream's state_dict
    inputs = load_file(UDR / "inputs.safetensors")
    ref = load_file(UDR / "small_outputs.safetensors")
    x = torch.cat([inputs["x_rand_64"], inputs["x_real_64"]])
    with torch.no_grad():
        y = model(x)
        torch.testing.assert_close(y, torch.cat([ref["x_rand_64.img0"], ref["x_real_64.img0"]]), **TOL)
        odd = torch.rand(2, 3, 72, 100)
        assert model(odd).shape == odd.shape  # reflect-padded to 128x128 inside, cropped back
        with pytest.raises(ValueError, match="multiples of 64"):
            model.forward_all(odd)
        yb = model.to(torch.bfloat16)(x.bfloat16())
    assert yb.dtype == torch.bfloat16
    err = (yb.float() - y).abs()
    assert float(err.mean()) < 0.02 and bool(torch.isfinite(yb).all())


def test_config_refuses_impossible_shapes():
    from drsedge.errors import DrsedgeError

    for bad, needle in ((dict(dim=[16, 32, 64, 128]), "5 entries"), (dict(dim=[16, 20, 64, 128, 256]), "multiples of 8"),
                        (dict(img_size=[100, 128]), "multiples of 64"), (dict(head=[1, 2, 4, 8, 3]), "split"),
                        (dict(dim=[100000] * 5), "1..1024")):
        with pytest.raises(DrsedgeError, match=needle):
            UDRConfig.from_dict({**UDRConfig().to_dict(), **bad})
    assert np.isclose(sum(p.numel() for p in udr_small_config().build().parameters()), 414_472)
