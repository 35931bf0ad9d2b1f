"""DRSformer (Chen et al., CVPR 2023), written without einops.

Module names and parameter shapes are identical to upstream
``basicsr/models/archs/DRSformer_arch.py`` (``mefc=True``) and
``DRSformer_arch_200L+SPA.py`` (``mefc=False``: no ``encoder_level0`` /
``refinement``), so official checkpoints load with ``strict=True``.

Extra constructor switches make the same class the student family:
``attention`` picks TKSA (``"topk"``), AST's ASSA (``"assa"``) or plain softmax
(``"dense"``); ``topk_mode`` picks the top-k mask form (see
:mod:`drsedge.models.attention`).

Size: ~370 lines on purpose: the upstream architecture in one file, module names kept where checkpoints depend on them
(``strict=True`` loading of official weights).
"""

from __future__ import annotations

import torch
from torch import nn

from drsedge.choices import ATTENTION_EXPORTS

from . import fp16_safe
from .attention import assa_probs, topk_sizes, topk_sparse_probs
from .mefc import subnet

ATTENTION_KINDS = ("topk", "assa", "dense")
TOPK_MODES = ("auto", "index", "threshold")


class WithBias_LayerNorm(nn.Module):
    """LayerNorm over channels of a ``[B, C, H, W]`` map, with weight and bias (eps 1e-5).

    Upstream reshapes to ``[B, H*W, C]`` and normalises the last axis; this
    normalises axis 1 directly, which is the same arithmetic without the two
    transposes (exports as ReduceMean over axis 1).
    """

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.fp16_safe = False  # see drsedge.models.fp16_safe / set_fp16_safe

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fp16_safe:
            return fp16_safe.layer_norm_with_bias(x, self.weight, self.bias)
        mu = x.mean(1, keepdim=True)
        xc = x - mu
        var = xc.square().mean(1, keepdim=True)
        return xc / torch.sqrt(var + 1e-5) * self.weight[:, None, None] + self.bias[:, None, None]


