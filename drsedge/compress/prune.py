"""Structural pruning of DRSformer-family models: MSFN hidden width and channels per attention head.

Why not Torch-Pruning's DependencyGraph here: checked with torch-pruning 1.6.1 on this
model, ``get_all_groups()`` does not terminate on a DRSformer ``TransformerBlock``. The cause is
not top-k itself but ``weights[1:]``, the slice of the four top-k mixing weights, which its
dependency graph reads as a channel offset (slice ops are index mappings to it). On the MSFN alone its groups break the
model: the cross-scale grouped convs (``dwconv3x3_1``/``dwconv5x5_1``, groups = hidden,
two inputs each) read channel pairs of ``cat(dw3[:h], dw5[:h])``, so removing one
``project_in`` channel must remove a *pair* of groups, which its grouping rules do not
express ("expected input to have 64 channels, but got 62").

The MSFN coupling, with h = hidden width and ``project_in`` giving 2h channels
(halves A = [0, h), B = [h, 2h)), h even:

* unit ``u`` of half A = ``project_in`` channels {2u, 2u+1} (and the same depthwise
  channels of ``dwconv3x3``/``dwconv5x5``) -> groups {u, h/2 + u} of ``dwconv3x3_1``
  -> ``project_out`` input channels {u, h/2 + u};
* unit ``v`` of half B = channels {h + 2v, h + 2v + 1} -> groups {v, h/2 + v} of
  ``dwconv5x5_1`` -> ``project_out`` inputs {h + v, h + h/2 + v}.

Pruning k units from each half gives a valid MSFN of width h - 2k that computes
exactly the sub-network of the kept units. Importance per unit (``group`` of all
weights it owns, DepGraph's group-norm idea): ``l1``/``l2`` magnitude, or ``taylor``
(|w * dL/dw| summed, L = L1 to a reference output on a calibration batch).
Attention, two units: the same channels removed from every head (q, k and v together), so
heads stay equal and the top-k sizes follow the new C (:func:`prune_attention`, scope
``attention``); or whole heads (q, k, v rows, their ``temperature`` entry and the
``project_out`` columns of the head; :func:`prune_heads`, scope ``heads``), which keeps C and
the top-k sizes and changes the block's head count (``attn_heads`` in the config).

Size: ~310 lines: the MSFN, per-head and whole-head scopes; shared importance/slicing is in :mod:`.prune_common`,
residual streams in :mod:`.prune_streams`, the iterative loop in :mod:`.prune_driver`.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from drsedge.choices import DRSFORMER_PRUNE_SCOPES
from drsedge.errors import DrsedgeError
from drsedge.models.config import ModelConfig
from drsedge.models.drsformer import FeedForward

from .prune_common import check_kind, group_score, take_conv


def _unit_slices(ffn: FeedForward):
    """For each half, a list over units of (param name, index tensor, dim) triples."""
    h = ffn.dwconv3x3_1.out_channels
    half = h // 2
    out = {"A": [], "B": []}
    for u in range(half):
        a = [2 * u, 2 * u + 1]
        out["A"].append([("project_in", a, 0), ("dwconv3x3", a, 0), ("dwconv5x5", a, 0), ("dwconv3x3_1", [u, half + u], 0),
                         ("project_out", [u, half + u], 1)])
        b = [h + 2 * u, h + 2 * u + 1]
        out["B"].append([("project_in", b, 0), ("dwconv3x3", b, 0), ("dwconv5x5", b, 0), ("dwconv5x5_1", [u, half + u], 0),
                         ("project_out", [h + u, h + half + u], 1)])
    return out


def unit_importance(ffn: FeedForward, kind: str = "l2") -> dict[str, torch.Tensor]:
    """``{"A": [h/2], "B": [h/2]}`` importance of every prunable unit (higher = keep).

    ``taylor`` needs ``.grad`` on the FFN weights (run a backward pass first).

    Raises:
        DrsedgeError: unknown kind, or taylor without gradients.
    """
    check_kind(kind)
    return {
        half: torch.tensor([group_score([(getattr(ffn, n).weight, idx, dim) for n, idx, dim in unit], kind) for unit in units])
        for half, units in _unit_slices(ffn).items()
    }


def prune_ffn(ffn: FeedForward, keep_a: list[int], keep_b: list[int]) -> None:
    """Keep units ``keep_a`` / ``keep_b`` (equal counts, ascending) of an MSFN, in place."""
    if len(keep_a) != len(keep_b) or not keep_a:
        raise DrsedgeError("both MSFN halves must keep the same, non-zero number of units")
    h = ffn.dwconv3x3_1.out_channels
    half = h // 2
    keep_a, keep_b = sorted(keep_a), sorted(keep_b)
    ch = [c for u in keep_a for c in (2 * u, 2 * u + 1)] + [h + c for u in keep_b for c in (2 * u, 2 * u + 1)]
    g_a = keep_a + [half + u for u in keep_a]
    g_b = keep_b + [half + u for u in keep_b]
    new_h = 2 * len(keep_a)
    ffn.project_in = take_conv(ffn.project_in, out_idx=ch)
    ffn.dwconv3x3 = take_conv(ffn.dwconv3x3, out_idx=ch, groups=2 * new_h)
    ffn.dwconv5x5 = take_conv(ffn.dwconv5x5, out_idx=ch, groups=2 * new_h)
    ffn.dwconv3x3_1 = take_conv(ffn.dwconv3x3_1, out_idx=g_a, groups=new_h)
    ffn.dwconv5x5_1 = take_conv(ffn.dwconv5x5_1, out_idx=g_b, groups=new_h)
    ffn.project_out = take_conv(ffn.project_out, in_idx=g_a + [h + g for g in g_b])


def ffn_blocks(model: nn.Module) -> dict[str, FeedForward]:
    """``{"encoder_level1.0": ffn, ...}`` for every transformer block of a DRSformer-family model."""
    return {name[: -len(".ffn")]: m for name, m in model.named_modules() if isinstance(m, FeedForward) and name.endswith(".ffn")}


def prune_msfn(model: nn.Module, config: ModelConfig, ratio: float, importance: str = "l2") -> tuple[nn.Module, ModelConfig]:
    """Remove ``ratio`` of the MSFN hidden units of every block (lowest importance first).

    Returns a pruned deep copy and its config (per-block widths in ``ffn_hidden``), so the
    result saves as plain safetensors and reloads without pickles.

    Raises:
        DrsedgeError: ratio outside [0, 1), a block whose width is odd (its MSFN channel
            pairs cannot be split, see module docstring) or that would keep zero units.
    """
    if not 0.0 <= ratio < 1.0:
        raise DrsedgeError(f"pruning ratio {ratio} must be in [0, 1): a ratio of 1 would leave zero channels")
    if importance == "taylor" and not any(p.grad is not None for p in model.parameters()):
        raise DrsedgeError("taylor importance needs gradients: run a backward pass on calibration data first")
    pruned = copy.deepcopy(model)
    widths = dict(config.ffn_hidden)
    src = ffn_blocks(model)
    for name, ffn in ffn_blocks(pruned).items():
        h = ffn.dwconv3x3_1.out_channels
        if h % 2:
            raise DrsedgeError(f"{name}: MSFN hidden width {h} is odd; pruning needs even widths (use an even dim * ffn_expansion_factor)")
        units = h // 2
        keep = units - int(round(ratio * units))
        if keep < 1:
            raise DrsedgeError(f"{name}: ratio {ratio} leaves zero MSFN channels (width {h}); lower it")
        if importance == "taylor":  # gradients live on the source model's parameters
            for attr in ("project_in", "dwconv3x3", "dwconv5x5", "dwconv3x3_1", "dwconv5x5_1", "project_out"):
                getattr(ffn, attr).weight.grad = getattr(src[name], attr).weight.grad
        scores = unit_importance(ffn, importance)
        keep_a = torch.topk(scores["A"], keep).indices.tolist()
        keep_b = torch.topk(scores["B"], keep).indices.tolist()
        prune_ffn(ffn, keep_a, keep_b)
        widths[name] = 2 * keep
    cfg = ModelConfig.from_dict({**config.to_dict(), "ffn_hidden": widths}, "pruned config")
    return pruned.eval(), cfg


def taylor_gradients(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> None:
    """Populate ``.grad`` with d L1(model(x), target) / dw for Taylor importance (``x``, ``target`` ``[B, 3, H, W]``)."""
    model.zero_grad(set_to_none=True)
    model.train()
    torch.nn.functional.l1_loss(model(x), target).backward()
    model.eval()


def ratio_for_macs(model: nn.Module, config: ModelConfig, target_macs: int, hw: tuple[int, int] = (256, 256), scopes=("msfn",),
                   probe=None) -> float:
    """Smallest uniform ratio whose pruned model needs <= ``target_macs`` MACs at ``hw`` (bisection, 12 steps) below
    the largest ratio every scope can take (found to 1/64 of a ladder step: a narrow MSFN runs out of channels first).

    Raises:
        DrsedgeError: the target is below what pruning every MSFN to 2 channels reaches.
    """
    from drsedge.models.info import model_info

    if "depth" in scopes and not isinstance(probe, dict):  # the block ranking does not depend on the ratio: once
        from .prune_depth import block_importance

        probe = block_importance(model, probe, "l2")

    seen: dict[float, int] = {}

    def macs(r: float) -> int:
        if r not in seen:
            seen[r] = model_info(prune_model(model, config, r, "l2", scopes, probe)[0], *hw).macs
        return seen[r]

    lo, refused = 0.0, None
    for hi in (0.99, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5) if "attention" not in scopes else (0.5,):
        try:  # the largest ratio every scope can take (a narrow MSFN runs out of channel pairs before 0.99)
            macs(hi)
            break
        except DrsedgeError:
            refused = hi
    if refused is not None:  # the ladder's step is coarse: bisect between the last refused and the first taken ratio
        bad = refused
        for _ in range(6):
            mid = (hi + bad) / 2
            try:
                macs(mid)
                hi = mid
            except DrsedgeError:
                bad = mid
    if macs(hi) > target_macs:
        raise DrsedgeError(f"target {target_macs / 1e9:.3f} GMACs at {hw[0]}x{hw[1]} is out of reach by pruning "
                           f"{'+'.join(scopes)} (min {macs(hi) / 1e9:.3f})")
    if macs(lo) <= target_macs:
        return 0.0
    for _ in range(12):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if macs(mid) <= target_macs else (mid, hi)
    return hi


def attention_blocks(model: nn.Module) -> dict:
    """``{"encoder_level1.0": attn, ...}`` for every channel-attention module of a DRSformer-family model."""
    from drsedge.models.drsformer import Attention

    return {name[: -len(".attn")]: m for name, m in model.named_modules() if isinstance(m, Attention) and name.endswith(".attn")}


def _attn_unit_rows(inner: int, heads: int, j: int) -> tuple[list[int], list[int]]:
    """Rows of qkv / qkv_dwconv and columns of project_out owned by channel ``j`` of every head."""
    c = inner // heads
    cols = [h * c + j for h in range(heads)]
    return [p * inner + col for p in range(3) for col in cols], cols


def _keep_attention_columns(attn, cols: list[int]) -> None:
    """Keep q/k/v width columns ``cols`` (ascending) of a channel-attention block, in place."""
    inner = attn.project_out.in_channels
    rows = [p * inner + col for p in range(3) for col in cols]
    attn.qkv = take_conv(attn.qkv, out_idx=rows)
    attn.qkv_dwconv = take_conv(attn.qkv_dwconv, out_idx=rows, groups=len(rows))
    attn.project_out = take_conv(attn.project_out, in_idx=cols)


def attention_importance(attn, kind: str = "l2") -> torch.Tensor:
    """``[C]`` importance of channel j (in every head at once) of a channel-attention block (higher = keep)."""
    check_kind(kind)
    inner = attn.project_out.in_channels
    out = []
    for j in range(inner // attn.num_heads):
        rows, cols = _attn_unit_rows(inner, attn.num_heads, j)
        out.append(group_score([(attn.qkv.weight, rows, 0), (attn.qkv_dwconv.weight, rows, 0), (attn.project_out.weight, cols, 1)], kind))
    return torch.tensor(out)


def prune_attention(model: nn.Module, config: ModelConfig, ratio: float, importance: str = "l2") -> tuple[nn.Module, ModelConfig]:
    """Remove ``ratio`` of the channels per head of every channel-attention block (the same channels in each head).

    q, k and v lose channel j together, so each head's C x C score matrix shrinks to C' x C' and the
    top-k sizes follow C' (``topk_sizes(C')``, as the model computes them from the score shape).
    Returns a pruned deep copy and its config (per-block widths in ``attn_inner``).

    Raises:
        DrsedgeError: ratio outside [0, 1) or one that leaves fewer than 2 channels per head.
    """
    if not 0.0 <= ratio < 1.0:
        raise DrsedgeError(f"pruning ratio {ratio} must be in [0, 1): a ratio of 1 would leave zero channels")
    pruned = copy.deepcopy(model)
    src = attention_blocks(model)
    widths = dict(config.attn_inner)
    for name, attn in attention_blocks(pruned).items():
        inner, heads = attn.project_out.in_channels, attn.num_heads
        c = inner // heads
        keep = c - int(round(ratio * c))
        if keep < 2:
            raise DrsedgeError(f"{name}: ratio {ratio} leaves {keep} channel(s) per head (C={c}); top-k attention needs >= 2")
        if keep == c:
            continue
        if importance == "taylor":
            for attr in ("qkv", "qkv_dwconv", "project_out"):
                getattr(attn, attr).weight.grad = getattr(src[name], attr).weight.grad
        kept = sorted(torch.topk(attention_importance(attn, importance), keep).indices.tolist())
        _keep_attention_columns(attn, [h * c + j for h in range(heads) for j in kept])
        widths[name] = heads * keep
    cfg = ModelConfig.from_dict({**config.to_dict(), "attn_inner": widths}, "pruned config")
    return pruned.eval(), cfg


def head_importance(attn, kind: str = "l2") -> torch.Tensor:
    """``[heads]`` importance of each whole head of a channel-attention block (higher = keep)."""
    check_kind(kind)
    inner, heads = attn.project_out.in_channels, attn.num_heads
    c = inner // heads
    out = []
    for h in range(heads):
        cols = list(range(h * c, (h + 1) * c))
        rows = [p * inner + col for p in range(3) for col in cols]
        out.append(group_score([(attn.qkv.weight, rows, 0), (attn.qkv_dwconv.weight, rows, 0), (attn.project_out.weight, cols, 1)], kind))
    return torch.tensor(out)


def prune_heads(model: nn.Module, config: ModelConfig, ratio: float, importance: str = "l2") -> tuple[nn.Module, ModelConfig]:
    """Remove ``int(ratio * heads)`` whole heads of every channel-attention block (lowest importance first).

    Each head keeps its C channels, so its C x C scores and top-k sizes are unchanged; a block
    keeps at least one head (single-head blocks, e.g. level 1, are left as they are). Returns a
    pruned deep copy and its config (per-block head counts in ``attn_heads``, widths in ``attn_inner``).

    Raises:
        DrsedgeError: ratio outside [0, 1).
    """
    if not 0.0 <= ratio < 1.0:
        raise DrsedgeError(f"pruning ratio {ratio} must be in [0, 1): a ratio of 1 would leave zero heads")
    pruned = copy.deepcopy(model)
    src = attention_blocks(model)
    widths, counts = dict(config.attn_inner), dict(config.attn_heads)
    for name, attn in attention_blocks(pruned).items():
        inner, heads = attn.project_out.in_channels, attn.num_heads
        keep = heads - int(ratio * heads)
        if importance == "taylor":  # deepcopy drops .grad; every block keeps it for a following taylor pass
            for attr in ("qkv", "qkv_dwconv", "project_out"):
                getattr(attn, attr).weight.grad = getattr(src[name], attr).weight.grad
        if keep == heads:
            continue
        kept = sorted(torch.topk(head_importance(attn, importance), keep).indices.tolist())
        c = inner // heads
        cols = [h * c + j for h in kept for j in range(c)]
        _keep_attention_columns(attn, cols)
        attn.temperature = nn.Parameter(attn.temperature.detach()[kept].clone())
        attn.num_heads = keep
        widths[name], counts[name] = keep * c, keep
    cfg = ModelConfig.from_dict({**config.to_dict(), "attn_inner": widths, "attn_heads": counts}, "pruned config")
    return pruned.eval(), cfg


SCOPES = DRSFORMER_PRUNE_SCOPES


def _carry_grads(src: nn.Module, dst: nn.Module) -> None:
    """Copy ``.grad`` of same-named, same-shaped parameters (deepcopy drops it)."""
    grads = {n: p.grad for n, p in src.named_parameters() if p.grad is not None}
    for n, p in dst.named_parameters():
        if p.grad is None and n in grads and grads[n].shape == p.shape:
            p.grad = grads[n]


def prune_model(
    model: nn.Module, config: ModelConfig, ratio: float, importance: str = "l2", scopes=SCOPES, probe=None,
) -> tuple[nn.Module, ModelConfig]:
    """Prune the chosen ``scopes`` by ``ratio`` each: whole blocks (``"depth"``, first:
    :func:`drsedge.compress.prune_depth.prune_depth`, ranked by the output change on ``probe`` ``[B, 3, H, W]`` when
    given), ``"msfn"`` hidden units, ``"attention"`` channels per head, whole ``"heads"``, residual ``"streams"``
    (:func:`drsedge.compress.prune_streams.prune_streams`)."""
    unknown = set(scopes) - set(SCOPES)
    if unknown or not scopes:
        raise DrsedgeError(f"pruning scope must be some of {SCOPES}, got {sorted(scopes)}")
    if "depth" in scopes:
        from .prune_depth import prune_depth

        model, config = prune_depth(model, config, ratio, importance, probe)
    if "streams" in scopes:  # first: it needs gradients on every weight for taylor, and carries them along
        from .prune_streams import prune_streams

        model, config = prune_streams(model, config, ratio, importance)
    if "msfn" in scopes:
        model_new, config = prune_msfn(model, config, ratio, importance)
        _carry_grads(model, model_new)  # for a following taylor attention/heads pass
        model = model_new
    if "heads" in scopes:
        model, config = prune_heads(model, config, ratio, importance)
    if "attention" in scopes:
        model, config = prune_attention(model, config, ratio, importance)
    return model, config
