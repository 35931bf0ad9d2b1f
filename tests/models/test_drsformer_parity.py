"""DRSformer vs the upstream code's own outputs (../shared/fixtures/drsformer_parity)."""

import json

import pytest
import torch
from safetensors.torch import load_file

from drsedge.models import ModelConfig, load_checkpoint, set_topk_mode
from drsedge.runtime import TorchRunner, pad_to_multiple, restore, tiled_forward

TOL = dict(atol=1e-5, rtol=1e-5)  # fixtures README: fp32 re-implementation within ~1e-6


def _model(fixture_config, fixtures_dir, variant):
    cfg = ModelConfig.from_dict({**fixture_config["constructor_kwargs"], "mefc": variant == "mefc"})
    return load_checkpoint(cfg.build().eval(), fixtures_dir / f"small_{variant}_state.safetensors")


@pytest.mark.parametrize("variant", ["mefc", "nomefc"])
@pytest.mark.parametrize("mode", ["index", "threshold"])
def test_outputs_match_upstream(fixture_config, fixtures_dir, variant, mode):
    torch.set_num_threads(1)
    model = _model(fixture_config, fixtures_dir, variant)
    set_topk_mode(model, mode)
    inputs = load_file(fixtures_dir / "inputs.safetensors")
    ref = load_file(fixtures_dir / f"small_{variant}_outputs.safetensors")
    with torch.no_grad():
        for name in ("48x64", "40x40", "b2_32x32"):
            torch.testing.assert_close(model(inputs[f"x_{name}"]), ref[f"y_{name}"], **TOL)


@pytest.mark.parametrize("variant", ["mefc", "nomefc"])
def test_pad_and_tile_match_upstream_test_py(fixture_config, fixtures_dir, variant):
    model = _model(fixture_config, fixtures_dir, variant)
    runner = TorchRunner(model)
    inputs = load_file(fixtures_dir / "inputs.safetensors")
    ref = load_file(fixtures_dir / f"small_{variant}_outputs.safetensors")
    x = inputs["x_37x45_unpadded"]
    torch.testing.assert_close(pad_to_multiple(x), ref["x_37x45_reflect_padded"], atol=0, rtol=0)
    torch.testing.assert_close(restore(runner, x, clamp=False), ref["y_37x45_padrun_raw_cropped"], **TOL)
    torch.testing.assert_close(restore(runner, x), ref["y_37x45_padrun_clamped_cropped"], **TOL)
    tiled = tiled_forward(runner, inputs["x_56x72_tiled"], tile=32, overlap=16)
    torch.testing.assert_close(tiled, ref["y_56x72_tiled_t32_o16_unclamped"], **TOL)


@pytest.mark.parametrize("variant", ["mefc", "nomefc"])
def test_intermediates_match_upstream(fixture_config, fixtures_dir, variant):
    model = _model(fixture_config, fixtures_dir, variant)
    ref = load_file(fixtures_dir / f"small_{variant}_intermediates_40x40.safetensors")
    got = {}
    hooks = [getattr(model, n.split(".", 1)[1]).register_forward_hook(lambda m, i, o, n=n: got.__setitem__(n, o)) for n in ref]
    with torch.no_grad():
        model(load_file(fixtures_dir / "inputs.safetensors")["x_40x40"])
    for h in hooks:
        h.remove()
    assert set(got) == set(ref)
    for name in ref:
        torch.testing.assert_close(got[name], ref[name], **TOL, msg=name)


@pytest.mark.parametrize("variant", ["mefc", "nomefc"])
def test_small_state_dict_layout(fixture_config, variant):
    cfg = ModelConfig.from_dict({**fixture_config["constructor_kwargs"], "mefc": variant == "mefc"})
    sd = cfg.build().state_dict()
    expected = fixture_config["variants"][variant]["state_dict_keys_in_order"]
    assert [[k, list(v.shape)] for k, v in sd.items()] == expected
    assert sum(v.numel() for v in sd.values()) == fixture_config["variants"][variant]["total_params"]


@pytest.mark.parametrize("variant,params", [("mefc", 33_655_424), ("nomefc", 32_610_304)])
def test_default_config_matches_manifest(fixtures_dir, variant, params):
    manifest = json.loads((fixtures_dir / "default_manifest.json").read_text())[variant]
    with torch.device("meta"):
        sd = ModelConfig(mefc=variant == "mefc").build().state_dict()
    assert [[k, list(v.shape)] for k, v in sd.items()] == manifest["state_dict"]
    assert sum(v.numel() for v in sd.values()) == params == manifest["total_params"]
