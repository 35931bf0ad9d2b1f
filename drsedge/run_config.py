"""The run-config schema (``drsedge pipeline --config run.yaml``), checked with pydantic at every level.

Each section is the one options type of its stage (:mod:`drsedge.stages`): the pipeline passes the section, the CLI
builds the same type from its flags (:func:`make_options`), and the flags take their choices and defaults from it
(:func:`cli_choice`), so every choice list and default is written here once.

Unknown keys (``ratioo``), wrong types (``steps: many``) and impossible numbers (``test_limit: -1``)
are refused in one line naming the file and the key path, before any stage runs. Model sections are
checked by :meth:`drsedge.models.config.ModelConfig.from_dict`, training sections by
:class:`drsedge.training.loop.TrainConfig`, so each rule lives in one place.
"""

from __future__ import annotations

import copy
import os
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from drsedge import choices
from drsedge.deploy_defaults import OPSET, OPSET_MIN_STATIC
from drsedge.errors import DrsedgeError, first_line, unknown_keys

DEMO_CONFIG = Path(__file__).parent / "configs" / "demo.yaml"  # the demo's run config (an ordinary, complete one)

PosInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
PosFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Mult8 = Annotated[int, Field(gt=0, multiple_of=8, le=16384)]  # an image side in px (tools.args.MAX_SIDE)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_model(v: dict | None, where: str) -> dict | None:
    if v is None:
        return v
    from drsedge.models.config import config_from_dict
    from drsedge.models.family import student_from_dict

    try:  # the rule the stage itself applies (a student on its family's default student, a teacher on the full model)
        student_from_dict(v, where) if where == "student.model" else config_from_dict(v, where)
    except DrsedgeError as e:
        raise ValueError(str(e)) from None
    return v


def _check_train(v: dict | None, where: str) -> dict | None:
    if v is None:
        return v
    from drsedge.training.loop import TrainConfig

    unknown, names = unknown_keys(TrainConfig, v)
    if unknown:
        raise ValueError(f"unknown training option(s) {unknown}; valid: {names}")
    try:
        TrainConfig.from_dict(v, where)
    except DrsedgeError as e:
        raise ValueError(str(e)) from None
    return v


class SyntheticSection(_Strict):
    clean: list[str]
    preset: Literal[choices.SYNTH_PRESETS] = "mixed"
    per_image: PosInt = 1
    seed: NonNegInt = 0
    limit: PosInt | None = None


class DataSection(_Strict):
    root: str | None = None
    train: list[str]
    synthetic: SyntheticSection | None = None
    unlabeled: list[str] | None = None
    calibration: list[str]
    validation: str | None = None
    test: str
    test_limit: PosInt | None = None
    skip_held_out_copies: bool = False  # leave out files that copy a held-out image (one line each) instead of refusing


class TeacherSection(_Strict):
    checkpoint: str | None = None
    model: dict | None = None
    train: dict | None = None

    _m = field_validator("model")(lambda v: _check_model(v, "teacher.model"))
    _t = field_validator("train")(lambda v: _check_train(v, "teacher.train"))


class PruneTeacherInit(_Strict):
    """``student.init: {prune_teacher: {...}}``: the student starts as the teacher pruned to ``target_gmacs`` at ``size``."""

    target_gmacs: PosFloat
    size: Annotated[list[Annotated[int, Field(gt=0, le=16384)]], Field(min_length=2, max_length=2)] = [256, 256]
    scope: list[Literal[choices.DRSFORMER_PRUNE_SCOPES]] = ["depth", "msfn", "heads", "streams"]
    importance: Literal[choices.WIDTH_IMPORTANCES] = "l2"  # widths by magnitude; depth by the measured output change (training crops)


class InitFromPrunedTeacher(_Strict):
    prune_teacher: PruneTeacherInit


