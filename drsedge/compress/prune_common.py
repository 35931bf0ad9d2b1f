"""Pruning helpers shared by every scope (:mod:`.prune`, :mod:`.prune_streams`): the importance of a coupled
group of weight slices, and slicing a conv (Torch-Pruning's ``pruner`` functions play this role)."""

from __future__ import annotations

import torch
from torch import nn

from drsedge.errors import DrsedgeError

IMPORTANCES = ("l1", "l2", "taylor")


def check_kind(kind: str) -> None:
    """Raises DrsedgeError unless ``kind`` is l1, l2 or taylor."""
    if kind not in IMPORTANCES:
        raise DrsedgeError(f"importance must be one of {IMPORTANCES}, got {kind!r}")


def group_score(parts: list[tuple[torch.Tensor, list[int], int]], kind: str) -> float:
    """Importance of one coupled group: ``parts`` are (weight, indices, dim) slices it owns."""
    total = 0.0
    for w, idx, dim in parts:
        sel = w.detach().index_select(dim, torch.tensor(idx))
        if kind == "l1":
            total += float(sel.abs().sum())
        elif kind == "l2":
            total += float(sel.square().sum())
        else:
            if w.grad is None:
                raise DrsedgeError("taylor importance needs gradients: run a backward pass on calibration data first")
            total += float((sel * w.grad.index_select(dim, torch.tensor(idx))).abs().sum())
    return total


def take_conv(conv: nn.Conv2d, out_idx=None, in_idx=None, groups=None) -> nn.Conv2d:
    """A new conv with the kept output rows / input columns of ``conv`` (gradients carried along for taylor)."""
    w = conv.weight.detach()
    if out_idx is not None:
        w = w[out_idx]
    if in_idx is not None:
        w = w[:, in_idx]
    new = nn.Conv2d(
        w.shape[1] * (groups or 1), w.shape[0], conv.kernel_size, conv.stride, conv.padding, conv.dilation,
        groups or 1, bias=conv.bias is not None,
    )
    new.weight.data.copy_(w)
    if conv.weight.grad is not None:  # carried along, so a following taylor pass still has its gradients
        g = conv.weight.grad
        g = g[out_idx] if out_idx is not None else g
        new.weight.grad = (g[:, in_idx] if in_idx is not None else g).clone()
    if conv.bias is not None:
        new.bias.data.copy_(conv.bias.detach()[out_idx] if out_idx is not None else conv.bias.detach())
    return new
