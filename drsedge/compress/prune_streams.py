"""Residual-stream pruning: the channel widths of patch embed, encoder/decoder levels, Down/Upsample and skips.

DRSformer has nine residual streams (:data:`drsedge.models.drsformer.STREAMS`). A stream channel is
written by one conv, carried through every block of its level (both LayerNorms, ``attn.qkv`` and
``ffn.project_in`` read it, ``attn.project_out`` and ``ffn.project_out`` write it) and read by the
next conv; removing it removes all of those rows/columns together (DepGraph's coupling, written out
for this graph because Torch-Pruning has no PixelShuffle/PixelUnshuffle rules). The couplings:

* ``PixelUnshuffle(2)`` after a Downsample conv turns conv channel ``c`` into stream channels
  ``4c..4c+3``: encoder levels 2/3 and the latent are pruned in units of 4 channels.
* ``PixelShuffle(2)`` after an Upsample conv gathers conv channels ``4u..4u+3`` into stream channel ``u``.
* Skip concatenations: ``reduce_chan_level3`` reads ``cat(up4_3, encoder_level3)``,
  ``reduce_chan_level2`` reads ``cat(up3_2, encoder_level2)``, and ``decoder_level1`` *is*
  ``cat(up2_1, encoder_level1)`` (no reduction), so an ``encoder_level1`` channel also leaves every
  ``decoder_level1`` block and the ``output`` conv.

Attention q/k/v widths and MSFN hidden widths are left as they are (recorded per block in the
config), so heads and top-k sizes are unchanged. LayerNorm statistics run over fewer channels, so
unlike MSFN/head pruning this is not an exact sub-network: fine-tune afterwards (``drsedge prune``
does). Needs ``mefc=False`` (MEFC's sub-networks are not handled).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from drsedge.errors import DrsedgeError
from drsedge.models.config import ModelConfig
from drsedge.models.drsformer import stream_widths_of

from .prune_common import check_kind, group_score, take_conv

# stream -> (writer conv, PixelUnshuffle/Shuffle unit, [(reader conv, offset stream or None)], levels carrying it)
_GRAPH = {
    "encoder_level1": ("patch_embed.proj", 1, [("down1_2.body.0", None), ("output", "up2_1")], ["encoder_level1", "decoder_level1@up2_1"]),
    "encoder_level2": ("down1_2.body.0", 4, [("down2_3.body.0", None), ("reduce_chan_level2", "up3_2")], ["encoder_level2"]),
    "encoder_level3": ("down2_3.body.0", 4, [("down3_4.body.0", None), ("reduce_chan_level3", "up4_3")], ["encoder_level3"]),
    "latent": ("down3_4.body.0", 4, [("up4_3.body.0", None)], ["latent"]),
    "up4_3": ("up4_3.body.0", -4, [("reduce_chan_level3", None)], []),
    "decoder_level3": ("reduce_chan_level3", 1, [("up3_2.body.0", None)], ["decoder_level3"]),
    "up3_2": ("up3_2.body.0", -4, [("reduce_chan_level2", None)], []),
    "decoder_level2": ("reduce_chan_level2", 1, [("up2_1.body.0", None)], ["decoder_level2"]),
    "up2_1": ("up2_1.body.0", -4, [("output", None)], ["decoder_level1"]),
}


def _rows(unit: int, channels: list[int]) -> list[int]:
    """Writer-conv output rows that produce stream ``channels``: PixelUnshuffle (4) folds 4 stream channels
    into one conv channel, PixelShuffle (-4) spreads one stream channel over 4 conv channels."""
    if unit == 4:
        return sorted({c // 4 for c in channels})
    if unit == -4:
        return [4 * c + k for c in channels for k in range(4)]
    return list(channels)


def _blocks(model: nn.Module, level: str) -> list[nn.Module]:
    return list(getattr(model, level.split("@")[0]))


def _block_parts(block, idx: list[int]) -> list[tuple[torch.Tensor, list[int], int]]:
    parts = [(block.norm1.body.weight, idx, 0), (block.norm2.body.weight, idx, 0), (block.attn.qkv.weight, idx, 1),
             (block.attn.project_out.weight, idx, 0), (block.ffn.project_in.weight, idx, 1), (block.ffn.project_out.weight, idx, 0)]
    if hasattr(block.norm1.body, "bias"):
        parts += [(block.norm1.body.bias, idx, 0), (block.norm2.body.bias, idx, 0)]
    return parts


def stream_unit_importance(model: nn.Module, config: ModelConfig, stream: str, kind: str = "l2") -> list[tuple[list[int], float]]:
    """``[(stream channels of the unit, importance)]`` for one residual stream (higher = keep).

    A unit is one channel, or the 4 channels one Downsample conv channel becomes; its importance is the
    group norm (l1/l2) or Taylor score of every weight slice it owns (:func:`drsedge.compress.prune_common.group_score`).
    """
    check_kind(kind)
    w = stream_widths_of(config.dim, config.stream_widths)
    mods = dict(model.named_modules())
    writer, unit, readers, levels = _GRAPH[stream]
    size = 4 if unit == 4 else 1
    out = []
    for u in range(w[stream] // size):
        ch = list(range(u * size, (u + 1) * size))
        parts = [(mods[writer].weight, _rows(unit, ch), 0)]
        parts += [(mods[r].weight, [c + (w[off] if off else 0) for c in ch], 1) for r, off in readers]
        for lv in levels:
            off = w[lv.split("@")[1]] if "@" in lv else 0
            for b in _blocks(model, lv):
                parts += _block_parts(b, [c + off for c in ch])
        out.append((ch, group_score(parts, kind)))
    return out


def _slice_param(p: nn.Parameter, idx: list[int]) -> nn.Parameter:
    new = nn.Parameter(p.detach()[idx].clone())
    if p.grad is not None:
        new.grad = p.grad[idx].clone()
    return new


def prune_streams(model: nn.Module, config: ModelConfig, ratio: float, importance: str = "l2") -> tuple[nn.Module, ModelConfig]:
    """Remove ``int(ratio * units)`` units of every residual stream (lowest importance first).

    Returns a pruned deep copy and its config: ``stream_widths`` plus explicit per-block
    ``ffn_hidden``/``attn_inner`` (unchanged inner widths).

    Raises:
        DrsedgeError: ratio outside [0, 1), or a model with MEFC.
    """
    if not 0.0 <= ratio < 1.0:
        raise DrsedgeError(f"pruning ratio {ratio} must be in [0, 1): a ratio of 1 would leave zero channels")
    if config.mefc:
        raise DrsedgeError("residual-stream pruning needs a model without MEFC (mefc=False), as drsedge students are")
    w = stream_widths_of(config.dim, config.stream_widths)
    keep: dict[str, list[int]] = {}
    for s in _GRAPH:
        units = stream_unit_importance(model, config, s, importance)
        n_keep = len(units) - int(ratio * len(units))
        best = sorted(range(len(units)), key=lambda i: -units[i][1])[:n_keep]
        keep[s] = sorted(c for i in best for c in units[i][0])
    pruned = copy.deepcopy(model)
    if importance == "taylor":  # deepcopy drops .grad; take_conv and _slice_param carry it along for later passes
        for (_, p), (_, q) in zip(model.named_parameters(), pruned.named_parameters()):
            q.grad = p.grad
    mods = dict(pruned.named_modules())
    # each conv once: rows from the stream it writes, columns from the stream(s) it reads
    cols: dict[str, list[int]] = {}
    for s, (_, _, readers, _) in _GRAPH.items():
        for r, off in readers:
            cols.setdefault(r, []).extend(c + (w[off] if off else 0) for c in keep[s])
    rows = {writer: _rows(unit, keep[s]) for s, (writer, unit, _, _) in _GRAPH.items()}
    for name in set(rows) | set(cols):
        parent, _, attr = name.rpartition(".")
        holder = mods[parent] if parent else pruned
        conv = getattr(holder, attr)
        setattr(holder, attr, take_conv(conv, out_idx=rows.get(name), in_idx=sorted(cols[name]) if name in cols else None))
    ffn_hidden, attn_inner = dict(config.ffn_hidden), dict(config.attn_inner)
    dec1 = keep["up2_1"] + [w["up2_1"] + c for c in keep["encoder_level1"]]
    for level in ("encoder_level1", "encoder_level2", "encoder_level3", "latent", "decoder_level3", "decoder_level2", "decoder_level1"):
        idx = dec1 if level == "decoder_level1" else keep[level]
        for i, b in enumerate(getattr(pruned, level)):
            ffn_hidden[f"{level}.{i}"] = b.ffn.dwconv3x3_1.out_channels
            attn_inner[f"{level}.{i}"] = b.attn.project_out.in_channels
            for norm in (b.norm1.body, b.norm2.body):
                norm.weight = _slice_param(norm.weight, idx)
                if hasattr(norm, "bias"):
                    norm.bias = _slice_param(norm.bias, idx)
            b.attn.qkv = take_conv(b.attn.qkv, in_idx=idx)
            b.attn.project_out = take_conv(b.attn.project_out, out_idx=idx)
            b.ffn.project_in = take_conv(b.ffn.project_in, in_idx=idx)
            b.ffn.project_out = take_conv(b.ffn.project_out, out_idx=idx)
    widths = {s: len(keep[s]) for s in _GRAPH}
    cfg = ModelConfig.from_dict({**config.to_dict(), "stream_widths": widths, "ffn_hidden": ffn_hidden, "attn_inner": attn_inner},
                                "pruned config")
    return pruned.eval(), cfg
