"""Checkpoint loading: BasicSR wrappers, safetensors with config, clear errors on mismatch or pickles."""

import pickle

import pytest
import torch

from drsedge.errors import DrsedgeError
from drsedge.models import ModelConfig, config_from_state_dict, load_any, load_checkpoint, load_model, save_model, student_config

SMALL = dict(dim=8, num_blocks=[1, 2, 2, 3], heads=[1, 2, 4, 8])


@pytest.mark.parametrize("wrap", ["params", "params_ema", None])
def test_pth_wrappers_load_strict(tmp_path, wrap):
    src = ModelConfig(**SMALL).build()
    sd = src.state_dict()
    path = tmp_path / "net_g.pth"
    torch.save({wrap: sd} if wrap else sd, path)
    dst = load_checkpoint(ModelConfig(**SMALL).build(), path)
    for k, v in dst.state_dict().items():
        assert torch.equal(v, sd[k])


def test_upstream_fixture_config_is_inferred(fixtures_dir):
    _model, cfg = load_any(fixtures_dir / "small_mefc_state.safetensors")
    assert cfg == ModelConfig(**SMALL, mefc=True)
    _, cfg2 = load_any(fixtures_dir / "small_nomefc_state.safetensors")
    assert cfg2.mefc is False


def test_mefc_mismatch_names_keys(tmp_path):
    path = tmp_path / "nomefc.pth"
    torch.save({"params": ModelConfig(**SMALL, mefc=False).build().state_dict()}, path)
    with pytest.raises(DrsedgeError, match=r"missing \(first: encoder_level0.*toggle mefc"):
        load_checkpoint(ModelConfig(**SMALL, mefc=True).build(), path)


def test_shape_mismatch_names_key(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(ModelConfig(**{**SMALL, "dim": 16}).build().state_dict(), path)
    with pytest.raises(DrsedgeError, match=r"mis-shaped \(first: patch_embed.proj.weight"):
        load_checkpoint(ModelConfig(**SMALL).build(), path)


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickle_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"params": Evil()}, f)
    with pytest.raises(DrsedgeError, match="weights_only"):
        load_checkpoint(ModelConfig(**SMALL).build(), path)


def test_safetensors_round_trip_rebuilds_model(tmp_path):
    cfg = student_config(dim=8, num_blocks=[1, 1, 1, 1], attention="assa")
    model = cfg.build().eval()
    path = save_model(tmp_path / "s.safetensors", model, cfg)
    loaded, cfg2 = load_model(path)
    assert cfg2 == cfg
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert config_from_state_dict(model.state_dict()) == cfg


def test_corrupt_safetensors(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00\x01garbage")
    with pytest.raises(DrsedgeError, match="bad.safetensors"):
        load_model(bad)
