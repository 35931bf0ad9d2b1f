"""Structural re-parameterization of DRSformer-family blocks for export: the same function from fewer, larger ops.

Training keeps upstream's modules (checkpoints load with ``strict=True``); :func:`reparameterize` returns a *deploy
copy* whose graph a runtime can run without the channel slicing and concatenation that upstream's Python expresses,
in the spirit of RepVGG (Ding et al., CVPR 2021, Sec. 3.3), ACNet (ICCV 2019) and MobileOne (CVPR 2023): branches
that are linear in the same input are merged into one convolution with zero-padded kernels, and a concatenation is
turned into a no-op by choosing the channel order of the convolution that feeds it.

* **MSFN** (:class:`MSFNDeploy`, paper Sec. 3.3). Upstream: ``project_in`` (1x1, dim -> 2h), a 3x3 and a 5x5 depthwise
  conv on the same 2h maps, two ``chunk`` + ``cat`` exchanges, two grouped convs (3x3 and 5x5, 2 inputs per group),
  ``cat``, ``project_out``. Deploy form: ``project_in`` emits 4h channels in the order the exchange wants
  (rows ``[0:h], [0:h], [h:2h], [h:2h]`` of the original weight), **one** 5x5 depthwise conv (the 3x3 kernels
  zero-padded to 5x5) whose output *is* ``cat(x1, x2)``, and **one** 5x5 grouped conv (groups 2h, 2 inputs each)
  whose output *is* the final ``cat``. No Slice, no Concat. Cost: the 1x1 ``project_in`` computes 2h more channels
  and the 3x3 kernels run as 5x5 (measured in ``benchmarks/bench_export.py``).
* **LayerNorm affine** (:class:`ChannelNormDeploy`): each block's ``norm1``/``norm2`` feeds only 1x1 convs
  (q/k/v, MSFN ``project_in``), so ``y = n * g + beta`` followed by ``W y + b`` is ``(W g) n + (W beta + b)``: the
  scale and shift move into those convs' weights and bias (two full-resolution elementwise passes fewer per norm).
* **TKSA q/k/v** (:class:`QKVDeploy`). Upstream: one 1x1 conv to 3·inner and one depthwise 3x3, then ``chunk(3)``.
  Deploy form: three 1x1 + depthwise pairs, one per q, k, v (weights are row blocks of the originals), so no Slice
  copies three full-resolution maps.

Every rewrite is exact arithmetic up to FP32 summation order (tested <= 1e-5 against the module), works for any
pruned width (h, inner, heads), and leaves parameter-free state (temperature, attn1..4, top-k form) untouched.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from . import fp16_safe
from .drsformer import Attention, BiasFree_LayerNorm, FeedForward, TransformerBlock


def _pad_to5(w: torch.Tensor) -> torch.Tensor:
    """``[O, I, 3, 3]`` -> ``[O, I, 5, 5]`` with a zero border (a 3x3 conv with padding 1 == this with padding 2)."""
    return F.pad(w, (1, 1, 1, 1)) if w.shape[-1] == 3 else w


def _bias(conv: nn.Conv2d) -> torch.Tensor | None:
    return None if conv.bias is None else conv.bias.detach()


def _conv(weight: torch.Tensor, bias: torch.Tensor | None, groups: int, padding: int) -> nn.Conv2d:
    o, i, kh, kw = weight.shape
    c = nn.Conv2d(i * groups, o, (kh, kw), padding=padding, groups=groups, bias=bias is not None)
    c.weight.data.copy_(weight)
    if bias is not None:
        c.bias.data.copy_(bias)
    return c


class MSFNDeploy(nn.Module):
    """MSFN in deploy form: ``[B, dim, H, W] -> [B, dim, H, W]``, equal to :class:`FeedForward` to FP32 rounding.

    Two branches ``a``/``b``, each ``project_in`` (1x1, dim -> 2h) -> ReLU(depthwise 5x5) -> depthwise 5x5; their sum
    -> ReLU -> ``project_out`` (1x1, 2h -> dim). Upstream's second stage is a grouped conv with two inputs per group
    (``dwconv3x3_1``/``dwconv5x5_1``); here group g's first input lives in branch ``a`` channel g and its second in
    branch ``b`` channel g, so the grouped conv becomes two depthwise convs and one Add (see the module docstring).
    """

    def __init__(self, ffn: FeedForward):
        super().__init__()
        h = ffn.dwconv3x3_1.out_channels
        # Upstream's exchange: Y = cat(x1, x2) = [A3 P[0:h], A5 P[0:h], A3 P[h:2h], A5 P[h:2h]] (4h maps), where
        # P = project_in(x), A3/A5 the 3x3/5x5 depthwise convs; stage-2 group g reads Y[2g] and Y[2g+1].
        idx = torch.arange(4 * h)
        block, c = idx // h, idx % h
        src = c + h * (block >= 2).long()  # project_in channel behind Y[i]
        five = (block % 2 == 1)  # Y[i] came from the 5x5 branch
        w_in, b_in = ffn.project_in.weight.detach(), _bias(ffn.project_in)
        k3, k5 = _pad_to5(ffn.dwconv3x3.weight.detach()), ffn.dwconv5x5.weight.detach()
        b3, b5 = _bias(ffn.dwconv3x3), _bias(ffn.dwconv5x5)
        g = torch.cat([_pad_to5(ffn.dwconv3x3_1.weight.detach()), ffn.dwconv5x5_1.weight.detach()])  # [2h, 2, 5, 5]
        gb3, gb5 = _bias(ffn.dwconv3x3_1), _bias(ffn.dwconv5x5_1)
        gb = None if gb3 is None else torch.cat([gb3, gb5])
        branches = []
        for j in (0, 1):  # branch a: Y[even] (stage-2 input 0 of each group), branch b: Y[odd] (input 1)
            s, f = src[j::2], five[j::2]
            dw = torch.where(f[:, None, None, None], k5[s], k3[s])
            dwb = None if b3 is None else torch.where(f, b5[s], b3[s])
            branches.append(nn.Sequential(
                _conv(w_in[s], None if b_in is None else b_in[s], 1, 0),
                _conv(dw, dwb, 2 * h, 2),
                nn.ReLU(),
                _conv(g[:, j : j + 1], gb if (j == 0 and gb is not None) else None, 2 * h, 2),
            ))
        self.branch_a, self.branch_b = branches
        self.project_out = copy.deepcopy(ffn.project_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project_out(torch.relu(self.branch_a(x) + self.branch_b(x)))


class QKVDeploy(nn.Module):
    """TKSA's q/k/v projection without ``chunk``: ``[B, dim, H, W]`` -> three ``[B, inner, H, W]`` maps.

    Each branch is a 1x1 conv (rows ``[j*inner:(j+1)*inner]`` of ``qkv``) and a depthwise 3x3 (the matching
    channels of ``qkv_dwconv``), so ``q, k, v`` equal upstream's ``qkv_dwconv(qkv(x)).chunk(3, 1)``.
    """

    def __init__(self, attn: Attention):
        super().__init__()
        inner = attn.qkv.out_channels // 3
        w, b = attn.qkv.weight.detach(), _bias(attn.qkv)
        dw, dwb = attn.qkv_dwconv.weight.detach(), _bias(attn.qkv_dwconv)
        self.branches = nn.ModuleList()
        for j in range(3):
            s = slice(j * inner, (j + 1) * inner)
            self.branches.append(nn.Sequential(
                _conv(w[s], None if b is None else b[s], 1, 0),
                _conv(dw[s], None if dwb is None else dwb[s], inner, 1),
            ))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v = (br(x) for br in self.branches)
        return q, k, v


class ChannelNormDeploy(nn.Module):
    """LayerNorm over channels without its affine (folded into the next convs): ``[B, C, H, W]`` -> same.

    ``centred=True`` (upstream ``WithBias``): ``(x - mean) / sqrt(var + 1e-5)``; False (``BiasFree``):
    ``x / sqrt(var + 1e-5)``. ``fp16_safe`` switches to the bounded form of :mod:`drsedge.models.fp16_safe`.
    """

    def __init__(self, centred: bool, fp16_safe: bool = False):
        super().__init__()
        self.centred = centred
        self.fp16_safe = fp16_safe

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fp16_safe:
            return fp16_safe.layer_norm_with_bias(x, None, None) if self.centred else fp16_safe.layer_norm_bias_free(x, None)
        if not self.centred:
            return x / torch.sqrt(x.var(1, keepdim=True, unbiased=False) + 1e-5)
        xc = x - x.mean(1, keepdim=True)
        return xc / torch.sqrt(xc.square().mean(1, keepdim=True) + 1e-5)


def _fold_affine(norm: nn.Module, consumers: list[nn.Conv2d]) -> ChannelNormDeploy:
    """Move ``norm``'s weight (and bias) into the 1x1 ``consumers``; return the affine-free norm."""
    g = norm.weight.detach()
    beta = getattr(norm, "bias", None)
    for conv in consumers:
        w = conv.weight.detach()  # [O, C, 1, 1]
        shift = None if beta is None else (w[:, :, 0, 0] @ beta.detach())
        conv.weight.data.copy_(w * g[None, :, None, None])
        if shift is not None:
            if conv.bias is None:
                conv.bias = nn.Parameter(shift.clone())
            else:
                conv.bias.data.add_(shift)
    return ChannelNormDeploy(centred=not isinstance(norm, BiasFree_LayerNorm), fp16_safe=norm.fp16_safe)