class StudentSection(_Strict):
    # warm start: a checkpoint or shipped:student (its config replaces student.model), or the teacher pruned to a size
    init: str | InitFromPrunedTeacher | None = None
    model: dict | None = None
    distill: dict | None = None

    _m = field_validator("model")(lambda v: _check_model(v, "student.model"))
    _t = field_validator("distill")(lambda v: _check_train(v, "student.distill"))


class PruneSection(_Strict):
    enabled: bool = False
    ratio: Annotated[float, Field(gt=0, lt=1)] = 0.5
    importance: Literal[choices.PRUNE_IMPORTANCES] = "l2"
    # None: the family's default, as `drsedge prune` (DRSformer msfn; UDR-S2Former mlp + mffn; AST frfn)
    scope: list[Literal[choices.PRUNE_SCOPES]] | None = None
    iterations: PosInt = 1
    finetune: dict | None = None

    _t = field_validator("finetune")(lambda v: _check_train(v, "prune.finetune"))


class ExportSection(_Strict):
    opset: Annotated[int, Field(ge=OPSET_MIN_STATIC)] = OPSET  # 16: UDR-S2Former for TensorRT 8.5 (DRSformer exports need 17)
    # static-shape families: the ONNX's H, W (UDR-S2Former: multiples of 64, checked by the export)
    size: Annotated[list[Annotated[int, Field(gt=0, le=16384)]], Field(min_length=2, max_length=2)] | None = None
    exporter: Literal[choices.EXPORTERS] = "torchscript"
    attention: Literal[choices.ATTENTION_EXPORTS] = "native"
    fp16_safe: bool = False
    structure: Literal[choices.STRUCTURES] = "deploy"  # deploy: re-parameterized + folded (drsedge.models.reparam)
    fp16: bool = False  # also write the mixed-precision FP16 ONNX (precision in the graph, for strongly typed TensorRT)
    fp16_frames: PosInt = 4  # with fp16: real frames that find the FP32 islands


class QuantizeSection(_Strict):
    backend: Literal[choices.QUANT_BACKENDS] = "nncf"
    high_precision: Literal[choices.HIGH_PRECISIONS] = "fp32"  # modelopt: float type of the unquantized part (fp16 for TensorRT)
    qat_steps: NonNegInt = 0  # > 0: quantization-aware fine-tuning (NNCF, distilled from the FP32 student) instead of PTQ
    qat_lr: PosFloat = 1e-5
    size: Mult8 = 128
    limit: PosInt = 32
    quantize_depthwise: bool = False
    keep_float: list[str] | None = None
    budget_db: NonNegFloat | None = None  # largest ΔPSNR-Y of INT8 vs FP32 against ground truth on data.validation
    min_fidelity_db: NonNegFloat | None = None  # floor on INT8-vs-FP32-output PSNR-Y, every data.validation image
    qat_batch_size: PosInt = 4
    qat_patch: Mult8 = 64
    val_limit: PosInt = 4
    max_steps: NonNegInt = 4  # keep-float units the budget search may add
    candidates: PosInt = 3  # units quantized and measured per keep-float step
    granularity: Literal[choices.KEEP_FLOAT_UNITS] = "stage"  # keep-float unit: a top-level stage or a single module

    @model_validator(mode="after")
    def _backend_takes_it(self) -> QuantizeSection:
        if self.high_precision != "fp32" and self.backend != "modelopt":  # nncf and ort write FP32 around the Q/DQ
            raise ValueError(f"high_precision {self.high_precision} (--high-precision) is a modelopt option; the {self.backend} backend keeps the "
                             "unquantized part in FP32: drop it, or use backend modelopt")
        if self.qat_steps:  # QAT is NNCF's fake quantizers on the PyTorch student (stages/quantize._qat): nothing else applies
            ignored = [n for n, bad in (("backend " + self.backend, self.backend != "nncf"), ("budget_db", self.budget_db is not None),
                                        ("min_fidelity_db", self.min_fidelity_db is not None), ("keep_float", bool(self.keep_float)),
                                        ("quantize_depthwise", self.quantize_depthwise)) if bad]
            if ignored:
                raise ValueError(f"qat_steps {self.qat_steps}: quantization-aware training (NNCF) does not take {', '.join(ignored)}; "
                                 "drop them, or set qat_steps 0 for post-training quantization")
        return self


