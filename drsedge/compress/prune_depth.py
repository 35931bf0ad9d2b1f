"""Depth pruning: whole ``TransformerBlock``\\ s removed from the seven stages of a DRSformer-family model (scope ``depth``).

Every TransformerBlock is residual (``x + attn(norm1(x))``, then ``+ ffn(norm2(x))``: upstream
``DRSformer_arch.py``), so the network without block ``j`` of a stage is exactly the network with that block replaced
by the identity: removing it changes no weight, and the stage's later blocks move up by one (their per-block widths
in the config move with them). Each stage keeps at least one block. The config records the kept counts in
``depths`` (``{"decoder_level1": 1}``), so a checkpoint rebuilds its model.

Importance (higher = keep) is measured when a probe batch is given: the mean absolute change of the model's output
when the block is bypassed, one forward pass per block: the criterion Minitron uses for depth (Muralidharan et al.,
"Compact Language Models via Pruning and Knowledge Distillation", 2024, Sec. 2.2: rank layers by the change of the
output without them). Why the output and not the weights: a block's weights can be large while its residual branch
adds little (the LayerNorm in front, a learned temperature), and a derainer is judged by its output only. Without a
probe, ``taylor`` sums ``|w * dL/dw|`` over the block (gradients from the caller) and ``l1``/``l2`` take the norm of
the block's two residual-branch output projections (``attn.project_out``, ``ffn.project_out``).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from drsedge.errors import DrsedgeError
from drsedge.models.config import ModelConfig
from drsedge.models.drsformer import BLOCK_STAGES, stage_depths

from .prune_common import check_kind


def blocks_of(model: nn.Module) -> list[tuple[str, int]]:
    """``[(stage, index), ...]`` of every TransformerBlock, in forward order of :data:`BLOCK_STAGES`."""
    return [(st, i) for st in BLOCK_STAGES for i in range(len(getattr(model, st)))]


@torch.no_grad()
def block_importance(model: nn.Module, probe: torch.Tensor | None = None, kind: str = "l2") -> dict[tuple[str, int], float]:
    """Importance of every block (module docstring): with ``probe`` (``[B, 3, H, W]`` float32 in [0, 1], H, W
    multiples of 8) the mean |output change| when the block is bypassed, in [0, 1] output units; else a weight score.

    Raises:
        DrsedgeError: unknown ``kind``; ``taylor`` without gradients (and no probe).
    """
    check_kind(kind)
    out: dict[tuple[str, int], float] = {}
    if probe is not None:
        was = model.training
        model.eval()
        y = model(probe)
        for st, i in blocks_of(model):
            seq = getattr(model, st)
            block = seq[i]
            seq[i] = nn.Identity()
            try:
                out[(st, i)] = float((model(probe) - y).abs().mean())
            finally:
                seq[i] = block
        model.train(was)
        return out
    for st, i in blocks_of(model):
        b = getattr(model, st)[i]
        if kind == "taylor":
            ps = [p for p in b.parameters() if p.grad is not None]
            if not ps:
                raise DrsedgeError("taylor importance needs gradients: run a backward pass on calibration data first")
            out[(st, i)] = float(sum((p * p.grad).abs().sum() for p in ps))
        else:
            order = 1 if kind == "l1" else 2
            out[(st, i)] = float(sum(m.weight.norm(order) for m in (b.attn.project_out, b.ffn.project_out)))
    return out


def select_blocks(model: nn.Module, ratio: float, scores: dict[tuple[str, int], float]) -> set[tuple[str, int]]:
    """The ``round(ratio * removable)`` blocks to remove: least important first (ties in a fixed order), each stage
    keeping at least one."""
    blocks = blocks_of(model)
    n = round(ratio * (len(blocks) - len(BLOCK_STAGES)))
    left = {st: len(getattr(model, st)) for st in BLOCK_STAGES}
    drop: set[tuple[str, int]] = set()
    for key in sorted(blocks, key=lambda k: (scores[k], k)):
        if len(drop) == n:
            break
        if left[key[0]] > 1:
            drop.add(key)
            left[key[0]] -= 1
    return drop


def prune_depth(model: nn.Module, config: ModelConfig, ratio: float, importance: str = "l2",
                probe: torch.Tensor | dict | None = None) -> tuple[nn.Module, ModelConfig]:
    """Remove ``round(ratio * removable)`` of the least important blocks (removable: all but one per stage); returns a
    new model and its config (``depths`` and the per-block width dicts re-indexed). ``ratio`` in [0, 1). ``probe``: the
    batch of :func:`block_importance`, or its result for this model (a MACs search prunes one model many times).

    Raises:
        DrsedgeError: ``ratio`` outside [0, 1); the errors of :func:`block_importance`.
    """
    if not 0 <= ratio < 1:
        raise DrsedgeError(f"depth pruning ratio must be in [0, 1), got {ratio}")
    if round(ratio * (len(blocks_of(model)) - len(BLOCK_STAGES))) == 0:
        return model, config
    scores = probe if isinstance(probe, dict) else block_importance(model, probe, importance)
    drop = select_blocks(model, ratio, scores)
    left = {st: len(getattr(model, st)) - sum(1 for s, _ in drop if s == st) for st in BLOCK_STAGES}
    new = copy.deepcopy(model)
    remap: dict[str, str] = {}
    for st in BLOCK_STAGES:
        seq = getattr(new, st)
        kept = [i for i in range(len(seq)) if (st, i) not in drop]
        setattr(new, st, nn.Sequential(*[seq[i] for i in kept]))
        remap.update({f"{st}.{i}": f"{st}.{j}" for j, i in enumerate(kept)})
    d = config.to_dict()
    for field in ("ffn_hidden", "attn_inner", "attn_heads"):
        d[field] = {remap[k]: v for k, v in d[field].items() if k in remap}
    depths = {st: left[st] for st in BLOCK_STAGES}
    d["depths"] = {st: c for st, c in depths.items() if c != stage_depths(config.num_blocks)[st]}
    return new, ModelConfig.from_dict(d, "depth-pruned config")
