"""AST, the Adaptive Sparse Transformer (Zhou et al., CVPR 2024, "Adapt or Perish: Adaptive Sparse Transformer with
Attentive Feature Refinement for Image Restoration"), written for deployment.

Module names and parameter shapes are upstream's (joshyZhou/AST @ 80dce68, ``model.py``: ``AST``, ``BasicASTLayer``,
``TransformerBlock``, ``WindowAttention_sparse``, ``LinearProjection``, ``FRFN``, ``Downsample``, ``Upsample``,
``InputProj``, ``OutputProj``), so official checkpoints load with ``strict=True``; the arithmetic follows upstream op for
op (``tests/models/test_ast.py`` matches ``../shared/fixtures/ast`` to float rounding). What differs (background in
``../shared/notes/ast.md``):

- **Any H x W**, not only squares: upstream recovers the token map's side as ``int(sqrt(H*W))``; here every block is
  given ``(H, W)``. :meth:`AST.forward` pads by reflection to a multiple of :attr:`AST.size_multiple` (each level's
  window times its stride: 128 for AST-B, as upstream's ``expand2square(..., factor=128)``) and crops the result. On
  square inputs that are already multiples, the output equals upstream's.
- **Shift masks from the shape**: the region of each pixel (three bands per axis, upstream's ``h_slices`` /
  ``w_slices``) is computed with comparisons on ``arange(H)``, so a dynamic-shape ONNX export rebuilds the mask for
  each size; upstream fills a zeros tensor slice by slice in Python.
- The window (and whether blocks shift) is fixed at construction from ``img_size`` exactly as upstream
  (``win_size = min(resolution)`` and no shift when a level's resolution is not larger than the window).
- The optional input ``mask`` of upstream's forward (padding masks of its test script) is not supported: padding here
  is by reflection, as for UDR-S2Former. Dropout and drop-path are identities (deployment, and distillation with
  drsedge's own regularisation); the state_dict is unchanged by them.

Tensors: images ``[B, 3, H, W]`` float in [0, 1]; tokens ``[B, H*W, C]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

TOKEN_MLPS = ("frfn",)


class LinearProjection(nn.Module):
    """q from ``to_q``, k and v from ``to_kv`` (upstream ``LinearProjection``): tokens ``[B', N, C]`` -> 3 x ``[B', h, N, C/h]``."""

    def __init__(self, dim: int, heads: int, dim_head: int, bias: bool = True):
        super().__init__()
        inner = dim_head * heads
        self.heads = heads
        self.to_q = nn.Linear(dim, inner, bias=bias)
        self.to_kv = nn.Linear(dim, inner * 2, bias=bias)

    def forward(self, x: torch.Tensor):
        b, n, c = x.shape
        q = self.to_q(x).reshape(b, n, 1, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)[0]
        kv = self.to_kv(x).reshape(b, n, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        return q, kv[0], kv[1]


def relative_position_index(win: int) -> torch.Tensor:
    """``[win², win²]`` int64 index into the ``(2 win - 1)²`` bias table (Swin's relative position index)."""
    coords = torch.stack(torch.meshgrid(torch.arange(win), torch.arange(win), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += win - 1
    rel[:, :, 1] += win - 1
    rel[:, :, 0] *= 2 * win - 1
    return rel.sum(-1)


class WindowAttention_sparse(nn.Module):  # upstream name (checkpoint keys do not depend on it; kept for readers)
    """ASSA: window self-attention whose probabilities mix ``softmax(A)`` and ``relu(A)²`` with weights
    ``softmax(w)`` (paper Sec. 3.2; upstream ``WindowAttention_sparse``). ``A = q k^T / sqrt(d) + relative bias
    (+ shift mask)``; the squared-ReLU branch is not normalised. ``[B', win², C]`` -> ``[B', win², C]``."""

    def __init__(self, dim: int, win_size: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.dim, self.win_size, self.num_heads = dim, (win_size, win_size), num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * win_size - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(win_size))
        self.qkv = LinearProjection(dim, num_heads, dim // num_heads, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.softmax = nn.Softmax(dim=-1)
        self.relu = nn.ReLU()
        self.w = nn.Parameter(torch.ones(2))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x)
        q = q * self.scale
        attn = q @ k.transpose(-2, -1)
        n_win = self.win_size[0] * self.win_size[1]
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n_win, n_win, -1)
        attn = attn + bias.permute(2, 0, 1).contiguous().unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(b // nw, nw, self.num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, n, n)
        attn0 = self.softmax(attn)
        attn1 = self.relu(attn) ** 2
        ew = torch.exp(self.w)
        w1 = torch.exp(self.w[0]) / torch.sum(ew)
        w2 = torch.exp(self.w[1]) / torch.sum(ew)
        attn = attn0 * w1 + attn1 * w2
        x = (attn @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(x)


class FRFN(nn.Module):
    """Feature refinement FFN (paper Sec. 3.3; upstream ``FRFN``): a 3x3 conv on the first quarter of the channels
    (``partial_conv3``), ``linear1`` + GELU to 2 x hidden, a gate (depth-wise 3x3 conv + GELU on one half, times the
    other half), ``linear2``. Tokens ``[B, H*W, C]`` with the map's ``(H, W)`` -> ``[B, H*W, C]``."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.linear1 = nn.Sequential(nn.Linear(dim, hidden_dim * 2), nn.GELU())
        self.dwconv = nn.Sequential(nn.Conv2d(hidden_dim, hidden_dim, 3, 1, 1, groups=hidden_dim), nn.GELU())
        self.linear2 = nn.Sequential(nn.Linear(hidden_dim, dim))
        self.dim, self.hidden_dim = dim, hidden_dim
        self.dim_conv = dim // 4
        self.dim_untouched = dim - self.dim_conv
        self.partial_conv3 = nn.Conv2d(self.dim_conv, self.dim_conv, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, _, c = x.shape
        x = x.transpose(1, 2).reshape(b, c, h, w)
        x1, x2 = torch.split(x, [self.dim_conv, self.dim_untouched], dim=1)
        x = torch.cat((self.partial_conv3(x1), x2), 1).flatten(2).transpose(1, 2)
        x_1, x_2 = self.linear1(x).chunk(2, dim=-1)
        x_1 = self.dwconv(x_1.transpose(1, 2).reshape(b, self.hidden_dim, h, w)).flatten(2).transpose(1, 2)
        return self.linear2(x_1 * x_2)


def window_partition(x: torch.Tensor, win: int) -> torch.Tensor:
    """``[B, H, W, C]`` -> ``[B * H/win * W/win, win, win, C]``."""
    b, h, w, c = x.shape
    x = x.view(b, h // win, win, w // win, win, c)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, win, win, c)


def window_reverse(windows: torch.Tensor, win: int, h: int, w: int, b: int) -> torch.Tensor:
    """Inverse of :func:`window_partition` (the batch is given, not derived from the window count)."""
    x = windows.view(b, h // win, w // win, win, win, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(b, h, w, -1)


def shift_attn_mask(h: int, w: int, win: int, shift: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """SW-MSA mask ``[nW, win², win²]``: 0 within a region, -100 across (upstream's value). Regions are the three bands
    ``[0, H-win)``, ``[H-win, H-shift)``, ``[H-shift, H)`` per axis, computed from the shape."""
    ih = torch.arange(h, device=device)
    iw = torch.arange(w, device=device)
    rh = (ih >= h - win).long() + (ih >= h - shift).long()
    rw = (iw >= w - win).long() + (iw >= w - shift).long()
    region = (rh[:, None] * 3 + rw[None, :]).to(dtype).view(1, h, w, 1)
    m = window_partition(region, win).view(-1, win * win)
    diff = m.unsqueeze(1) - m.unsqueeze(2)
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


class TransformerBlock(nn.Module):
    """LayerNorm -> (shifted) window ASSA -> residual (``att=True``), then LayerNorm -> FRFN -> residual
    (upstream ``TransformerBlock``). Encoder blocks have no attention (``att=False``)."""

    def __init__(self, dim: int, input_resolution: int, num_heads: int, win_size: int = 8, shift_size: int = 0,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, token_mlp: str = "frfn", att: bool = True, hidden: int | None = None):
        super().__init__()
        self.att = att
        self.dim, self.num_heads = dim, num_heads
        self.win_size, self.shift_size = win_size, shift_size
        if input_resolution <= self.win_size:  # upstream: the window shrinks to the level's size and stops shifting
            self.shift_size = 0
            self.win_size = input_resolution
        if att:
            self.norm1 = nn.LayerNorm(dim)
            self.attn = WindowAttention_sparse(dim, self.win_size, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        if token_mlp not in TOKEN_MLPS:
            raise ValueError(f"token_mlp {token_mlp!r}: drsedge implements {TOKEN_MLPS} (official AST checkpoints)")
        self.mlp = FRFN(dim, hidden or int(dim * mlp_ratio))  # hidden: a pruned width (ASTConfig.frfn_hidden)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        if self.att:
            b, _, c = x.shape
            win, shift = self.win_size, self.shift_size
            shortcut = x
            y = self.norm1(x).view(b, h, w, c)
            if shift > 0:
                y = torch.roll(y, shifts=(-shift, -shift), dims=(1, 2))
            windows = window_partition(y, win).view(-1, win * win, c)
            mask = shift_attn_mask(h, w, win, shift, x.device, x.dtype) if shift > 0 else None
            y = window_reverse(self.attn(windows, mask).view(-1, win, win, c), win, h, w, b)
            if shift > 0:
                y = torch.roll(y, shifts=(shift, shift), dims=(1, 2))
            x = shortcut + y.view(b, h * w, c)
        return x + self.mlp(self.norm2(x), h, w)


class BasicASTLayer(nn.Module):
    """``depth`` blocks at one level; odd blocks shift by half a window (upstream ``BasicASTLayer``, ``shift_flag=True``)."""

    def __init__(self, dim: int, input_resolution: int, depth: int, num_heads: int, win_size: int, mlp_ratio: float,
                 qkv_bias: bool, token_mlp: str, att: bool, hidden: list[int | None] | None = None):
        super().__init__()
        self.blocks = nn.ModuleList([
            TransformerBlock(dim, input_resolution, num_heads, win_size, 0 if i % 2 == 0 else win_size // 2, mlp_ratio, qkv_bias,
                             token_mlp, att, (hidden or [None] * depth)[i]) for i in range(depth)])

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x, h, w)
        return x


class Downsample(nn.Module):
    """4x4 stride-2 conv on the token map: ``[B, H*W, C]`` -> ``[B, H/2*W/2, C']``."""

    def __init__(self, in_channel: int, out_channel: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_channel, out_channel, kernel_size=4, stride=2, padding=1))

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, _, c = x.shape
        return self.conv(x.transpose(1, 2).contiguous().view(b, c, h, w)).flatten(2).transpose(1, 2).contiguous()


class Upsample(nn.Module):
    """2x2 stride-2 transposed conv on the token map: ``[B, H*W, C]`` -> ``[B, 2H*2W, C']``."""

    def __init__(self, in_channel: int, out_channel: int):
        super().__init__()
        self.deconv = nn.Sequential(nn.ConvTranspose2d(in_channel, out_channel, kernel_size=2, stride=2))

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, _, c = x.shape
        return self.deconv(x.transpose(1, 2).contiguous().view(b, c, h, w)).flatten(2).transpose(1, 2).contiguous()


class InputProj(nn.Module):
    """3x3 conv + LeakyReLU: ``[B, 3, H, W]`` -> tokens ``[B, H*W, C]``."""

    def __init__(self, in_channel: int, out_channel: int):
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(in_channel, out_channel, 3, 1, 1), nn.LeakyReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2).contiguous()


class OutputProj(nn.Module):
    """3x3 conv: tokens ``[B, H*W, C]`` -> ``[B, 3, H, W]``."""

    def __init__(self, in_channel: int, out_channel: int):
        super().__init__()
        self.proj = nn.Sequential(nn.Conv2d(in_channel, out_channel, 3, 1, 1))

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, _, c = x.shape
        return self.proj(x.transpose(1, 2).reshape(b, c, h, w))


FAMILY = "ast"


@dataclass
class ASTConfig:
    """AST's constructor arguments (upstream ``AST.__init__``; ``token_projection='linear'``, ``token_mlp='frfn'``),
    stored as JSON in safetensors metadata (``"family": "ast"``) like the other families' configs. ``img_size`` is the
    construction size (it only clamps small levels' windows, as upstream); any H x W runs."""

    img_size: int = 256
    embed_dim: int = 32
    depths: list[int] = field(default_factory=lambda: [1, 2, 8, 8, 2, 8, 8, 2, 1])
    num_heads: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 16, 8, 4, 2])
    win_size: int = 8
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    token_mlp: str = "frfn"
    dd_in: int = 3
    frfn_hidden: dict[str, int] = field(default_factory=dict)  # per-block FRFN widths of pruned models ("conv.0": 96)
    family: str = FAMILY

    def build(self) -> AST:
        """Instantiate the model (random init)."""
        return AST(self)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> ASTConfig:
        """Build from a mapping; unknown keys or impossible values raise one-line :class:`DrsedgeError` naming ``source``."""
        from drsedge.errors import DrsedgeError

        from .config import checked_fields

        cfg = checked_fields(cls, d, source, "AST")
        bad = []
        if len(cfg.depths) != 9 or len(cfg.num_heads) != 9:
            bad.append("depths and num_heads need 9 entries (4 encoder levels, bottleneck, 4 decoder levels)")
        else:
            if any(not 0 <= x <= 64 for x in cfg.depths) or any(cfg.depths[i] < 1 for i in range(4, 9)):
                bad.append(f"depths {cfg.depths} must be in 0..64, bottleneck and decoder >= 1")
            widths = [cfg.embed_dim * 2 ** i for i in range(4)] + [cfg.embed_dim * 16] + [cfg.embed_dim * m for m in (16, 8, 4, 2)]
            if any(h < 1 or w % h for w, h in zip(widths, cfg.num_heads)):
                bad.append(f"num_heads {cfg.num_heads} must divide the level widths {widths}")
        if not 4 <= cfg.embed_dim <= 512:
            bad.append(f"embed_dim {cfg.embed_dim} must be in 4..512")
        if cfg.win_size not in (4, 8, 16) or cfg.img_size < 16 or cfg.img_size % 16:
            bad.append(f"win_size {cfg.win_size} must be 4, 8 or 16 and img_size {cfg.img_size} a multiple of 16")
        if cfg.token_mlp not in TOKEN_MLPS or cfg.dd_in != 3 or not 0 < cfg.mlp_ratio <= 16:
            bad.append(f"token_mlp must be one of {TOKEN_MLPS}, dd_in 3 and mlp_ratio in (0, 16]")
        if cfg.family != FAMILY:
            bad.append(f"family must be {FAMILY!r}")
        if bad:
            raise DrsedgeError(f"{source}: " + "; ".join(bad))
        return cfg


# Presets: AST-B as upstream's get_arch('AST_B') (65,362,455 params); AST-T embed 16, depths 2 x 9 (the constructor's
# default depths); ast-small the parity fixture's shape (../shared/fixtures/ast/config.json).
PRESETS = {
    "ast-b": ASTConfig(),
    "ast-t": ASTConfig(embed_dim=16, depths=[2] * 9),
    "ast-small": ASTConfig(img_size=64, embed_dim=8, depths=[1] * 9),
}


class AST(nn.Module):
    """The Adaptive Sparse Transformer: ``[B, 3, H, W]`` float in [0, 1] -> restored ``[B, 3, H, W]`` (any H, W; see the
    module docstring). Encoder levels 0-3: FRFN blocks without attention; bottleneck ``conv`` and decoder levels: ASSA +
    FRFN blocks on skip-concatenated tokens; output ``x + OutputProj(...)`` when ``dd_in == 3``."""

    def __init__(self, cfg: ASTConfig | None = None, **overrides):
        super().__init__()
        cfg = cfg or ASTConfig(**overrides)
        self.cfg = cfg
        self.img_size = (cfg.img_size, cfg.img_size)  # the default static export size
        d, dep, hd, s = cfg.embed_dim, cfg.depths, cfg.num_heads, cfg.img_size
        if len(dep) != 9 or len(hd) != 9:
            raise ValueError("AST needs 9 depths and 9 head counts (4 encoder levels, bottleneck, 4 decoder levels)")

        def layer(name, dim, level, i, att):
            widths = [cfg.frfn_hidden.get(f"{name}.{j}") for j in range(dep[i])]
            return BasicASTLayer(dim, s // 2 ** level, dep[i], hd[i], cfg.win_size, cfg.mlp_ratio, cfg.qkv_bias, cfg.token_mlp, att, widths)

        self.input_proj = InputProj(cfg.dd_in, d)
        self.output_proj = OutputProj(2 * d, 3)
        for i in range(4):
            setattr(self, f"encoderlayer_{i}", layer(f"encoderlayer_{i}", d * 2 ** i, i, i, False))
            setattr(self, f"dowsample_{i}", Downsample(d * 2 ** i, d * 2 ** (i + 1)))
        self.conv = layer("conv", d * 16, 4, 4, True)
        ups = [(16, 8), (16, 4), (8, 2), (4, 1)]
        for i, (cin, cout) in enumerate(ups):
            setattr(self, f"upsample_{i}", Upsample(d * cin, d * cout))
            setattr(self, f"decoderlayer_{i}", layer(f"decoderlayer_{i}", d * cout * 2, 3 - i, 5 + i, True))

    @property
    def size_multiple(self) -> int:
        """H and W must be multiples of this: per level ``l`` (stride ``2^l``), its window ``win_l`` must tile the map."""
        m = 1
        for level, layer in enumerate([*(getattr(self, f"encoderlayer_{i}") for i in range(4)), self.conv]):
            win = layer.blocks[0].win_size if len(layer.blocks) else 1
            m = math.lcm(m, (2 ** level) * (win if layer.blocks[0].att else 1))
        for i in range(4):
            layer = getattr(self, f"decoderlayer_{i}")
            if len(layer.blocks):
                m = math.lcm(m, 2 ** (3 - i) * layer.blocks[0].win_size)
        return math.lcm(m, 16)  # four stride-2 downsamplings

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, h0, w0 = x.shape
        m = self.size_multiple
        ph, pw = (-h0) % m, (-w0) % m
        xp = F.pad(x, (0, pw, 0, ph), mode="reflect") if (ph or pw) else x
        h, w = h0 + ph, w0 + pw
        y = self.input_proj(xp)
        skips = []
        for i in range(4):
            y = getattr(self, f"encoderlayer_{i}")(y, h >> i, w >> i)
            skips.append(y)
            y = getattr(self, f"dowsample_{i}")(y, h >> i, w >> i)
        y = self.conv(y, h >> 4, w >> 4)
        for i in range(4):
            y = getattr(self, f"upsample_{i}")(y, h >> (4 - i), w >> (4 - i))
            y = torch.cat([y, skips[3 - i]], -1)
            y = getattr(self, f"decoderlayer_{i}")(y, h >> (3 - i), w >> (3 - i))
        y = self.output_proj(y, h, w)
        out = xp + y if self.cfg.dd_in == 3 else y
        return out[:, :, :h0, :w0] if (ph or pw) else out


def ast_presets() -> dict:
    """``--preset`` names of the family (:data:`PRESETS`, AST-B the default) and ``student`` (AST-T)."""
    return {**PRESETS, "student": PRESETS["ast-t"]}


def build_ast(preset: str = "ast-b", **overrides) -> AST:
    """An AST of a preset (``ast-b``, ``ast-t``, ``ast-small``) with optional :class:`ASTConfig` overrides.

    Raises:
        ValueError: an unknown preset or field.
    """
    from dataclasses import asdict

    if preset not in PRESETS:
        raise ValueError(f"AST preset {preset!r}: use one of {sorted(PRESETS)}")
    return AST(ASTConfig(**{**asdict(PRESETS[preset]), **overrides}))


def unwrap_state_dict(obj) -> dict:
    """An upstream checkpoint (``torch.save({'epoch', 'state_dict', 'optimizer'})`` of ``train_derain.py``, possibly from
    ``nn.DataParallel`` with ``module.`` prefixes), a ``{'params': ...}`` / ``{'model': ...}`` wrapper or a bare state_dict
    -> the bare state_dict."""
    sd = obj
    for key in ("state_dict", "params", "params_ema", "model"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
            break
    if not isinstance(sd, dict):
        raise ValueError("not a state_dict")
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def config_from_state_dict(sd: dict) -> ASTConfig:
    """The :class:`ASTConfig` that builds a module whose state_dict has ``sd``'s keys and shapes: embed dim from
    ``input_proj``, depths from the block indices, heads from the relative-bias tables, and ``img_size`` from the
    smallest window (upstream clamps a level's window to its resolution at construction).

    Raises:
        ValueError: ``sd`` is not an AST state_dict.
    """
    if "input_proj.proj.0.weight" not in sd or "output_proj.proj.0.weight" not in sd:
        raise ValueError("not an AST state_dict (no input_proj / output_proj)")
    embed = int(sd["input_proj.proj.0.weight"].shape[0])
    dd_in = int(sd["input_proj.proj.0.weight"].shape[1])
    names = [f"encoderlayer_{i}" for i in range(4)] + ["conv"] + [f"decoderlayer_{i}" for i in range(4)]
    depths, heads, wins = [], [], {}
    defaults = ASTConfig().num_heads
    for level, name in enumerate(names):
        idx = {int(k.split(".")[2]) for k in sd if k.startswith(f"{name}.blocks.")}
        depths.append(max(idx) + 1 if idx else 0)
        table = sd.get(f"{name}.blocks.0.attn.relative_position_bias_table")
        heads.append(int(table.shape[1]) if table is not None else defaults[level])
        if table is not None:
            wins[name] = (math.isqrt(int(table.shape[0])) + 1) // 2
    win = max(wins.values()) if wins else 8
    widths = {"conv": embed * 16, **{f"encoderlayer_{i}": embed * 2 ** i for i in range(4)},
              **{f"decoderlayer_{i}": embed * m for i, m in enumerate((16, 8, 4, 2))}}
    frfn_hidden = {}
    for k, v in sd.items():
        parts = k.split(".")
        if len(parts) == 7 and parts[1] == "blocks" and parts[3:] == ["mlp", "linear2", "0", "weight"]:
            h = int(v.shape[1])
            if h != int(widths[parts[0]] * 4.0):
                frfn_hidden[f"{parts[0]}.{parts[2]}"] = h
    img = 256
    small = {n: w for n, w in wins.items() if w < win}
    if small:  # a clamped window: the level's resolution at construction equals it
        n, w = next(iter(small.items()))
        level = {"conv": 4, "decoderlayer_0": 3, "decoderlayer_1": 2, "decoderlayer_2": 1, "decoderlayer_3": 0}[n]
        img = w * 2 ** level
    return ASTConfig(img_size=img, embed_dim=embed, depths=depths, num_heads=heads, win_size=win, dd_in=dd_in, frfn_hidden=frfn_hidden)


def config_from_checkpoint(state: dict, source: str = "checkpoint") -> ASTConfig:
    """:func:`config_from_state_dict` for the checkpoint loader: one-line :class:`DrsedgeError` naming ``source``."""
    from drsedge.errors import DrsedgeError

    try:
        return ASTConfig.from_dict(config_from_state_dict(state).to_dict(), source)
    except (ValueError, KeyError, IndexError) as e:
        raise DrsedgeError(f"{source}: not an AST state_dict ({e})") from None