class CheckSection(_Strict):
    tile: Mult8 | None = None
    latency_hw: Annotated[list[Mult8], Field(min_length=2, max_length=2)] = [256, 256]
    latency_runs: PosInt = 5
    # stage -> largest PSNR drop in dB vs the stage it came from; a negative budget demands a gain
    budgets: dict[str, FiniteFloat] = {}

    @field_validator("latency_hw")
    @classmethod
    def _frame(cls, v: list[int]) -> list[int]:
        from drsedge.data.images import MAX_PIXELS

        if v[0] * v[1] > MAX_PIXELS:
            raise ValueError(f"{v[0]}x{v[1]} is over the {MAX_PIXELS // 1_000_000} MP frame limit")
        return v


class RunConfig(_Strict):
    run_dir: str
    seed: NonNegInt = 0
    data: DataSection
    teacher: TeacherSection
    student: StudentSection
    prune: PruneSection = PruneSection()
    export: ExportSection = ExportSection()
    quantize: QuantizeSection = QuantizeSection()
    check: CheckSection = CheckSection()


def _one_line(e: ValidationError, source: str, flags: dict[str, str] | None = None) -> DrsedgeError:
    err = e.errors()[0]
    where = ".".join(str(x) for x in err["loc"]) or "(top level)"
    if flags is not None and err["loc"]:
        name = str(err["loc"][0])
        where = flags.get(name, "--" + name.replace("_", "-"))
    msg = err["msg"].removeprefix("Value error, ")
    for prefix in (f"{where}: ", f"{where}: {where}: "):
        msg = msg.removeprefix(prefix)
    got = "" if err["type"] in ("missing", "value_error") else f" (got {err.get('input')!r})"
    if flags is not None and not err["loc"]:  # a rule across fields (a model validator) names its fields itself
        return DrsedgeError(f"{source}: {msg}{got}")
    return DrsedgeError(f"{source}: {where}: {msg}{got}")


def validate_run_config(cfg: dict, source: str) -> RunConfig:
    """Check a merged run config; returns the typed :class:`RunConfig`.

    Raises:
        DrsedgeError: ``source: key.path: what is wrong`` for the first problem found.
    """
    try:
        return RunConfig.model_validate(cfg)
    except ValidationError as e:
        raise _one_line(e, source) from None


S = typing.TypeVar("S", bound=BaseModel)


def make_options(section: type[S], source: str, flags: dict[str, str] | None = None, **values: Any) -> S:
    """A stage's options from CLI flags (``None`` = the section's default), checked by the same rules as the run config.

    ``flags``: field -> the flag that sets it, where it is not ``--`` + the field with dashes (``latency_hw``:
    ``--latency-size``).

    Raises:
        DrsedgeError: ``source: --flag: what is wrong``.
    """
    try:
        return section.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as e:
        raise _one_line(e, source, flags or {}) from None


def literal_choices(section: type[BaseModel], name: str) -> tuple:
    """The ``Literal`` values of a field (through ``list[...]`` and ``| None``), e.g. ``("nncf", "ort", "modelopt")``."""
    tp = section.model_fields[name].annotation
    while typing.get_origin(tp) in (list, typing.Union, types.UnionType):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    return typing.get_args(tp) if typing.get_origin(tp) is Literal else ()


def cli_choice(section: type[BaseModel], name: str) -> dict:
    """``add_argument`` keywords of a flag that sets ``section.name``: its choices (when a ``Literal``) and default."""
    out: dict = {"default": section.model_fields[name].default}
    if literal_choices(section, name):
        out["choices"] = literal_choices(section, name)
    return out


