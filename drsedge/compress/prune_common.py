"""Pruning helpers shared by every scope (:mod:`.prune`, :mod:`.prune_streams`): the importance of a coupled
group of weight slices, and slicing a conv (Torch-Pruning's ``pruner`` functions play this role)."""

from __future__ import annotations

import torch
from torch import nn

from drsedge.choices import PRUNE_IMPORTANCES
from drsedge.errors import DrsedgeError

IMPORTANCES = PRUNE_IMPORTANCES


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


def unit_scores(parts: list[tuple[torch.Tensor, int, int]], n: int, kind: str) -> torch.Tensor:
    """Importance of ``n`` units; unit ``u`` owns index ``start + u`` along ``dim`` of every ``(weight, dim, start)``."""
    total = torch.zeros(n, dtype=torch.float64)
    for w, dim, start in parts:
        t = w.detach().double().narrow(dim, start, n).movedim(dim, 0).reshape(n, -1)
        if kind == "l1":
            total += t.abs().sum(1)
        elif kind == "l2":
            total += t.square().sum(1)
        else:
            if w.grad is None:
                raise DrsedgeError("taylor importance needs gradients: run a backward pass on calibration data first")
            g = w.grad.detach().double().narrow(dim, start, n).movedim(dim, 0).reshape(n, -1)
            total += (t * g).abs().sum(1)
    return total


def keep_top(scores: torch.Tensor, ratio: float) -> list[int]:
    n = max(1, int(round(scores.numel() * (1.0 - ratio))))
    return sorted(torch.argsort(scores, descending=True, stable=True)[:n].tolist())


def take_linear(lin: nn.Linear, out_idx=None, in_idx=None) -> nn.Linear:
    w = lin.weight.detach()
    w = w[out_idx] if out_idx is not None else w
    w = w[:, in_idx] if in_idx is not None else w
    new = nn.Linear(w.shape[1], w.shape[0], bias=lin.bias is not None)
    new.weight.data.copy_(w)
    if lin.bias is not None:
        new.bias.data.copy_(lin.bias.detach()[out_idx] if out_idx is not None else lin.bias.detach())
    return new


def check_width_prune(ratio: float, importance: str, scopes, allowed: tuple[str, ...], label: str) -> None:
    """The argument checks every hidden-width pruner shares (UDR-S2Former, AST).

    Raises:
        DrsedgeError: an unknown importance, a ratio outside (0, 1), or a scope the family lacks.
    """
    check_kind(importance)
    if not 0 < ratio < 1:
        raise DrsedgeError(f"pruning ratio {ratio} must be in (0, 1)")
    if not scopes or [s for s in scopes if s not in allowed]:
        raise DrsedgeError(f"{label} pruning scopes are {allowed}, got {list(scopes)}")
