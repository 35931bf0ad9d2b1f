"""Model configuration: a plain dataclass that builds a DRSformer-family model.

Teacher and student share it; it is stored as JSON inside safetensors
metadata so a checkpoint rebuilds its own model without pickles.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from drsedge.errors import DrsedgeError, unknown_keys

from .drsformer import ATTENTION_KINDS, DRSformer


@dataclass
class ModelConfig:
    """Constructor arguments of :class:`~drsedge.models.drsformer.DRSformer`.

    Defaults are the paper's full model (dim 48, blocks 4/6/6/8, heads
    1/2/4/8, FFN factor 2.66, MEFC on): 33,655,424 parameters.
    """

    inp_channels: int = 3
    out_channels: int = 3
    dim: int = 48
    num_blocks: list[int] = field(default_factory=lambda: [4, 6, 6, 8])
    heads: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    ffn_expansion_factor: float = 2.66
    bias: bool = False
    LayerNorm_type: str = "WithBias"
    mefc: bool = True
    attention: str = "topk"
    ffn_hidden: dict[str, int] = field(default_factory=dict)  # per-block MSFN widths of pruned models
    attn_inner: dict[str, int] = field(default_factory=dict)  # per-block q/k/v widths of pruned models
    attn_heads: dict[str, int] = field(default_factory=dict)  # per-block head counts of head-pruned models
    stream_widths: dict[str, int] = field(default_factory=dict)  # residual-stream widths of pruned models (see stream_widths_of)
    depths: dict[str, int] = field(default_factory=dict)  # blocks per stage of depth-pruned models (see stage_depths)

    def build(self) -> DRSformer:
        """Instantiate the model (random init)."""
        return DRSformer(**dataclasses.asdict(self))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> ModelConfig:
        """Build from a mapping; unknown keys or bad values raise :class:`DrsedgeError` naming ``source``."""
        cfg = checked_fields(cls, d, source, "model")
        if cfg.dim < 1 or any(b < 1 for b in cfg.num_blocks) or len(cfg.num_blocks) != 4 or len(cfg.heads) != 4 or cfg.ffn_expansion_factor <= 0:
            raise DrsedgeError(f"{source}: dim, 4 block counts and 4 head counts must be positive, ffn_expansion_factor > 0 "
                               f"(got dim {cfg.dim}, num_blocks {cfg.num_blocks}, heads {cfg.heads})")
        if cfg.dim > 1024 or max(cfg.num_blocks) > 64 or max(cfg.heads) > 256 or cfg.ffn_expansion_factor > 16:
            # checked before the model is built: a typo (dim: 100000) must not ask the allocator for gigabytes
            raise DrsedgeError(f"{source}: dim <= 1024, block counts <= 64, heads <= 256, ffn_expansion_factor <= 16 "
                               f"(got dim {cfg.dim}, num_blocks {cfg.num_blocks}, heads {cfg.heads}, "
                               f"ffn_expansion_factor {cfg.ffn_expansion_factor}); the paper's teacher is dim 48")
        if any(h < 1 for h in cfg.heads):
            raise DrsedgeError(f"{source}: head counts must be >= 1, got {cfg.heads}")
        from .drsformer import BLOCK_STAGES

        bad = {k: v for k, v in cfg.depths.items() if k not in BLOCK_STAGES or not 1 <= v <= cfg.num_blocks[BLOCK_STAGES[k]]}
        if bad:
            raise DrsedgeError(f"{source}: depths {bad}: each names a stage of {list(BLOCK_STAGES)} and keeps 1..num_blocks of "
                               "its level blocks")
        if cfg.attention not in ATTENTION_KINDS:
            raise DrsedgeError(f"{source}: attention must be one of {ATTENTION_KINDS}, got {cfg.attention!r}")
        if cfg.stream_widths:
            from .drsformer import stream_widths_of

            try:
                w = stream_widths_of(cfg.dim, cfg.stream_widths)
            except ValueError as e:
                raise DrsedgeError(f"{source}: {e}") from None
            if cfg.mefc:
                raise DrsedgeError(f"{source}: stream_widths (residual-stream pruning) needs mefc: false")
            bad = [k for k in ("encoder_level2", "encoder_level3", "latent") if w[k] % 4 or w[k] <= 0]
            if bad or min(w.values()) <= 0:
                raise DrsedgeError(f"{source}: stream widths must be positive, and multiples of 4 after a Downsample ({bad})")
        for lvl, h in enumerate(cfg.heads):
            width = cfg.dim * 2**lvl
            if width % h or width // h < 2:
                raise DrsedgeError(f"{source}: level {lvl + 1} width {width} cannot be split into {h} heads of >= 2 channels")
        return cfg


def checked_fields(cls, d: dict, source: str, what: str):
    """``cls(**d)`` for a config dataclass, refusing unknown keys (naming the valid ones) and wrong types in one line.

    Raises:
        DrsedgeError: ``source: unknown <what> option(s) [...]; valid: [...]`` or a type error naming the field.
    """
    unknown, names = unknown_keys(cls, d)
    if unknown:
        raise DrsedgeError(f"{source}: unknown {what} option(s) {unknown}; valid: {names}")
    return _validate_types(cls, d, source)


def _validate_types(cls, d: dict, source: str):
    """Type-check ``d`` against the dataclass annotations with pydantic (lax: "16" -> 16), one line on error."""
    import pydantic

    try:
        return pydantic.TypeAdapter(cls).validate_python(d)
    except pydantic.ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise DrsedgeError(f"{source}: model option {where}: {err['msg']} (got {err.get('input')!r})") from None


def teacher_config(**overrides) -> ModelConfig:
    """The paper's DRSformer (MEFC on unless ``mefc=False``), with optional overrides."""
    return ModelConfig.from_dict({**ModelConfig().to_dict(), **overrides}, "teacher config")


