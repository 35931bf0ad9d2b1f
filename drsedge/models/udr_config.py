"""UDR-S2Former configuration: a plain dataclass that builds :class:`~drsedge.models.udr_s2former.UDRS2Former`,
stored as JSON in safetensors metadata (``"family": "udr_s2former"``) like :class:`~drsedge.models.config.ModelConfig`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from drsedge.errors import DrsedgeError

FAMILY = "udr_s2former"


@dataclass
class UDRConfig:
    """Constructor arguments of :class:`~drsedge.models.udr_s2former.UDRS2Former`.

    Defaults are upstream's only size (8,525,361 parameters, 20.41 GMACs at 256²). ``img_size`` is the size whose
    sampling coordinates are buffers; any multiple of 64 runs. ``rank_mode`` is ``"threshold"`` (TensorRT-buildable,
    same masks) or ``"topk"`` (upstream).
    """

    img_size: list[int] = field(default_factory=lambda: [256, 256])
    transformer_blocks: int = 8
    dim: list[int] = field(default_factory=lambda: [16, 32, 64, 128, 256])
    window_size: list[int] = field(default_factory=lambda: [8, 8, 8, 8])
    reconstruction_num: list[int] = field(default_factory=lambda: [3, 6, 7, 8])
    head: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    conv_num: list[int] = field(default_factory=lambda: [4, 6, 7, 8])
    expand_ratio: list[float] = field(default_factory=lambda: [2, 2, 2, 2])
    qkv_bias: bool = False
    rank_mode: str = "threshold"
    mlp_hidden: dict[str, int] = field(default_factory=dict)  # per-block decoder MLP widths of pruned models
    ffn_hidden: dict[str, int] = field(default_factory=dict)  # per-block latent MFFN widths of pruned models
    family: str = FAMILY

    def build(self):
        """Instantiate the model (random init)."""
        from .udr_s2former import UDRS2Former

        kw = {k: v for k, v in dataclasses.asdict(self).items() if k != "family"}
        kw["img_size"] = tuple(kw["img_size"])
        return UDRS2Former(**kw)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> UDRConfig:
        """Build from a mapping; unknown keys or impossible values raise one-line :class:`DrsedgeError` naming ``source``."""
        from .config import checked_fields

        cfg = checked_fields(cls, d, source, "UDR-S2Former")
        n = {"img_size": 2, "dim": 5, "head": 5, "window_size": 4, "reconstruction_num": 4, "conv_num": 4, "expand_ratio": 4}
        bad = [f"{k} needs {v} entries" for k, v in n.items() if len(getattr(cfg, k)) != v]
        if not bad:
            if any(s <= 0 or s % 64 for s in cfg.img_size):
                bad.append(f"img_size {cfg.img_size} must be positive multiples of 64")
            if any(ws != 8 for ws in cfg.window_size):
                bad.append(f"window_size {cfg.window_size}: only 8 is supported (sizes are multiples of 64 = 8 x 8)")
            if any(not 1 <= d <= 1024 for d in cfg.dim) or any(not 1 <= h <= 64 for h in cfg.head):
                bad.append(f"dim {cfg.dim} must be in 1..1024 and head {cfg.head} in 1..64")
            elif any(d % h for d, h in zip(cfg.dim, cfg.head)):
                bad.append(f"each dim {cfg.dim} must split into its heads {cfg.head}")
            if any(d % 8 for d in cfg.dim[:4]):
                bad.append(f"decoder widths {cfg.dim[:4]} must be multiples of 8 (Local_Reconstruction windows the "
                           "channel-first var map; upstream layout)")
            if cfg.dim[0] < 16:
                bad.append(f"dim[0] {cfg.dim[0]} must be >= 16 (the refinement's CA/SA layers reduce it by 16)")
            counts = [cfg.transformer_blocks, *cfg.reconstruction_num, *cfg.conv_num]
            if any(not 1 <= c <= 64 for c in counts):
                bad.append("transformer_blocks, reconstruction_num and conv_num must be in 1..64")
            if any(not 0 < e <= 16 for e in cfg.expand_ratio):
                bad.append(f"expand_ratio {cfg.expand_ratio} must be in (0, 16]")
            if cfg.rank_mode not in ("threshold", "topk"):
                bad.append(f"rank_mode must be 'threshold' or 'topk', got {cfg.rank_mode!r}")
            if cfg.family != FAMILY:
                bad.append(f"family must be {FAMILY!r}")
        if bad:
            raise DrsedgeError(f"{source}: " + "; ".join(bad))
        return cfg


def udr_small_config(**overrides) -> UDRConfig:
    """A small UDR-S2Former for CPU work (the upstream fixture's shape): dim 16/16/32/32/64, heads 1/1/2/2/4,
    2 latent blocks, reconstruction 1/1/2/2, one conv block per level: 414,472 parameters."""
    base = dict(dim=[16, 16, 32, 32, 64], head=[1, 1, 2, 2, 4], transformer_blocks=2, reconstruction_num=[1, 1, 2, 2],
                conv_num=[1, 1, 1, 1], expand_ratio=[2, 2, 2, 2], img_size=[64, 64])
    return UDRConfig.from_dict({**UDRConfig().to_dict(), **base, **overrides}, "UDR small config")


def is_udr_state(state: dict) -> bool:
    """True for a state_dict in UDR-S2Former's upstream layout."""
    return "embed.down.0.weight" in state and "latent.0.attn_nn.q.weight" in state


def udr_config_from_state_dict(state: dict[str, torch.Tensor], source: str = "checkpoint") -> UDRConfig:
    """Infer the constructor arguments of an upstream-layout UDR-S2Former state_dict.

    Widths come from the embed/down convs, counts from the block indices, decoder heads and the window from the
    relative-position tables; the latent's head count has no parameter of its own and is taken as twice level 3's
    (upstream's 1/2/4/8/16 pattern). Pruned MLP/MFFN widths go to ``mlp_hidden`` / ``ffn_hidden``.

    Raises:
        DrsedgeError: not a UDR-S2Former layout.
    """
    def count(prefix: str) -> int:
        return len({k[len(prefix):].split(".")[0] for k in state if k.startswith(prefix)})

    try:
        dim = [state["embed.down.0.weight"].shape[0]] + [state[f"down{i}.down.0.weight"].shape[0] for i in range(4)]
        head, window = [], []
        for i in range(4):
            t = state[f"decoder_level{i}.model.0.attn.relative_position_bias_table"]
            head.append(t.shape[1])
            window.append((int(round(t.shape[0] ** 0.5)) + 1) // 2)
        head.append(2 * head[3])
        expand = []
        for i in range(4):
            w0 = state[f"encoder_level{i}.0.model.0.conv.0.weight"]
            expand.append(w0.shape[0] / dim[i] if w0.shape[-1] == 1 else 1)
        expand = [int(e) if float(e).is_integer() else e for e in expand]
    except KeyError as e:
        raise DrsedgeError(f"{source}: not a UDR-S2Former state_dict (no key {e})") from None
    recon = [count(f"decoder_level{i}.model.") for i in range(4)]
    mlp_hidden = {f"decoder_level{i}.{j}": state[f"decoder_level{i}.model.{j}.mlp.fc1.weight"].shape[0]
                  for i in range(4) for j in range(recon[i])
                  if state[f"decoder_level{i}.model.{j}.mlp.fc1.weight"].shape[0] != 4 * dim[i]}
    blocks = count("latent.")
    ffn_hidden = {f"latent.{j}": state[f"latent.{j}.ffn.conv1.weight"].shape[0] for j in range(blocks)
                  if state[f"latent.{j}.ffn.conv1.weight"].shape[0] != 2 * dim[4]}
    return UDRConfig.from_dict(dict(
        img_size=[256, 256], transformer_blocks=blocks, dim=dim, window_size=window, reconstruction_num=recon, head=head,
        conv_num=[count(f"encoder_level{i}.0.model.") for i in range(4)], expand_ratio=expand,
        qkv_bias="latent.0.attn_nn.q.bias" in state, mlp_hidden=mlp_hidden, ffn_hidden=ffn_hidden), source)


def udr_presets() -> dict:
    """``--preset`` names of the family: upstream's size (the default) and the fixture-shaped small model (also the student)."""
    return {"udr-s2former": UDRConfig(), "udr-small": udr_small_config(), "student": udr_small_config()}
