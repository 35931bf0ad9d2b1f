"""UDR-S2Former (Chen et al., ICCV 2023, "Sparse Sampling Transformer with Uncertainty-Driven Ranking for Unified
Removal of Raindrops and Rain Streaks"), written for deployment.

Module names and parameter shapes are those of upstream ``UDR_S2Former.py`` / ``base_net_snow.py``
(Owen718/UDR-S2Former_deraining @ 93c50a8), so official checkpoints load with ``strict=True``; the arithmetic follows
upstream op for op, so the fixtures in ``../shared/fixtures/udr_s2former`` are matched to float rounding. What differs
(each proven equal in ``tests/models/test_udr_s2former.py``; background in ``../shared/notes/udr-s2former.md``):

- **Any size that is a multiple of 64**, not only the construction size: window references, base coordinates and the
  top-k counts are functions of the input's ``(H, W)``. The construction size's coordinates are non-persistent
  buffers (``.half()`` / bf16 work, the state_dict is upstream's). :meth:`UDRS2Former.forward` pads any other size by
  reflection to a multiple of 64 and crops the result (upstream's own ``check_image_size``, commented out there).
- **Batch > 1**: ``window_reverse`` takes the batch from its caller instead of ``int(windows.shape[0] / ...)``.
- **Ranking without a large TopK** (``rank_mode="threshold"``, the default): the SparseSampling constraint is
  ``where(var >= t, 1.0, 0.6)`` with ``t`` the k-th largest value per channel, found by bisection on counts
  (``(var >= t).sum() >= k``; :data:`RANK_STEPS` halvings reach adjacent floats, so the mask equals
  ``topk`` + ``scatter``). TensorRT's TopK allows K <= 3840 (``ITopKLayer::setK``), upstream's K = int(0.8 H W)
  is 52,428 at 256². Local_Reconstruction keeps a TopK of K = 51 for its k-th value. ``rank_mode="topk"`` is upstream.
  Where values tie at the k-th, upstream keeps an implementation-defined subset (CPU and GPU differ); the threshold
  keeps every tied element, the same on every runtime (measured: 1 entry of 1.3 M on two real images, in a tied row).
- Each level's rank constraint and modulation map are computed once (upstream recomputes the same ones per block),
  the in-place ``sampling_biases[:, 0] /= ...`` is an out-of-place divide (no ScatterND in the graph), and the
  identity-sized bicubic resizes and zero pads are skipped (no cubic Resize reaches TensorRT).
- ``forward(x)`` returns the restored image only (what every stage of drsedge runs); ``forward_all(x)`` returns
  upstream's ``([out_final, out0, out1, out2, out3], [var, var0, var1, var2, var3])`` for training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

RANK_MODES = ("threshold", "topk")
RANK_STEPS = 64  # bisection halvings: range / 2**64 is below float32 spacing for any var map seen (tests check equality)
SIZE_MULTIPLE = 64  # level 3 (H/8) must split into 8x8 windows


# -- ranking ---------------------------------------------------------------------------------------------------------
def kth_largest(v: torch.Tensor, k: int, steps: int = RANK_STEPS) -> torch.Tensor:
    """The k-th largest value along the last axis of ``v`` ``[..., N]`` by bisection on counts, ``[..., 1]``.

    Invariant: ``count(v >= lo) >= k > count(v >= hi)``; after enough halvings ``lo`` and ``hi`` are adjacent floats
    and ``lo`` is the k-th largest value. Uses only min/max/compare/sum/where, so it exports to ONNX ops TensorRT has
    for any N (a TopK over N is limited to K <= 3840). Counts are float (exact below 2**24 elements per row).
    """
    lo = v.amin(-1, keepdim=True)
    hi = v.amax(-1, keepdim=True) + 1.0
    kf = float(k)
    for _ in range(steps):
        mid = (lo + hi) * 0.5
        ok = (v >= mid).to(v.dtype).sum(-1, keepdim=True) >= kf
        lo = torch.where(ok, mid, lo)
        hi = torch.where(ok, hi, mid)
    return lo


def rank_constraint(var: torch.Tensor, mode: str = "threshold") -> torch.Tensor:
    """SparseSamplingAttention's ranking constraint: 1.0 on the top 80 % positions of each channel of ``var``
    ``[B, C, H, W]``, 0.6 elsewhere (upstream ``get_constraint_matrix``); same shape and dtype."""
    b, c, h, w = var.shape
    v = var.reshape(b, c, h * w).float()  # ranks in FP32: bf16/FP16 counts and ties would move the threshold
    k = int(0.8 * h * w)
    if mode == "topk":
        mask = torch.zeros(b, c, h * w, dtype=var.dtype, device=var.device)
        mask.scatter_(-1, torch.topk(v, k=k, dim=-1, largest=True)[1], 1.0)
        keep = mask > 0
    else:
        keep = v >= kth_largest(v, k)
    # scalar branches: Where with two scalars in the graph (full_like tensors were folded into 4-16 MB constants each)
    return torch.where(keep, 1.0, 0.6).reshape(b, c, h, w).to(var.dtype)


def rank_modulation(var_w: torch.Tensor, k: int, mode: str = "threshold") -> torch.Tensor:
    """Local_Reconstruction's modulation map ``[B_, 1, N, N]``: 1.0 where ``var_w @ var_wᵀ`` ``[B_, N, N]`` is in its
    row's top ``k``, 1.2 elsewhere (upstream ``get_var_modulation``). ``k`` = 51 for 8x8 windows (a TopK TensorRT has)."""
    s = var_w.float() @ var_w.float().transpose(-2, -1)  # FP32, as rank_constraint
    if mode == "topk":
        mask = torch.zeros_like(s)
        mask.scatter_(-1, torch.topk(s, k=k, dim=-1, largest=True)[1], 1.0)
        keep = mask > 0
    else:
        keep = s >= torch.topk(s, k=k, dim=-1, largest=True)[0][..., -1:]
    return torch.where(keep, 1.0, 1.2).unsqueeze(1).to(var_w.dtype)