def student_config(**overrides) -> ModelConfig:
    """A compact DRSformer-family student: dim 16, blocks 1/2/2/2, heads 1/2/4/8, FFN 2.0, no MEFC, TKSA."""
    base = dict(dim=16, num_blocks=[1, 2, 2, 2], heads=[1, 2, 4, 8], ffn_expansion_factor=2.0, mefc=False, attention="topk")
    return ModelConfig.from_dict({**ModelConfig().to_dict(), **base, **overrides}, "student config")


def config_from_dict(d: dict | None, source: str, base: dict | None = None):
    """A model section of a run config or ``--model`` flags -> :class:`ModelConfig` (DRSformer family, on top of
    ``base``) or, with ``family: udr_s2former``, a :class:`~drsedge.models.udr_config.UDRConfig` (on top of
    upstream's defaults). Raises :class:`DrsedgeError` naming ``source``."""
    from .family import FAMILIES

    d = dict(d or {})
    if "family" in d and d["family"] not in FAMILIES:
        raise DrsedgeError(f"{source}: family must be one of {sorted(FAMILIES)}, got {d['family']!r}")
    if d.get("family", "drsformer") != "drsformer":
        return FAMILIES[d["family"]].config_from_dict(d, source)
    d.pop("family", None)
    return ModelConfig.from_dict({**(base or ModelConfig().to_dict()), **d}, source)


def is_static_config(cfg) -> bool:
    """True for a family exported at one static size (UDR-S2Former; :func:`drsedge.export.onnx_export.is_static_family`
    for a built model)."""
    from .family import family_of_config

    return family_of_config(cfg).static_export


def require_drsformer(cfg, what: str, source: str) -> None:
    """Refuse, in one line, a stage that covers the DRSformer family only (QAT) for another family.

    Raises:
        DrsedgeError: ``cfg`` is not a :class:`ModelConfig`.
    """
    from .family import family_of_config

    fam = family_of_config(cfg)
    if not fam.tksa:
        raise DrsedgeError(f"{source}: {what} covers the DRSformer family; this is a {fam.label} model (every other stage "
                           "works, PTQ with `drsedge quantize`; QAT does not yet)")
