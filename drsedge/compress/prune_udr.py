"""Structural pruning of UDR-S2Former: the hidden widths of its feed-forward layers.

Scopes (the parts whose width nothing else couples to; ../shared/notes/udr-s2former.md §7):

- ``mlp``: each decoder block's MLP (``decoder_levelK.model.J.mlp``, Linear dim -> 4 dim -> dim, GELU): hidden units;
- ``mffn``: each latent block's MFFN (``latent.J.ffn``: 1x1 dim -> 2 dim, depthwise 3x3 + 5x5, SimpleGate, 1x1): gate
  pairs — channel ``c`` of the first half multiplies channel ``c + h/2``, so both go together.

Not pruned: the decoder widths (``var_convK[0]`` must keep the width of its level, the Local_Reconstruction var
windows need it divisible by 8, heads must divide it), attention heads (their count is in the relative-position
tables the checkpoints share). Removing a unit is exact: a pruned model computes what the original computes with
those units' weights zeroed (``tests/compress/test_prune_udr.py``).
"""

from __future__ import annotations

import copy

from torch import nn

from .prune_common import check_width_prune, take_conv
from .prune_common import keep_top as _keep
from .prune_common import take_linear as _take_linear
from .prune_common import unit_scores as _scores

UDR_SCOPES = ("mlp", "mffn")


def prune_udr(model: nn.Module, cfg, ratio: float, importance: str = "l2", scopes=UDR_SCOPES):
    """Remove the fraction ``ratio`` (0..1) of each MLP's hidden units / each MFFN's gate pairs with the lowest
    ``importance`` (l1, l2 of the weights they own, or taylor |w·grad|). Returns ``(pruned model, config)``; the
    config records the widths (``mlp_hidden``, ``ffn_hidden``) so the saved file rebuilds the model.

    Raises:
        DrsedgeError: a ratio outside (0, 1), an unknown importance or scope.
    """
    check_width_prune(ratio, importance, scopes, UDR_SCOPES, "UDR-S2Former")
    cfg = copy.deepcopy(cfg)
    mlp_hidden, ffn_hidden = dict(cfg.mlp_hidden), dict(cfg.ffn_hidden)
    if "mlp" in scopes:
        for i in range(4):
            for j, block in enumerate(getattr(model, f"decoder_level{i}").model):
                m = block.mlp
                n = m.fc1.out_features
                keep = _keep(_scores([(m.fc1.weight, 0, 0), (m.fc1.bias, 0, 0), (m.fc2.weight, 1, 0)], n, importance), ratio)
                m.fc1, m.fc2 = _take_linear(m.fc1, out_idx=keep), _take_linear(m.fc2, in_idx=keep)
                mlp_hidden[f"decoder_level{i}.{j}"] = len(keep)
    if "mffn" in scopes:
        for j, block in enumerate(model.latent):
            f = block.ffn
            half = f.conv1.out_channels // 2
            parts = [(w, 0, start) for w in (f.conv1.weight, f.conv1.bias, f.conv33.weight, f.conv55.weight) for start in (0, half)]
            parts.append((f.conv4.weight, 1, 0))
            keep = _keep(_scores(parts, half, importance), ratio)
            ch = keep + [k + half for k in keep]
            f.conv1 = take_conv(f.conv1, out_idx=ch)
            f.conv33 = take_conv(f.conv33, out_idx=ch, groups=len(ch))
            f.conv55 = take_conv(f.conv55, out_idx=ch, groups=len(ch))
            f.conv4 = take_conv(f.conv4, in_idx=keep)
            ffn_hidden[f"latent.{j}"] = len(ch)
    cfg.mlp_hidden, cfg.ffn_hidden = mlp_hidden, ffn_hidden
    return model, cfg
