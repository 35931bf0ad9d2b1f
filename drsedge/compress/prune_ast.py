"""Structural pruning of AST: the hidden width of every block's FRFN.

Scope ``frfn`` (paper Sec. 3.3; upstream ``FRFN``): ``linear1`` maps C -> 2 h, its output is split into the gate path
``x_1`` (depth-wise 3x3 + GELU) and ``x_2``, their product is mapped back by ``linear2`` (h -> C). Hidden unit ``u`` owns
``linear1`` rows ``u`` and ``h + u``, ``dwconv`` channel ``u`` and ``linear2`` column ``u``, and nothing else reads it, so
removing it is exact: a pruned model computes what the original computes with those units' ``linear2`` columns zeroed
(``tests/compress/test_prune_ast.py``).

Not pruned: the token widths (the skip concatenations and the relative-position tables couple every level), the
partial conv (a fixed quarter of C), and attention heads (ASSA's per-head tables are upstream's checkpoint layout).
"""

from __future__ import annotations

import copy

from torch import nn

from .prune_common import check_width_prune, keep_top, take_conv, take_linear, unit_scores

AST_SCOPES = ("frfn",)


def ast_blocks(model: nn.Module):
    """``(name, block)`` for every TransformerBlock, named ``<layer>.<index>`` as in ``ASTConfig.frfn_hidden``."""
    for name, layer in model.named_children():
        if hasattr(layer, "blocks"):
            for j, blk in enumerate(layer.blocks):
                yield f"{name}.{j}", blk


def prune_ast(model: nn.Module, cfg, ratio: float, importance: str = "l2", scopes=AST_SCOPES):
    """Remove the fraction ``ratio`` (0..1) of each FRFN's hidden units with the lowest ``importance`` (l1, l2 of the
    weights they own, or taylor |w·grad|). Returns ``(pruned model, config)``; ``config.frfn_hidden`` records the widths.

    Raises:
        DrsedgeError: a ratio outside (0, 1), an unknown importance or scope.
    """
    check_width_prune(ratio, importance, scopes, AST_SCOPES, "AST")
    cfg = copy.deepcopy(cfg)
    hidden = dict(cfg.frfn_hidden)
    for name, blk in ast_blocks(model):
        f = blk.mlp
        h = f.hidden_dim
        lin1, dw, lin2 = f.linear1[0], f.dwconv[0], f.linear2[0]
        parts = [(w, 0, start) for w in (lin1.weight, lin1.bias) for start in (0, h)]
        parts += [(dw.weight, 0, 0), (dw.bias, 0, 0), (lin2.weight, 1, 0)]
        keep = keep_top(unit_scores(parts, h, importance), ratio)
        f.linear1[0] = take_linear(lin1, out_idx=keep + [k + h for k in keep])
        f.dwconv[0] = take_conv(dw, out_idx=keep, groups=len(keep))
        f.linear2[0] = take_linear(lin2, in_idx=keep)
        f.hidden_dim = len(keep)
        hidden[name] = len(keep)
    cfg.frfn_hidden = hidden
    return model, cfg
