"""The model families, one registry entry each: what every stage asks about a model's family goes through here.

An entry names the family's config type and module (imported lazily), how to recognise and read an upstream
state_dict, the export form (dynamic H/W, or one static size per engine with a size multiple), the parity rule of its
ONNX export, what INT8 keeps in float, the prune scopes, and whether it has TKSA (the fused top-k op, the FP16-safe
form) and QAT. Adding a family is one entry here plus its model file (``docs/families.md``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from drsedge.choices import DRSFORMER_PRUNE_SCOPES
from drsedge.errors import DrsedgeError


def _load(dotted: str):
    module, _, attr = dotted.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Family:
    """One model family (see the module docstring)."""

    name: str  # the run config's ``family:`` value and the ONNX metadata ``drsedge.family``
    label: str  # for messages
    config: str  # "module:Class" of the config dataclass (to_dict / from_dict / build)
    module: str  # "module:Class" of the nn.Module
    state_keys: tuple[str, ...]  # keys that identify an upstream-layout state_dict
    config_from_state: str  # "module:function" (state_dict, source) -> config
    static_export: bool  # exported at one static [1, 3, H, W] (the runtime tiles other sizes)
    size_multiple: int  # H, W multiple of a static export (8 for dynamic families: the runtime pads to it)
    parity: str  # "max_abs" (<= 1e-4) or "mean_psnr" (discontinuous masks flip on float noise)
    tksa: bool  # top-k self-attention: fused op, FP16-safe export, QAT
    prune_scopes: tuple[str, ...]  # empty: no structural pruning
    default_prune_scopes: tuple[str, ...]
    int8_float_modules: tuple[str, ...]  # module-path fragments whose ONNX nodes INT8 leaves in float
    output_conv: str | None  # the last conv, zero-initialised when training from scratch (None: none)
    fp16_float_casts: bool = False  # its Cast(to=FLOAT) nodes stay FP32 islands in the FP16 ONNX (export/fp16.py)
    slicer: str | None = None  # "module:function" (model, config, ratio, importance, scopes) -> (model, config): the pruner
    presets: str | None = None  # "module:function" () -> {--preset name: config}; the first is the default, "student" a small one
    macs_target: bool = False  # the pruner can search a ratio for a MACs target (--target-gmacs; compress/prune.ratio_for_macs)
    student: str | None = None  # "module:function" () -> the default student's config (None: the "student" preset, else the config's defaults)

    def config_type(self) -> type:
        return _load(self.config)

    def module_type(self) -> type:
        return _load(self.module)

    def config_from_dict(self, d: dict, source: str):
        cls = self.config_type()
        return cls.from_dict({**cls().to_dict(), **d}, source)

    def config_from_state_dict(self, state: dict, source: str):
        return _load(self.config_from_state)(state, source)

    def preset_configs(self) -> dict:
        """``{--preset name: config}`` (empty for a family whose presets live elsewhere: DRSformer's in ``tools/args``)."""
        return _load(self.presets)() if self.presets else {}

    def default_student(self):
        """The config a student of this family gets when a run config or ``--model`` says nothing else."""
        if self.student:
            return _load(self.student)()
        return self.preset_configs().get("student") or self.config_type()()

    def prune_function(self):
        """The family's pruner (:attr:`slicer`); None when it has no structural pruning."""
        return _load(self.slicer) if self.slicer else None


FAMILIES: dict[str, Family] = {}


def register(f: Family) -> Family:
    """Add ``f`` to :data:`FAMILIES` (its name must be new)."""
    if f.name in FAMILIES:
        raise ValueError(f"family {f.name!r} is already registered")
    FAMILIES[f.name] = f
    return f


register(Family(
    name="drsformer", label="DRSformer", config="drsedge.models.config:ModelConfig", module="drsedge.models.drsformer:DRSformer",
    state_keys=("patch_embed.proj.weight",), config_from_state="drsedge.models.checkpoint:config_from_state_dict",
    static_export=False, size_multiple=8, parity="max_abs", tksa=True,
    prune_scopes=DRSFORMER_PRUNE_SCOPES, default_prune_scopes=("msfn",), int8_float_modules=(),
    output_conv="output", slicer="drsedge.compress.prune:prune_model", macs_target=True, student="drsedge.models.config:student_config"))
register(Family(
    name="udr_s2former", label="UDR-S2Former", config="drsedge.models.udr_config:UDRConfig",
    module="drsedge.models.udr_s2former:UDRS2Former", state_keys=("embed.down.0.weight", "latent.0.attn_nn.q.weight"),
    config_from_state="drsedge.models.udr_config:udr_config_from_state_dict", static_export=True, size_multiple=64,
    parity="mean_psnr", tksa=False, prune_scopes=("mlp", "mffn"), default_prune_scopes=("mlp", "mffn"),
    # the rank path and the offset/scale predictors stay float (../shared/notes/udr-s2former.md §7)
    int8_float_modules=("var_conv", "sampling_biases", "sampling_scales"), output_conv="out_final", fp16_float_casts=True, presets="drsedge.models.udr_config:udr_presets",
    slicer="drsedge.compress.prune_udr:prune_udr"))
register(Family(
    name="ast", label="AST", config="drsedge.models.ast:ASTConfig", module="drsedge.models.ast:AST",
    state_keys=("input_proj.proj.0.weight", "output_proj.proj.0.weight"), config_from_state="drsedge.models.ast:config_from_checkpoint",
    static_export=True, size_multiple=64, parity="max_abs", tksa=False, prune_scopes=("frfn",), default_prune_scopes=("frfn",),
    # ASSA (q/k/v, relative bias, the softmax and relu² branches and their mixing) stays float: the unnormalised relu²
    # branch squares raw logits, and the mixing weights are two scalars per block
    int8_float_modules=("attn",), output_conv="output_proj.proj.0", slicer="drsedge.compress.prune_ast:prune_ast",
    presets="drsedge.models.ast:ast_presets"))


def family_named(name: str) -> Family:
    """The entry for ``name``.

    Raises:
        DrsedgeError: an unknown family (the message lists the known ones).
    """
    if name not in FAMILIES:
        raise DrsedgeError(f"family {name!r}: use one of {sorted(FAMILIES)}")
    return FAMILIES[name]


def student_from_dict(d: dict | None, source: str):
    """A student's model options (a run config's ``student.model`` or ``drsedge distill --model`` flags) -> its config:
    the family's :meth:`Family.default_student` with ``d``'s keys on top. The one rule both doors use, so the CLI and
    the pipeline build the same student for the same options (``tests/test_cli_config_agree.py``).

    Raises:
        DrsedgeError: an unknown family or field, or a bad value, naming ``source``.
    """
    d = dict(d or {})
    name = d.pop("family", "drsformer")
    if not isinstance(name, str) or name not in FAMILIES:
        raise DrsedgeError(f"{source}: family must be one of {sorted(FAMILIES)}, got {name!r}")
    base = FAMILIES[name].default_student()
    return type(base).from_dict({**base.to_dict(), **d}, source)


def family_of_config(cfg) -> Family:
    """The family of a config object (``cfg.family``; the DRSformer config has none)."""
    return family_named(getattr(cfg, "family", None) or "drsformer")


def family_of_model(model) -> Family | None:
    """The family whose module class ``model`` is (None for a module of no family, e.g. a deploy copy's parts)."""
    for f in FAMILIES.values():
        if isinstance(model, f.module_type()):
            return f
    return None


def family_of_onnx(model) -> Family | None:
    """The family an exported ONNX ``model`` records in its metadata ``drsedge.family`` (static-shape families write it;
    None when absent: a DRSformer export or a foreign file)."""
    name = next((p.value for p in model.metadata_props if p.key == "drsedge.family"), None)
    return FAMILIES.get(name) if name else None


def family_of_state(state: dict) -> Family | None:
    """The family whose upstream keys ``state`` holds (None when none matches)."""
    for f in FAMILIES.values():
        if all(k in state for k in f.state_keys):
            return f
    return None
