"""UDR-S2Former pruning (compress/prune_udr.py): pruned = the original with the removed units zeroed, the config
rebuilds the pruned model from its file, and the CLI prunes a UDR checkpoint."""

from __future__ import annotations

import copy

import pytest
import torch
from safetensors.torch import load_file

from drsedge.cli import main
from drsedge.compress.prune_udr import prune_udr
from drsedge.models import load_any, save_model
from drsedge.models.udr_config import udr_config_from_state_dict
from tests.conftest import SHARED, need

UDR = SHARED / "fixtures" / "udr_s2former"


@pytest.fixture
def udr():
    need(UDR)
    state = load_file(UDR / "small_state.safetensors")
    cfg = udr_config_from_state_dict(state)
    model = cfg.build().eval()
    model.load_state_dict(state)
    model.set_rank_mode("topk")
    return model, cfg


def _zero_removed(masked, pruned_cfg, original):
    """Zero, in a copy of the original, exactly the units the pruned model no longer has."""
    with torch.no_grad():
        for i in range(4):
            for j, block in enumerate(getattr(masked, f"decoder_level{i}").model):
                kept = pruned_cfg.mlp_hidden[f"decoder_level{i}.{j}"]
                full = block.mlp.fc1.weight
                # the kept units are those whose fc1 rows survive: find them by matching rows
                keep = [u for u in range(full.shape[0]) if any(torch.equal(full[u], r) for r in original[f"{i}.{j}"].fc1.weight)]
                assert len(keep) == kept
                drop = [u for u in range(full.shape[0]) if u not in keep]
                block.mlp.fc1.weight[drop] = 0
                block.mlp.fc1.bias[drop] = 0
        for j, block in enumerate(masked.latent):
            f = block.ffn
            half = f.conv1.out_channels // 2
            kept_w = original[f"latent.{j}"].conv1.weight
            keep = [c for c in range(half) if any(torch.equal(f.conv1.weight[c], r) for r in kept_w)]
            drop = [c for c in range(half) if c not in keep]
            for c in drop + [d + half for d in drop]:
                for conv in (f.conv1, f.conv33, f.conv55):
                    conv.weight[c] = 0
                    conv.bias[c] = 0


def test_pruned_equals_masked(udr):
    model, cfg = udr
    masked = copy.deepcopy(model)
    pruned, pcfg = prune_udr(copy.deepcopy(model), cfg, 0.5, "l2")
    assert set(pcfg.mlp_hidden) == {"decoder_level0.0", "decoder_level1.0", "decoder_level2.0", "decoder_level2.1",
                                    "decoder_level3.0", "decoder_level3.1"}
    assert pcfg.mlp_hidden["decoder_level3.0"] == 64 and pcfg.ffn_hidden == {"latent.0": 64, "latent.1": 64}
    kept = {f"{i}.{j}": b.mlp for i in range(4) for j, b in enumerate(getattr(pruned, f"decoder_level{i}").model)}
    kept |= {f"latent.{j}": b.ffn for j, b in enumerate(pruned.latent)}
    _zero_removed(masked, pcfg, kept)
    x = load_file(UDR / "inputs.safetensors")["x_real_64"]
    with torch.no_grad():
        a, b = pruned.forward_all(x), masked.forward_all(x)
        c = model(x)
    for p, m in zip(a[0] + a[1], b[0] + b[1]):
        torch.testing.assert_close(p, m, atol=1e-5, rtol=1e-5)
    assert float((a[0][0] - c).abs().mean()) > 1e-4  # the pruning did change the model
    n = sum(p.numel() for p in pruned.parameters())
    assert n < sum(p.numel() for p in model.parameters()) - 30_000  # 414,472 -> 378,696 (MLP/MFFN halved)


def test_pruned_file_rebuilds_and_cli_prunes(udr, tmp_path, capsys):
    model, cfg = udr
    pruned, pcfg = prune_udr(copy.deepcopy(model), cfg, 0.25, "l1", scopes=("mffn",))
    path = save_model(tmp_path / "p.safetensors", pruned, pcfg)
    again, cfg2 = load_any(path)
    assert cfg2.ffn_hidden == {"latent.0": 96, "latent.1": 96} and cfg2.mlp_hidden == {}
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(again(x), pruned(x), atol=0, rtol=0)
    src = save_model(tmp_path / "udr.safetensors", model, cfg)
    assert main(["prune", str(src), "-o", str(tmp_path / "cli.safetensors"), "--ratio", "0.5", "--hw", "64", "64"]) == 0
    out = capsys.readouterr().out
    assert "mlp+mffn" in out and "| original | 414,472" in out
    _, c3 = load_any(tmp_path / "cli.safetensors")
    assert c3.mlp_hidden and c3.ffn_hidden