# -- building blocks (base_net_snow.py) --------------------------------------------------------------------------------
def _to_3d(x: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.permute(0, 2, 3, 1).reshape(b, h * w, c)


class BiasFree_LayerNorm(nn.Module):
    """``x / sqrt(var + 1e-5) * weight`` over the last axis of ``[B, N, C]`` (mean not removed; upstream)."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        sigma = x.var(-1, keepdim=True, unbiased=False)
        return x / torch.sqrt(sigma + 1e-5) * self.weight


class WithBias_LayerNorm(nn.Module):
    """LayerNorm over the last axis of ``[B, N, C]`` with weight and bias, eps 1e-5 (upstream arithmetic)."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        mu = x.mean(-1, keepdim=True)
        sigma = x.var(-1, keepdim=True, unbiased=False)
        return (x - mu) / torch.sqrt(sigma + 1e-5) * self.weight + self.bias


class LayerNorm(nn.Module):
    """Channel LayerNorm of a ``[B, C, H, W]`` map through ``[B, H*W, C]`` (keeps upstream's ``.body`` key level)."""

    def __init__(self, dim: int, LayerNorm_type: str):
        super().__init__()
        self.body = BiasFree_LayerNorm(dim) if LayerNorm_type == "BiasFree" else WithBias_LayerNorm(dim)

    def forward(self, x):
        b, c, h, w = x.shape
        return self.body(_to_3d(x)).reshape(b, h, w, c).permute(0, 3, 1, 2)


class Down(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int, padding: int):
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(cin, cout, k, stride, padding, bias=False))

    def forward(self, x):
        return self.down(x)


class Up(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int, padding: int):
        super().__init__()
        self.up = nn.Sequential(nn.Sequential(nn.ConvTranspose2d(cin, cout, k, stride, padding)))

    def forward(self, x):
        return self.up(x)


class UpSample(nn.Module):
    """Bilinear x``s_factor`` then 1x1 (Refine_stage fusion)."""

    def __init__(self, cin: int, cout: int, s_factor: int):
        super().__init__()
        self.up = nn.Sequential(nn.Upsample(scale_factor=s_factor, mode="bilinear", align_corners=False),
                                nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x):
        return self.up(x)


