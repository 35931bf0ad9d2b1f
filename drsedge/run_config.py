"""The run-config schema (``drsedge pipeline --config run.yaml``), checked with pydantic at every level.

Unknown keys (``ratioo``), wrong types (``steps: many``) and impossible numbers (``test_limit: -1``)
are refused in one line naming the file and the key path, before any stage runs. Model sections are
checked by :meth:`drsedge.models.config.ModelConfig.from_dict`, training sections by
:class:`drsedge.training.loop.TrainConfig`, so each rule lives in one place.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from drsedge.errors import DrsedgeError, unknown_keys

PosInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
PosFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Mult8 = Annotated[int, Field(gt=0, multiple_of=8, le=16384)]  # an image side in px (tools.args.MAX_SIDE)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_model(v: dict | None, where: str) -> dict | None:
    if v is None:
        return v
    from drsedge.models.config import ModelConfig, config_from_dict

    try:
        config_from_dict(v, where, {**ModelConfig().to_dict(), "mefc": False})
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
    preset: Literal["light", "medium", "heavy", "mixed", "raindrop", "rain+drop"] = "mixed"
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


class TeacherSection(_Strict):
    checkpoint: str | None = None
    model: dict | None = None
    train: dict | None = None

    _m = field_validator("model")(lambda v: _check_model(v, "teacher.model"))
    _t = field_validator("train")(lambda v: _check_train(v, "teacher.train"))


class StudentSection(_Strict):
    init: str | None = None  # warm start: a checkpoint or shipped:student (its config replaces student.model)
    model: dict | None = None
    distill: dict | None = None

    _m = field_validator("model")(lambda v: _check_model(v, "student.model"))
    _t = field_validator("distill")(lambda v: _check_train(v, "student.distill"))


class PruneSection(_Strict):
    enabled: bool = False
    ratio: Annotated[float, Field(gt=0, lt=1)] = 0.5
    importance: Literal["l1", "l2", "taylor"] = "l2"
    # None: the family's default, as `drsedge prune` (DRSformer msfn; UDR-S2Former mlp + mffn)
    scope: list[Literal["msfn", "attention", "heads", "streams", "mlp", "mffn"]] | None = None
    iterations: PosInt = 1
    finetune: dict | None = None

    _t = field_validator("finetune")(lambda v: _check_train(v, "prune.finetune"))


class ExportSection(_Strict):
    opset: Annotated[int, Field(ge=16)] = 17  # 16: UDR-S2Former for TensorRT 8.5 (DRSformer exports need 17)
    size: Annotated[list[Mult8], Field(min_length=2, max_length=2)] | None = None  # static-shape families: the ONNX's H, W
    exporter: Literal["torchscript", "dynamo"] = "torchscript"
    attention: Literal["native", "fused"] = "native"
    fp16_safe: bool = False
    structure: Literal["deploy", "upstream"] = "deploy"  # deploy: re-parameterized + folded (drsedge.models.reparam)
    fp16: bool = False  # also write the mixed-precision FP16 ONNX (precision in the graph, for strongly typed TensorRT)


class QuantizeSection(_Strict):
    backend: Literal["nncf", "ort", "modelopt"] = "nncf"
    high_precision: Literal["fp32", "fp16"] = "fp32"  # modelopt: float type of the unquantized part (fp16 for TensorRT)
    qat_steps: NonNegInt = 0  # > 0: quantization-aware fine-tuning (NNCF, distilled from the FP32 student) instead of PTQ
    qat_lr: PosFloat = 1e-5
    size: Mult8 = 128
    limit: PosInt = 32
    quantize_depthwise: bool = False
    keep_float: list[str] | None = None
    budget_db: NonNegFloat | None = None  # largest ΔPSNR-Y of INT8 vs FP32 against ground truth on data.validation
    min_fidelity_db: NonNegFloat | None = None  # floor on INT8-vs-FP32-output PSNR-Y, every data.validation image
    val_limit: PosInt = 4
    max_steps: NonNegInt = 4


class CheckSection(_Strict):
    tile: Mult8 | None = None
    latency_hw: Annotated[list[Mult8], Field(min_length=2, max_length=2)] = [256, 256]
    latency_runs: PosInt = 5
    budgets: dict[str, NonNegFloat] = {}

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


def validate_run_config(cfg: dict, source: str) -> dict:
    """Check a merged run config; returns it unchanged.

    Raises:
        DrsedgeError: ``source: key.path: what is wrong`` for the first problem found.
    """
    try:
        RunConfig.model_validate(cfg)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        for prefix in (f"{where}: ", f"{where}: {where}: "):
            msg = msg.removeprefix(prefix)
        got = "" if err["type"] in ("missing", "value_error") else f" (got {err.get('input')!r})"
        raise DrsedgeError(f"{source}: {where}: {msg}{got}") from None
    return cfg