class BiasFree_LayerNorm(nn.Module):
    """Bias-free LayerNorm over channels: ``x / sqrt(var + 1e-5) * weight`` (mean not removed, as upstream)."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.fp16_safe = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fp16_safe:
            return fp16_safe.layer_norm_bias_free(x, self.weight)
        var = x.var(1, keepdim=True, unbiased=False)
        return x / torch.sqrt(var + 1e-5) * self.weight[:, None, None]


class LayerNorm(nn.Module):
    """Upstream wrapper (keeps the ``.body`` key level)."""

    def __init__(self, dim: int, LayerNorm_type: str):
        super().__init__()
        self.body = BiasFree_LayerNorm(dim) if LayerNorm_type == "BiasFree" else WithBias_LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class FeedForward(nn.Module):
    """MSFN, mixed-scale feed-forward network (paper Sec. 3.3): ``[B, dim, H, W] -> [B, dim, H, W]``.

    ``hidden = int(dim * ffn_expansion_factor)``; parallel 3x3 / 5x5 depthwise
    branches with a cross-scale exchange, then a 1x1 projection.
    """

    def __init__(self, dim: int, ffn_expansion_factor: float, bias: bool, hidden: int | None = None):
        super().__init__()
        hidden = int(dim * ffn_expansion_factor) if hidden is None else hidden  # explicit width: pruned models
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=bias)
        self.dwconv3x3 = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=bias)
        self.dwconv5x5 = nn.Conv2d(hidden * 2, hidden * 2, 5, padding=2, groups=hidden * 2, bias=bias)
        self.relu3 = nn.ReLU()
        self.relu5 = nn.ReLU()
        self.dwconv3x3_1 = nn.Conv2d(hidden * 2, hidden, 3, padding=1, groups=hidden, bias=bias)
        self.dwconv5x5_1 = nn.Conv2d(hidden * 2, hidden, 5, padding=2, groups=hidden, bias=bias)
        self.relu3_1 = nn.ReLU()
        self.relu5_1 = nn.ReLU()
        self.project_out = nn.Conv2d(hidden * 2, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.project_in(x)
        x1_3, x2_3 = self.relu3(self.dwconv3x3(x)).chunk(2, dim=1)
        x1_5, x2_5 = self.relu5(self.dwconv5x5(x)).chunk(2, dim=1)
        x1 = self.relu3_1(self.dwconv3x3_1(torch.cat([x1_3, x1_5], dim=1)))
        x2 = self.relu5_1(self.dwconv5x5_1(torch.cat([x2_3, x2_5], dim=1)))
        return self.project_out(torch.cat([x1, x2], dim=1))


class Attention(nn.Module):
    """Channel-wise multi-head attention: TKSA (paper Sec. 3.2), ASSA or dense.

    ``[B, dim, H, W] -> [B, dim, H, W]``. Scores are ``C x C`` per head with
    ``C = dim / num_heads``. Parameters ``attn1..attn4`` exist for every kind so
    that state_dicts stay interchangeable; ASSA adds ``assa_weights`` ``[2]``.
    """

    def __init__(self, dim: int, num_heads: int, bias: bool, kind: str = "topk", topk_mode: str = "auto", inner: int | None = None):
        super().__init__()
        if kind not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {kind!r}")
        inner = dim if inner is None else inner  # q/k/v width; < dim in pruned models (fewer channels per head)
        if inner % num_heads:
            raise ValueError(f"attention width {inner} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.kind = kind
        self.topk_mode = topk_mode
        self.attention_impl = "native"  # "fused" routes top-k through the custom op (drsedge.export.fused_op)
        self.fp16_safe = False  # q/k normalisation in the bounded form of drsedge.models.fp16_safe
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, inner * 3, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(inner * 3, inner * 3, 3, padding=1, groups=inner * 3, bias=bias)
        self.project_out = nn.Conv2d(inner, dim, 1, bias=bias)
        self.qkv_split = None  # deploy form (drsedge.models.reparam.QKVDeploy): q, k, v without chunk; no parameters here
        self.attn_drop = nn.Dropout(0.0)
        self.attn1 = nn.Parameter(torch.tensor([0.2]))
        self.attn2 = nn.Parameter(torch.tensor([0.2]))
        self.attn3 = nn.Parameter(torch.tensor([0.2]))
        self.attn4 = nn.Parameter(torch.tensor([0.2]))
        if kind == "assa":
            self.assa_weights = nn.Parameter(torch.ones(2))

    def probs(self, scores: torch.Tensor) -> torch.Tensor:
        """``[B, heads, C, C]`` logits -> combined attention matrix of the same shape."""
        if self.kind == "dense":
            return scores.softmax(dim=-1)
        if self.kind == "assa":
            return assa_probs(scores, self.assa_weights)
        weights = torch.cat([self.attn1, self.attn2, self.attn3, self.attn4])
        ks = topk_sizes(scores.shape[-1])
        if self.attention_impl == "fused":
            from drsedge.ops.topk_sparse_softmax.op import topk_sparse_softmax  # local: registers the custom op lazily

            return topk_sparse_softmax(scores, weights, ks)
        mode = self.topk_mode
        if mode == "auto":
            mode = "index" if self.training else "threshold"
        return topk_sparse_probs(scores, weights, ks, mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q_map, k, v = self.qkv_split(x) if self.qkv_split is not None else self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        c = q_map.shape[1]
        ch = c // self.num_heads
        # [B, c, H, W] -> [B, heads, ch, H*W] with -1 and back with reshape_as: the ONNX graph computes no shapes per block
        if self.fp16_safe:  # normalise over (H, W) of a 5-D view: no factor larger than an image side
            q = fp16_safe.l2_normalize(q_map.reshape(b, self.num_heads, ch, h, w), (-2, -1)).reshape(b, self.num_heads, ch, -1)
            k = fp16_safe.l2_normalize(k.reshape(b, self.num_heads, ch, h, w), (-2, -1)).reshape(b, self.num_heads, ch, -1)
        else:
            q = _l2_normalize(q_map.reshape(b, self.num_heads, ch, -1))
            k = _l2_normalize(k.reshape(b, self.num_heads, ch, -1))
        v = v.reshape(b, self.num_heads, ch, -1)
        if torch.is_autocast_enabled(x.device.type):  # bf16/fp16 training: scores, top-k and softmax stay FP32 (exact ties)
            with torch.autocast(x.device.type, enabled=False):
                p = self.probs((q.float() @ k.float().transpose(-2, -1)) * self.temperature)
            out = p.to(v.dtype) @ v
        else:
            scores = (q @ k.transpose(-2, -1)) * self.temperature
            out = self.probs(scores) @ v
        return self.project_out(out.reshape_as(q_map))


def _l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """``F.normalize(x, dim=-1)`` (eps 1e-12), same values, written so the ONNX graph has no ``Expand``:
    ReduceL2 -> Clip -> Div (broadcast)."""
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(1e-12)


class TransformerBlock(nn.Module):
    """Sparse Transformer Block (STB): ``x + attn(norm1(x))`` then ``x + ffn(norm2(x))``."""

    def __init__(self, dim, num_heads, ffn_expansion_factor, bias, LayerNorm_type, attention="topk", topk_mode="auto",
                 ffn_hidden=None, attn_inner=None):
        super().__init__()
        self.norm1 = LayerNorm(dim, LayerNorm_type)
        self.attn = Attention(dim, num_heads, bias, attention, topk_mode, attn_inner)
        self.norm2 = LayerNorm(dim, LayerNorm_type)
        self.ffn = FeedForward(dim, ffn_expansion_factor, bias, ffn_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class OverlapPatchEmbed(nn.Module):
    """3x3 conv embedding ``[B, in_c, H, W] -> [B, embed_dim, H, W]``."""

    def __init__(self, in_c: int = 3, embed_dim: int = 48, bias: bool = False):
        super().__init__()
        self.proj = nn.Conv2d(in_c, embed_dim, 3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Downsample(nn.Module):
    """``[B, C, H, W] -> [B, 4*out, H/2, W/2]``: 3x3 conv to ``out`` (default C/2) then PixelUnshuffle(2)."""

    def __init__(self, n_feat: int, out: int | None = None):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n_feat, out or n_feat // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Upsample(nn.Module):
    """``[B, C, H, W] -> [B, out, 2H, 2W]``: 3x3 conv to ``4*out`` (default out = C/2) then PixelShuffle(2)."""

    def __init__(self, n_feat: int, out: int | None = None):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n_feat, 4 * out if out else n_feat * 2, 3, padding=1, bias=False), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


STREAMS = ("encoder_level1", "encoder_level2", "encoder_level3", "latent", "up4_3", "decoder_level3", "up3_2",
           "decoder_level2", "up2_1")


# the seven stages of TransformerBlocks and the num_blocks entry each takes its default depth from
BLOCK_STAGES = {"encoder_level1": 0, "encoder_level2": 1, "encoder_level3": 2, "latent": 3, "decoder_level3": 2,
                "decoder_level2": 1, "decoder_level1": 0}


def stage_depths(num_blocks, depths: dict[str, int] | None = None) -> dict[str, int]:
    """Blocks per stage (:data:`BLOCK_STAGES`): ``num_blocks`` (encoder and decoder of a level share it), with the
    per-stage overrides of a depth-pruned model."""
    return {name: (depths or {}).get(name, num_blocks[i]) for name, i in BLOCK_STAGES.items()}


def stream_widths_of(dim: int, overrides: dict[str, int] | None = None) -> dict[str, int]:
    """Channel width of every residual stream: upstream's ``dim * 2**level`` unless overridden (pruned models).

    ``up4_3``/``up3_2``/``up2_1`` are the Upsample outputs that are concatenated with the encoder skip;
    ``decoder_level1`` works at ``up2_1 + encoder_level1`` channels (upstream: ``2 * dim``).

    Raises:
        ValueError: an unknown stream name.
    """
    w = {"encoder_level1": dim, "encoder_level2": 2 * dim, "encoder_level3": 4 * dim, "latent": 8 * dim, "up4_3": 4 * dim,
         "decoder_level3": 4 * dim, "up3_2": 2 * dim, "decoder_level2": 2 * dim, "up2_1": dim}
    unknown = set(overrides or {}) - set(w)
    if unknown:
        raise ValueError(f"unknown stream(s) {sorted(unknown)}; valid: {list(w)}")
    return {**w, **(overrides or {})}


class DRSformer(nn.Module):
    """DRSformer deraining network: ``[B, 3, H, W]`` in [0, 1] -> ``[B, 3, H, W]`` (unclamped).

    H and W must be multiples of 8 (three 2x downsamplings); use
    :func:`drsedge.runtime.tiling.pad_to_multiple` first, as upstream test.py does.
    The output already includes the global residual ``+ inp_img``.

    Args (upstream): inp_channels, out_channels, dim, num_blocks (4 levels),
        heads (4 levels), ffn_expansion_factor, bias, LayerNorm_type
        (``"WithBias"`` | ``"BiasFree"``).
    Args (drsedge): mefc: build MEFC (``encoder_level0``/``refinement``);
        False is upstream's Rain200L/SPA variant. attention: ``"topk"`` |
        ``"assa"`` | ``"dense"``. topk_mode: ``"auto"`` (index in training,
        threshold in eval) | ``"index"`` | ``"threshold"``. ffn_hidden: per-block
        MSFN hidden width overrides, ``{"encoder_level2.1": 24, ...}``; attn_inner:
        per-block q/k/v width overrides (heads x channels per head); attn_heads: per-block
        head counts (whole-head pruning); stream_widths: residual-stream widths
        (:func:`stream_widths_of`; needs mefc=False); all four for pruned models.
    """

    def __init__(
        self,
        inp_channels: int = 3,
        out_channels: int = 3,
        dim: int = 48,
        num_blocks=(4, 6, 6, 8),
        heads=(1, 2, 4, 8),
        ffn_expansion_factor: float = 2.66,
        bias: bool = False,
        LayerNorm_type: str = "WithBias",
        mefc: bool = True,
        attention: str = "topk",
        topk_mode: str = "auto",
        ffn_hidden: dict[str, int] | None = None,
        attn_inner: dict[str, int] | None = None,
        attn_heads: dict[str, int] | None = None,
        stream_widths: dict[str, int] | None = None,
        depths: dict[str, int] | None = None,
    ):
        super().__init__()
        if len(num_blocks) != 4 or len(heads) != 4:
            raise ValueError("num_blocks and heads need one entry per level (4)")
        self.mefc = mefc
        ffn_hidden = ffn_hidden or {}
        attn_inner = attn_inner or {}
        attn_heads = attn_heads or {}
        depths = depths or {}

        def level(name: str, width: int, n: int, h: int) -> nn.Sequential:
            n = depths.get(name, n)  # depth-pruned stages keep fewer blocks (drsedge.compress.prune_depth)
            return nn.Sequential(
                *[
                    TransformerBlock(width, attn_heads.get(f"{name}.{i}", h), ffn_expansion_factor, bias, LayerNorm_type, attention,
                                     topk_mode, ffn_hidden.get(f"{name}.{i}"), attn_inner.get(f"{name}.{i}"))
                    for i in range(n)
                ]
            )

        w = stream_widths_of(dim, stream_widths)
        if mefc and stream_widths:
            raise ValueError("stream_widths (residual-stream pruning) needs mefc=False")
        self.patch_embed = OverlapPatchEmbed(inp_channels, w["encoder_level1"])
        if mefc:
            self.encoder_level0 = subnet(dim)
        self.encoder_level1 = level("encoder_level1", w["encoder_level1"], num_blocks[0], heads[0])
        self.down1_2 = Downsample(w["encoder_level1"], w["encoder_level2"] // 4)
        self.encoder_level2 = level("encoder_level2", w["encoder_level2"], num_blocks[1], heads[1])
        self.down2_3 = Downsample(w["encoder_level2"], w["encoder_level3"] // 4)
        self.encoder_level3 = level("encoder_level3", w["encoder_level3"], num_blocks[2], heads[2])
        self.down3_4 = Downsample(w["encoder_level3"], w["latent"] // 4)
        self.latent = level("latent", w["latent"], num_blocks[3], heads[3])
        self.up4_3 = Upsample(w["latent"], w["up4_3"])
        self.reduce_chan_level3 = nn.Conv2d(w["up4_3"] + w["encoder_level3"], w["decoder_level3"], 1, bias=bias)
        self.decoder_level3 = level("decoder_level3", w["decoder_level3"], num_blocks[2], heads[2])
        self.up3_2 = Upsample(w["decoder_level3"], w["up3_2"])
        self.reduce_chan_level2 = nn.Conv2d(w["up3_2"] + w["encoder_level2"], w["decoder_level2"], 1, bias=bias)
        self.decoder_level2 = level("decoder_level2", w["decoder_level2"], num_blocks[1], heads[1])
        self.up2_1 = Upsample(w["decoder_level2"], w["up2_1"])
        dec1 = w["up2_1"] + w["encoder_level1"]
        self.decoder_level1 = level("decoder_level1", dec1, num_blocks[0], heads[0])
        if mefc:
            self.refinement = subnet(dim * 2)
        self.output = nn.Conv2d(dec1, out_channels, 3, padding=1, bias=bias)

    def forward(self, inp_img: torch.Tensor) -> torch.Tensor:
        x1 = self.patch_embed(inp_img)
        if self.mefc:
            x1 = self.encoder_level0(x1)
        enc1 = self.encoder_level1(x1)
        enc2 = self.encoder_level2(self.down1_2(enc1))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        lat = self.latent(self.down3_4(enc3))
        dec3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(lat), enc3], 1)))
        dec2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(dec3), enc2], 1)))
        dec1 = self.decoder_level1(torch.cat([self.up2_1(dec2), enc1], 1))
        if self.mefc:
            dec1 = self.refinement(dec1)
        return self.output(dec1) + inp_img


def set_topk_mode(model: nn.Module, mode: str) -> None:
    """Set the top-k mask form (``auto``/``index``/``threshold``) of every Attention in ``model``."""
    if mode not in TOPK_MODES:
        raise ValueError(f"topk_mode must be one of {TOPK_MODES}, got {mode!r}")
    for m in model.modules():
        if isinstance(m, Attention):
            m.topk_mode = mode


def set_attention_impl(model: nn.Module, impl: str) -> None:
    """Route top-k attention through the native graph (``"native"``) or the fused custom op (``"fused"``)."""
    if impl not in ATTENTION_EXPORTS:
        raise ValueError(f"attention impl must be 'native' or 'fused', got {impl!r}")
    for m in model.modules():
        if isinstance(m, Attention):
            m.attention_impl = impl


def set_fp16_safe(model: nn.Module, on: bool = True) -> None:
    """Switch every LayerNorm and TKSA q/k normalisation to the FP16-safe form (:mod:`drsedge.models.fp16_safe`).

    Weights are untouched; FP32 outputs agree with the default form to rounding (<= 1e-6).
    """
    for m in model.modules():
        if hasattr(m, "fp16_safe"):
            m.fp16_safe = bool(on)
