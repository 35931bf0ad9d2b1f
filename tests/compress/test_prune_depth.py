"""Depth pruning (issue 34): a depth-pruned model equals the original with those blocks bypassed, its config rebuilds
it (also from a bare state dict), and the shipped teacher prunes to a student's size and below."""

import pytest
import torch
from torch import nn

from drsedge.compress.prune import prune_model
from drsedge.compress.prune_depth import block_importance, prune_depth, select_blocks
from drsedge.data import CropSampler, find_pairs, load_samples
from drsedge.models.checkpoint import config_from_state_dict, load_any
from drsedge.models.drsformer import stage_depths
from drsedge.models.info import model_info

pytestmark = pytest.mark.slow  # prunes the shipped teacher (CPU-sized)

ALL = ["depth", "msfn", "attention", "heads", "streams"]


@pytest.fixture(scope="module")
def teacher_and_probe():
    from tests.conftest import DATA, need

    need(DATA)
    model, cfg = load_any("shipped:teacher")
    probe = CropSampler(load_samples(find_pairs(DATA / "rain200H" / "test")), 32, 2, 0).batch(0)[0]
    return model, cfg, probe


def test_depth_pruned_equals_the_original_with_blocks_bypassed(teacher_and_probe):
    model, cfg, probe = teacher_and_probe
    scores = block_importance(model, probe)
    drop = select_blocks(model, 0.5, scores)
    pruned, pcfg = prune_depth(model, cfg, 0.5, probe=scores)
    assert len(drop) == round(0.5 * (len(scores) - 7))  # half of the blocks beyond one per stage
    masked = load_any("shipped:teacher")[0]
    for st, i in drop:
        getattr(masked, st)[i] = nn.Identity()
    x = torch.rand(1, 3, 48, 64)
    with torch.no_grad():
        assert torch.equal(pruned(x), masked(x))
        assert not torch.equal(pruned(x), model(x))
    # the least important block by the measured output change is among the removed ones
    assert min(scores, key=scores.get) in drop
    # the config rebuilds it, from metadata and from the bare state dict
    rebuilt = pcfg.build().eval()
    rebuilt.load_state_dict(pruned.state_dict(), strict=True)
    inferred = config_from_state_dict(pruned.state_dict())
    assert stage_depths(inferred.num_blocks, inferred.depths) == stage_depths(pcfg.num_blocks, pcfg.depths)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), pruned(x))


@pytest.mark.parametrize("target,scopes,ratio", [(2.2, ALL, 0.5), (0.6, ["depth", "msfn", "heads", "streams"], 0.9)])
def test_the_teacher_prunes_to_a_student_size(teacher_and_probe, target, scopes, ratio):
    """Width scopes alone stop at 3.31 GMACs @256² (every block survives); with depth the 10.47 GMACs teacher reaches
    the shipped student's 2.15 GMACs and 0.6 (measured: 2.071 and 0.532 at these ratios, l2 ranking). The config
    rebuilds the result."""
    model, cfg, _ = teacher_and_probe
    pruned, pcfg = prune_model(model, cfg, ratio, "l2", scopes)
    assert model_info(pruned, 256, 256).gmacs <= target and pcfg.depths
    rebuilt = pcfg.build()
    rebuilt.load_state_dict(pruned.state_dict(), strict=True)


def test_cli_prunes_a_shipped_model_by_depth(tmp_path, capsys):
    """``drsedge prune shipped:teacher --scope depth``: the shipped: name is resolved for the weights' source hash too
    (it failed with 'No such file' once the source path left the weights)."""
    from drsedge.cli import main

    out = tmp_path / "p.safetensors"
    assert main(["prune", "shipped:teacher", "-o", str(out), "--scope", "depth", "--ratio", "0.5"]) == 0
    model, cfg = load_any(out)
    assert cfg.depths and model_info(model, 256, 256).gmacs < 10.47
    assert "depth ratio 0.500" in capsys.readouterr().out


def test_a_macs_target_ranked_on_real_crops_reaches_a_half_gmac_student(teacher_and_probe):
    """The MACs search stopped at the ladder rung below the first refused ratio (0.99: an MSFN runs out of channels),
    so with depth ranked on real crops the teacher could not go under 0.66 GMACs @256² (issue 34's 0.51 target was
    refused, min 0.663); the search now bisects between the refused and the taken rung (measured: ratio 0.962 for
    0.51 GMACs on rain200L crops)."""
    from drsedge.compress.prune import ratio_for_macs
    from drsedge.stages.prune import DEPTH_PROBE_BATCH, DEPTH_PROBE_PATCH, DEPTH_PROBE_SEED
    from tests.conftest import DATA

    model, cfg, _ = teacher_and_probe
    samples = load_samples(find_pairs(DATA / "rain200L" / "train")[:40])  # the crops --init prune-teacher ranks depth on
    probe = CropSampler(samples, DEPTH_PROBE_PATCH, DEPTH_PROBE_BATCH, DEPTH_PROBE_SEED).batch(0)[0]
    scopes = ["depth", "msfn", "heads", "streams"]
    scores = block_importance(model, probe)
    ratio = ratio_for_macs(model, cfg, int(0.51e9), (256, 256), scopes, scores)
    assert 0.95 < ratio < 0.99
    pruned, _ = prune_model(model, cfg, ratio, "l2", scopes, scores)
    assert model_info(pruned, 256, 256).gmacs <= 0.51