class ChannelAttention(nn.Module):
    """SE-style gate: avg-pool, 1x1 (C -> C/factor), LeakyReLU, 1x1, sigmoid."""

    def __init__(self, chns: int, factor: int):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.channel_map = nn.Sequential(nn.Conv2d(chns, chns // factor, 1), nn.LeakyReLU(),
                                         nn.Conv2d(chns // factor, chns, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.channel_map(self.avg_pool(x))


class ConvBlock(nn.Module):
    """Inverted-residual conv block of the encoder: [1x1 expand,] dw3x3, BiasFree LN, GELU, dw3x3, CA, 1x1 (+ x)."""

    def __init__(self, inp: int, oup: int, expand_ratio: float):
        super().__init__()
        hidden = round(inp * expand_ratio)
        self.identity = inp == oup
        body = [] if expand_ratio == 1 else [nn.Conv2d(inp, hidden, 1)]
        body += [nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden), LayerNorm(hidden, "BiasFree"), nn.GELU(),
                 nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden), ChannelAttention(hidden, 4), nn.Conv2d(hidden, oup, 1)]
        self.conv = nn.Sequential(*body)

    def forward(self, x):
        return x + self.conv(x) if self.identity else self.conv(x)


class Conv_block(nn.Module):
    def __init__(self, n: int, cin: int, cout: int, expand_ratio: float):
        super().__init__()
        self.model = nn.Sequential(*[ConvBlock(cin if i == 0 else cout, cout, expand_ratio) for i in range(n)])

    def forward(self, x):
        return self.model(x)


# -- latent: global MHSA + MFFN ------------------------------------------------------------------------------------------
class Attention(nn.Module):
    """Global multi-head self-attention over all H/16 x W/16 tokens plus a depthwise 3x3 path (upstream, sr = 1)."""

    def __init__(self, dim: int, num_head: int, qkv_bias: bool = False):
        super().__init__()
        self.num_heads = num_head
        self.scale = (dim // num_head) ** -0.5
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.proj = nn.Conv2d(dim, dim, 1, 1)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x, H: int, W: int):
        B, N, C = x.shape
        x_conv = self.conv(x.reshape(B, H, W, C).permute(0, 3, 1, 2))
        q = self.q(x).reshape(B, N, self.num_heads, C // self.num_heads).permute(0, 2, 1, 3)
        kv = self.kv(x).reshape(B, -1, 2, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x.transpose(1, 2).reshape(B, C, H, W)) + x_conv


class MFFN(nn.Module):
    """1x1 expand, dw3x3 + dw5x5 (summed with the input), SimpleGate, 1x1."""

    def __init__(self, dim: int, FFN_expand: int = 2, hidden: int | None = None):
        super().__init__()
        h = hidden or dim * FFN_expand
        self.conv1 = nn.Conv2d(dim, h, 1)
        self.conv33 = nn.Conv2d(h, h, 3, 1, 1, groups=h)
        self.conv55 = nn.Conv2d(h, h, 5, 1, 2, groups=h)
        self.conv4 = nn.Conv2d(h // 2, dim, 1)

    def forward(self, x):
        x1 = self.conv1(x)
        x = x1 + self.conv33(x1) + self.conv55(x1)
        a, b = x.chunk(2, dim=1)
        return self.conv4(a * b)


class Transformer_block(nn.Module):
    """Latent block: ``x = MHSA(LN(x))`` (no outer residual, as upstream), then ``x + MFFN(LN(x))``."""

    def __init__(self, dim: int, num_head: int, qkv_bias: bool = False, ffn_hidden: int | None = None):
        super().__init__()
        self.norm1 = LayerNorm(dim, "WithBias")
        self.norm3 = LayerNorm(dim, "WithBias")
        self.attn_nn = Attention(dim, num_head, qkv_bias)
        self.ffn = MFFN(dim, 2, ffn_hidden)

    def forward(self, x):
        b, c, h, w = x.shape
        x = self.attn_nn(self.norm1(x).reshape(b, c, h * w).transpose(1, 2), h, w)
        return x + self.ffn(self.norm3(x))


# -- decoder: sparse sampling + local windows -----------------------------------------------------------------------
def _relative_position_index(ws: int) -> torch.Tensor:
    coords = torch.stack(torch.meshgrid([torch.arange(ws), torch.arange(ws)], indexing="ij"))
    flat = torch.flatten(coords, 1)
    rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += ws - 1
    rel[:, :, 1] += ws - 1
    rel[:, :, 0] *= 2 * ws - 1
    return torch.clip(rel.sum(-1), -1000, 1000)


def sampling_coords(h: int, w: int, ws: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(base_coords, coords)`` of SparseSamplingAttention for an ``h x w`` map, each ``[1, 2, h/ws, ws, w/ws, ws]``
    float32: window reference points in [-1, 1] plus the regular in-window grid, and the in-window grid alone
    (upstream ``__init__``, same arithmetic)."""
    ref_w = torch.linspace(-1, 1, w)
    ref_h = torch.linspace(-1, 1, h)
    ref = torch.stack(torch.meshgrid(ref_w, ref_h, indexing="ij"), 0).permute(0, 2, 1).unsqueeze(0)
    win = F.avg_pool2d(ref, kernel_size=ws)
    nh, nw = win.shape[-2:]
    win = win.reshape(1, 2, nh, 1, nw, 1)
    bh = torch.arange(ws) * 2 * ws / ws / (h - 1)
    bh = bh - bh.mean()
    bw = torch.arange(ws) * 2 * ws / ws / (w - 1)
    bw = bw - bw.mean()
    eh = bh.unsqueeze(0).repeat(nh, 1).reshape(-1)
    ew = bw.unsqueeze(0).repeat(nw, 1).reshape(-1)
    coords = torch.stack(torch.meshgrid(ew, eh, indexing="ij"), 0).permute(0, 2, 1).reshape(1, 2, nh, ws, nw, ws)
    return win + coords, coords


class SparseSamplingAttention(nn.Module):
    """Window attention whose keys/values are resampled (GridSample, bilinear, zeros, align_corners) at per-window
    offsets and scales predicted from ``x * constraint`` (the uncertainty-ranked input); 64 tokens per 8x8 window,
    relative-position bias. Input ``[B, C, H, W]`` channel-first, H and W multiples of the window."""

    def __init__(self, dim: int, num_heads: int, window_size: int = 8, qkv_bias: bool = True, img_size=(64, 64)):
        super().__init__()
        self.num_heads, self.dim, self.out_dim, self.ws = num_heads, dim, dim, window_size
        self.scale = (dim // num_heads) ** -0.5
        self.sampling_biases = nn.Sequential(nn.AvgPool2d(window_size, window_size), nn.LeakyReLU(),
                                             nn.Conv2d(dim, num_heads * 2, 1))
        self.sampling_scales = nn.Sequential(nn.AvgPool2d(window_size, window_size), nn.LeakyReLU(),
                                             nn.Conv2d(dim, num_heads * 2, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=qkv_bias)
        self.proj = nn.Conv2d(dim, dim, 1)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", _relative_position_index(window_size))
        self.img_size = tuple(img_size)
        base, coords = sampling_coords(*self.img_size, window_size)
        self.register_buffer("base_coords", base, persistent=False)  # build size; other sizes computed in forward
        self.register_buffer("coords", coords, persistent=False)

    def _coords(self, h: int, w: int, ref: torch.Tensor):
        if (h, w) == self.img_size and self.base_coords.dtype == torch.float32:  # .to(bf16) rounded them: recompute
            return self.base_coords, self.coords
        base, coords = sampling_coords(h, w, self.ws)
        return base.to(ref.device), coords.to(ref.device)

    def _windows(self, t: torch.Tensor, b: int, nh: int, nw: int) -> torch.Tensor:
        heads, ws = self.num_heads, self.ws
        return t.reshape(b, heads, self.dim // heads, nh, ws, nw, ws).permute(0, 3, 5, 1, 4, 6, 2).reshape(
            b * nh * nw, heads, ws * ws, self.dim // heads)

    def forward(self, x: torch.Tensor, constraint: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        ws, heads = self.ws, self.num_heads
        base_coords, coords0 = self._coords(h, w, x)
        nh, nw = base_coords.shape[-4], base_coords.shape[-2]
        n = b * heads
        x_var = x * constraint
        biases = self.sampling_biases(x_var).reshape(n, 2, nh, nw).float()
        biases = biases / torch.tensor([w // ws, h // ws], dtype=torch.float32, device=x.device).reshape(1, 2, 1, 1)
        scales = self.sampling_scales(x_var).reshape(n, 2, nh, nw).float()
        coords = base_coords.repeat(n, 1, 1, 1, 1, 1) + (coords0 * scales[:, :, :, None, :, None] + biases[:, :, :, None, :, None])
        grid = coords.permute(0, 2, 3, 4, 5, 1).reshape(n, ws * nh, ws * nw, 2)
        qkv = self.qkv(x).reshape(b, 3, heads, self.dim // heads, h, w).transpose(1, 0).reshape(3, n, self.dim // heads, h, w)
        q, k, v = qkv[0], qkv[1], qkv[2]
        # sampling in FP32 (a no-op in an FP32 model): a bf16 grid is off by up to 1/128 of the map, and PyTorch's
        # bf16 CPU grid_sample returned NaN here; TensorRT's IGridSampleLayer is FP32/FP16 only anyway
        grid = grid.float()
        k = F.grid_sample(k.float(), grid=grid, padding_mode="zeros", align_corners=True).to(x.dtype)
        v = F.grid_sample(v.float(), grid=grid, padding_mode="zeros", align_corners=True).to(x.dtype)
        q, k, v = self._windows(q, b, nh, nw), self._windows(k, b, nh, nw), self._windows(v, b, nh, nw)
        dots = (q @ k.transpose(-2, -1)) * self.scale
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(ws * ws, ws * ws, -1)
        dots = dots + bias.permute(2, 0, 1).contiguous().unsqueeze(0)
        out = dots.softmax(dim=-1) @ v  # [b*nh*nw, heads, ws*ws, d]
        out = out.reshape(b, nh, nw, heads, ws, ws, self.dim // heads).permute(0, 3, 6, 1, 4, 2, 5).reshape(b, self.dim, h, w)
        return self.proj(out)


class Local_Reconstruction(nn.Module):
    """Swin-style 8x8 window MHSA (no shift) whose scaled QKᵀ is multiplied by the rank modulation map (1.0 / 1.2)
    before the relative-position bias and softmax. Input ``[B_, N, C]`` windows."""

    def __init__(self, dim: int, num_heads: int, window_size: int = 8, qkv_bias: bool = True, img_size=None):
        super().__init__()
        self.dim, self.num_heads, self.ws = dim, num_heads, window_size
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", _relative_position_index(window_size))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.topk = int(0.8 * window_size * window_size)

    def forward(self, x: torch.Tensor, modulation: torch.Tensor) -> torch.Tensor:
        B_, N, C = x.shape
        qkv = self.qkv(x).reshape(B_, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        dots = ((q * self.scale) @ k.transpose(-2, -1)) * modulation
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(N, N, -1)
        dots = dots + bias.permute(2, 0, 1).contiguous().unsqueeze(0)
        out = (dots.softmax(dim=-1) @ v).transpose(1, 2).reshape(B_, N, C)
        return self.proj(out)


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """``[B, H, W, C]`` -> ``[B * H/ws * W/ws, ws, ws, C]``."""
    B, H, W, C = x.shape
    x = x.view(B, H // ws, ws, W // ws, ws, C)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, ws, ws, C)


def window_reverse(windows: torch.Tensor, ws: int, B: int, H: int, W: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`; ``B`` is given (upstream derives it with ``int()``, which bakes the batch)."""
    x = windows.view(B, H // ws, W // ws, ws, ws, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(B, H, W, -1)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Reconstruction_Module(nn.Module):
    """LN -> attention -> residual, LN -> MLP(x4, GELU) -> residual, on a channel-last ``[B, H, W, C]`` map."""

    def __init__(self, dim: int, num_heads: int, window_size: int, local: bool, img_size, mlp_hidden: int | None = None):
        super().__init__()
        self.window_size, self.local = window_size, local
        self.norm1 = nn.LayerNorm(dim)
        attn = Local_Reconstruction if local else SparseSamplingAttention
        self.attn = attn(dim, num_heads=num_heads, window_size=window_size, img_size=img_size)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_hidden or int(dim * 4.0))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        shortcut = x
        x = self.norm1(x)
        if self.local:
            win = window_partition(x, self.window_size).view(-1, self.window_size * self.window_size, C)
            x = window_reverse(self.attn(win, mask), self.window_size, B, H, W)
        else:
            x = self.attn(x.permute(0, 3, 1, 2), mask).permute(0, 2, 3, 1)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class Reconstruction_Module_layer(nn.Module):
    """n blocks alternating SparseSampling (even) and Local (odd) attention; input ``[B, C, H, W]``, output
    channel-last ``[B, H, W, C]`` (upstream). ``var`` ``[B, C, H, W]`` ranks both kinds; its constraint and its
    modulation map are computed once per level."""

    def __init__(self, n: int, in_channel: int, head: int, window_size: int, img_size, mlp_hidden: dict | None = None):
        super().__init__()
        self.window_size = window_size
        self.rank_mode = "threshold"
        mh = mlp_hidden or {}
        self.model = nn.ModuleList([Reconstruction_Module(in_channel, head, window_size, local=i % 2 == 1, img_size=img_size,
                                                          mlp_hidden=mh.get(str(i))) for i in range(n)])

    def forward(self, x: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        C, ws = x.shape[-1], self.window_size
        constraint = modulation = None
        for block in self.model:
            if block.local:
                if modulation is None:
                    # upstream layout quirk, kept (the weights were trained with it): var is channel-first here, so
                    # window_partition treats (C, H, W) as (H, W, C)
                    var_w = window_partition(var, ws).view(-1, ws * ws, C)
                    modulation = rank_modulation(var_w, block.attn.topk, self.rank_mode)
                x = block(x, modulation)
            else:
                if constraint is None:
                    constraint = rank_constraint(var, self.rank_mode)
                x = block(x, constraint)
        return x


# -- refinement ------------------------------------------------------------------------------------------------------
def _conv(cin: int, cout: int, k: int, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias)


class CALayer(nn.Module):
    def __init__(self, channel: int, reduction: int = 4, bias: bool = False):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(nn.Conv2d(channel, channel // reduction, 1, bias=bias), nn.ReLU(inplace=True),
                                     nn.Conv2d(channel // reduction, channel, 1, bias=bias), nn.Sigmoid())

    def forward(self, x):
        return x * self.conv_du(self.avg_pool(x))


class SALayer(nn.Module):
    def __init__(self, channel: int, reduction: int = 16):
        super().__init__()
        self.pa = nn.Sequential(nn.Conv2d(channel, channel // reduction, 1), nn.ReLU(inplace=True),
                                nn.Conv2d(channel // reduction, 1, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.pa(x)


class Refine_Block(nn.Module):
    def __init__(self, n_feat: int, kernel_size: int, reduction: int, bias: bool, act: nn.Module):
        super().__init__()
        self.CA = CALayer(n_feat, reduction, bias=bias)
        self.body = nn.Sequential(_conv(n_feat, n_feat, kernel_size, bias), act, _conv(n_feat, n_feat, kernel_size, bias))

    def forward(self, x):
        return self.CA(self.body(x)) + x


class Refine(nn.Module):
    def __init__(self, n_feat: int, kernel_size: int, reduction: int, act: nn.Module, bias: bool, num_cab: int):
        super().__init__()
        self.body = nn.Sequential(*[Refine_Block(n_feat, kernel_size, reduction, bias, act) for _ in range(num_cab)],
                                  _conv(n_feat, n_feat, kernel_size))

    def forward(self, x):
        return self.body(x) + x


class Refine_stage(nn.Module):
    """Fuses every encoder and decoder level into the full-resolution map (bilinear up + 1x1, CA/SA x2, Refine)."""

    def __init__(self, n_feat: list[int], fusion_dim: int, num_cab: int = 6):
        super().__init__()
        act = nn.GELU()
        for i in range(4):
            setattr(self, f"refine{i}", Refine(fusion_dim, 3, 4, act, True, num_cab))
        for i, s in ((1, 2), (2, 4), (3, 8)):
            setattr(self, f"up_enc{i}", UpSample(n_feat[i], fusion_dim, s))
            setattr(self, f"up_dec{i}", UpSample(n_feat[i], fusion_dim, s))
        for i in range(4):
            setattr(self, f"conv_enc{i}", nn.Sequential(CALayer(fusion_dim, 16), SALayer(fusion_dim, 16),
                                                        CALayer(fusion_dim, 16), SALayer(fusion_dim, 16)))

    def forward(self, x, enc, dec):
        x = self.refine0(x + self.conv_enc0(enc[0] + dec[3]))
        x = self.refine1(x + self.conv_enc1(self.up_enc1(enc[1]) + self.up_dec1(dec[2])))
        x = self.refine2(x + self.conv_enc2(self.up_enc2(enc[2]) + self.up_dec2(dec[1])))
        return self.refine3(x + self.conv_enc3(self.up_enc3(enc[3]) + self.up_dec3(dec[0])))


def _var_head(c: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c, c, 3, 1, 1), nn.ELU(), nn.Conv2d(c, out, 3, 1, 1), nn.ELU())


# -- the network -----------------------------------------------------------------------------------------------------
class UDRS2Former(nn.Module):
    """UDR-S2Former (upstream class ``Transformer``): ``[B, 3, H, W]`` float in [0, 1] -> restored ``[B, 3, H, W]``.

    Defaults are upstream's one model size: dim 16/32/64/128/256, heads 1/2/4/8/16, 8 latent blocks,
    reconstruction 3/6/7/8, conv blocks 4/6/7/8 — 8,525,361 parameters, 20.41 GMACs at 256² (the paper's 8.53 M).

    Args:
        img_size: ``(H, W)`` whose sampling coordinates are stored as buffers (any multiple of 64 runs).
        mlp_hidden / ffn_hidden: per-block hidden widths of pruned models (``"decoder_level3.0"`` -> width).
        rank_mode: ``"threshold"`` (bisection, TensorRT-buildable) or ``"topk"`` (upstream); equal masks.
    """

    def __init__(self, img_size=(256, 256), in_channels: int = 3, out_channels: int = 3, transformer_blocks: int = 8,
                 dim=(16, 32, 64, 128, 256), window_size=(8, 8, 8, 8), reconstruction_num=(3, 6, 7, 8), head=(1, 2, 4, 8, 16),
                 conv_num=(4, 6, 7, 8), expand_ratio=(2, 2, 2, 2), qkv_bias: bool = False, rank_mode: str = "threshold",
                 mlp_hidden: dict | None = None, ffn_hidden: dict | None = None):
        super().__init__()
        if rank_mode not in RANK_MODES:
            raise ValueError(f"rank_mode must be one of {RANK_MODES}, got {rank_mode!r}")
        H, W = img_size
        self.img_size = (H, W)
        mh, fh = mlp_hidden or {}, ffn_hidden or {}
        self.embed = Down(in_channels, dim[0], 3, 1, 1)
        for i in range(4):
            setattr(self, f"encoder_level{i}", nn.Sequential(Conv_block(conv_num[i], dim[i], dim[i], expand_ratio[i])))
            setattr(self, f"down{i}", Down(dim[i], dim[i + 1], 3, 2, 1))
        self.latent = nn.Sequential(*[Transformer_block(dim[4], head[4], qkv_bias, fh.get(f"latent.{j}"))
                                      for j in range(transformer_blocks)])
        for i in (3, 2, 1, 0):
            setattr(self, f"up{i}", Up(dim[i + 1], dim[i], 4, 2, 1))
            setattr(self, f"ca{i}", CALayer(dim[i] * 2, reduction=4))
            setattr(self, f"reduce_chan_level{i}", nn.Conv2d(dim[i] * 2, dim[i], 1, bias=False))
            level_mh = {k.split(".", 1)[1]: v for k, v in mh.items() if k.startswith(f"decoder_level{i}.")}
            setattr(self, f"decoder_level{i}", Reconstruction_Module_layer(
                reconstruction_num[i], dim[i], head[i], window_size[i], (H // 2**i, W // 2**i), level_mh))
        self.refinement = Refine_stage(list(dim), dim[0])
        self.out_final = nn.Conv2d(dim[0], out_channels, 3, 1, 1)
        for i in (3, 2, 1, 0):
            setattr(self, f"var_conv{i}", _var_head(dim[i], out_channels))
        self.var_conv_final = _var_head(dim[0], out_channels)
        for i in (3, 2, 1, 0):
            setattr(self, f"out{i}", nn.Conv2d(dim[i], out_channels, 3, 1, 1))
        self.set_rank_mode(rank_mode)

    def set_rank_mode(self, mode: str) -> None:
        """``"threshold"`` or ``"topk"`` for every ranking (same masks; see the module docstring)."""
        if mode not in RANK_MODES:
            raise ValueError(f"rank_mode must be one of {RANK_MODES}, got {mode!r}")
        self.rank_mode = mode
        for m in self.modules():
            if isinstance(m, Reconstruction_Module_layer):
                m.rank_mode = mode

    def _encode(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Embed, the four conv encoder levels (kept as skips) and the latent transformer: ``(skips, latent)``."""
        enc = []
        t = self.embed(x)
        for i in range(4):
            t = getattr(self, f"encoder_level{i}")(t if i == 0 else getattr(self, f"down{i - 1}")(t))
            enc.append(t)
        return enc, self.latent(self.down3(t))

    def forward_all(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Upstream ``forward``: ``x`` ``[B, 3, H, W]`` with H, W multiples of 64 ->
        ``([out_final, out0, out1, out2, out3], [var, var0, var1, var2, var3])``; images at H, H, H/2, H/4, H/8,
        each var map ``[B, 3, .]`` > -1 (ELU) at the scale of its image.

        Raises:
            ValueError: H or W not a multiple of 64.
        """
        h, w = x.shape[-2:]
        if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
            raise ValueError(f"UDR-S2Former needs H and W multiples of {SIZE_MULTIPLE}, got {h}x{w} (forward() pads)")
        xs = [F.interpolate(x, scale_factor=s, mode="bicubic") for s in (0.5, 0.25, 0.125)]
        enc, t = self._encode(x)
        dec, outs, var_maps = [], {}, {}
        for i in (3, 2, 1, 0):
            t = getattr(self, f"up{i}")(t)
            if t.shape[-2:] != enc[i].shape[-2:]:  # upstream resizes always; identity when H, W are multiples of 64
                t = F.interpolate(t, enc[i].shape[-2:], mode="bicubic")
            t = getattr(self, f"reduce_chan_level{i}")(getattr(self, f"ca{i}")(torch.cat([t, enc[i]], 1)))
            head = getattr(self, f"var_conv{i}")
            y = getattr(self, f"decoder_level{i}")(t, head[0:-2](t))
            outs[i] = getattr(self, f"out{i}")(t) + (x if i == 0 else xs[i - 1])
            var_maps[i] = head(t)
            t = y.permute(0, 3, 1, 2)
            dec.append(t)
        r = self.refinement(t, enc, dec)
        out = self.out_final(r) + x
        return [out, outs[0], outs[1], outs[2], outs[3]], [self.var_conv_final(r), var_maps[0], var_maps[1], var_maps[2], var_maps[3]]

    def forward(self, x: torch.Tensor, all_outputs: bool = False):
        """Deployment: ``[B, 3, H, W]`` (any H, W >= 8) -> restored ``[B, 3, H, W]``; reflect-padded to multiples of 64
        and cropped back (upstream ``check_image_size``). The aux and var heads are not computed.
        ``all_outputs=True`` is :meth:`forward_all` (for training through a DDP wrapper, which only hooks ``forward``)."""
        if all_outputs:
            return self.forward_all(x)
        h, w = x.shape[-2:]
        ph, pw = (-h) % SIZE_MULTIPLE, (-w) % SIZE_MULTIPLE
        mode = "reflect" if ph < h and pw < w else "replicate"  # reflection needs the pad smaller than the side
        xp = F.pad(x, (0, pw, 0, ph), mode=mode) if ph or pw else x
        return self._restore(xp)[..., :h, :w]

    def _restore(self, x: torch.Tensor) -> torch.Tensor:
        enc, t = self._encode(x)
        dec = []
        for i in (3, 2, 1, 0):
            t = getattr(self, f"up{i}")(t)
            t = getattr(self, f"reduce_chan_level{i}")(getattr(self, f"ca{i}")(torch.cat([t, enc[i]], 1)))
            t = getattr(self, f"decoder_level{i}")(t, getattr(self, f"var_conv{i}")[0:-2](t)).permute(0, 3, 1, 2)
            dec.append(t)
        return self.out_final(self.refinement(t, enc, dec)) + x