def reparameterize(model: nn.Module) -> nn.Module:
    """A deploy copy of a DRSformer-family ``model`` (eval mode): every MSFN as :class:`MSFNDeploy`, every TKSA q/k/v
    as :class:`QKVDeploy`, every block's LayerNorm affine folded into those convs. ``model`` itself is not changed. Models without these blocks are returned as a copy.

    The copy is for inference/export only: its state_dict keys differ from upstream's (do not save it as a
    checkpoint; re-parameterize again after any fine-tuning).
    """
    deploy = copy.deepcopy(model).eval()
    with torch.no_grad():
        for name, m in list(deploy.named_modules()):
            if isinstance(m, FeedForward):
                parent, _, attr = name.rpartition(".")
                setattr(deploy.get_submodule(parent) if parent else deploy, attr, MSFNDeploy(m))
            elif isinstance(m, Attention):
                m.qkv_split = QKVDeploy(m)
                del m.qkv, m.qkv_dwconv
        for m in deploy.modules():
            if isinstance(m, TransformerBlock) and isinstance(m.ffn, MSFNDeploy) and m.attn.qkv_split is not None:
                m.norm1.body = _fold_affine(m.norm1.body, [br[0] for br in m.attn.qkv_split.branches])
                m.norm2.body = _fold_affine(m.norm2.body, [m.ffn.branch_a[0], m.ffn.branch_b[0]])
    return deploy