def load_run_config(path: str | os.PathLike, overrides: dict | None = None) -> RunConfig:
    """Read a run YAML, apply ``overrides`` (nested dict) and validate it. A config stands alone (the schema's
    defaults fill what it leaves out) unless it names a base with ``extends:`` (a shipped config's name, ``demo``, or
    a path relative to it): then it is merged over that base, one level deep, key by key. Where the config's
    ``teacher.model`` / ``student.model`` names another family than the base's, the base's model keys and weights
    (``teacher.checkpoint``, ``student.init``) of that section do not apply.

    Raises:
        DrsedgeError: missing or unparsable YAML, unknown section, a base that is missing or extends another, any
            schema violation (one line with the key path).
    """
    path = Path(path)
    user = _read_yaml(path, "run config")
    base = None
    if "extends" in user:
        ext = user.pop("extends")
        if not isinstance(ext, str) or not ext:
            raise DrsedgeError(f"{path}: extends: give a shipped config's name ({', '.join(shipped_configs())}) or a YAML path")
        bpath = SHIPPED_CONFIGS / f"{ext}.yaml" if ext in shipped_configs() else (path.parent / ext)
        base = _read_yaml(bpath, f"base config (extends: {ext})")
        if "extends" in base:
            raise DrsedgeError(f"{bpath}: a base config may not extend another (extends is one level deep)")
    cfg = _merge(_merge(base or {}, user), overrides or {})
    for section, weights in (("teacher", "checkpoint"), ("student", "init")) if base else ():
        # another model family than the base's: the base's model keys and weights do not apply
        mine = {**((user.get(section) or {}) if isinstance(user.get(section), dict) else {}), **((overrides or {}).get(section) or {})}
        model = mine.get("model") if isinstance(mine.get("model"), dict) else {}
        theirs = (base.get(section) or {}) if isinstance(base.get(section), dict) else {}
        theirs = (theirs.get("model") or {}) if isinstance(theirs.get("model"), dict) else {}
        if model.get("family", "drsformer") != theirs.get("family", "drsformer") and isinstance(cfg.get(section), dict):
            cfg[section]["model"] = copy.deepcopy(model)
            if weights not in mine:
                cfg[section][weights] = None
    return validate_run_config(cfg, str(path))


SHIPPED_CONFIGS = Path(__file__).parent / "configs"


def shipped_configs() -> list[str]:
    """Names of the run configs shipped in ``drsedge/configs`` (``demo``, ``udr_raindrop``, ...)."""
    return sorted(p.stem for p in SHIPPED_CONFIGS.glob("*.yaml"))


def _read_yaml(path: Path, what: str) -> dict:
    try:
        d = yaml.safe_load(path.read_text())
    except (FileNotFoundError, IsADirectoryError):
        raise DrsedgeError(f"{path}: {what} not found") from None
    except OSError as e:  # unreadable (permissions, I/O)
        raise DrsedgeError(f"{path}: cannot read the {what} ({e.strerror or e})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise DrsedgeError(f"{path}: not valid YAML ({first_line(e)})") from None
    d = {} if d is None else d
    if not isinstance(d, dict):
        raise DrsedgeError(f"{path}: a run config is a YAML mapping of sections ({sorted(RunConfig.model_fields)}), not {type(d).__name__}")
    unknown = sorted(set(d) - set(RunConfig.model_fields) - {"extends"})
    if unknown:
        raise DrsedgeError(f"{path}: unknown section(s) {unknown}; valid: {sorted(RunConfig.model_fields)} (and extends)")
    return d


def _merge(a: dict, b: dict) -> dict:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def default_data_root() -> Path | None:
    """``../shared/data`` next to the working directory or the repository, if present."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        cand = (base / ".." / "shared" / "data").resolve()
        if cand.is_dir():
            return cand
    return None
