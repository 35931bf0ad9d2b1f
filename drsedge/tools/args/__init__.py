"""Shared argument groups, argument types and helpers of the drsedge subcommands (each rule defined once)."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from drsedge.errors import DrsedgeError

PRESETS = ("drsformer", "drsformer-nomefc", "drsformer-upstream", "student", "udr-s2former", "udr-small", "ast-b", "ast-t", "ast-small")
# DRSformer's, then each registered family's preset_configs() (tests/models/test_family.py keeps them in step)
# The upstream recipe (cschenxiang/DRSformer Options/Deraining.yml, as issue 13 quotes it): 8 crops of 128^2 per GPU,
# 300k iterations, grad-norm clip 0.01 (BasicSR use_grad_clip), AdamW 3e-4 / wd 1e-4 / betas (0.9, 0.999), cosine
# restarts 92k + 208k with eta_min 3e-4 then 1e-6 (TrainConfig's defaults, as fractions of the steps), seed 100.
# --batch-size is global: per GPU x world size (torchrun); scale it by hand when the world size differs from 4.
UPSTREAM_RECIPE = {"steps": 300_000, "batch_size": 32, "patch": 128, "lr": 3e-4, "seed": 100, "checkpoint_every": 5000, "grad_clip": 0.01}
TRAIN_DEFAULTS = {"batch_size": 4, "patch": 64, "lr": 3e-4, "seed": 0, "checkpoint_every": 100}
EXIT_BUDGET = 3  # a measured budget broke (distinct from 2: bad input)


def kv(items: list[str] | None) -> dict:
    out = {}
    for it in items or []:
        if "=" not in it:
            raise DrsedgeError(f"--model {it!r}: expected KEY=VALUE, e.g. --model dim=16 --model 'num_blocks=[1,2,2,2]'")
        k, v = it.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def parse_budgets(items: list[str] | None, flag: str = "--budget") -> dict[str, float]:
    """``["student=0.5", "onnx_int8=1"]`` -> ``{"student": 0.5, "onnx_int8": 1.0}``: largest PSNR drop in dB per stage.

    Raises:
        DrsedgeError: not STAGE=DB, or a value that is not a finite number (``nan`` would compare false with
            everything and break or pass every budget). A negative budget demands a gain (tests use it to force a break).
    """
    import math

    out: dict[str, float] = {}
    for it in items or []:
        stage, sep, value = it.partition("=")
        if not sep or not stage.strip():
            raise DrsedgeError(f"{flag} {it!r}: expected STAGE=DB, e.g. {flag} onnx_int8=1.0")
        try:
            v = float(value)
        except ValueError:
            raise DrsedgeError(f"{flag} {it!r}: {value!r} is not a number of dB") from None
        if not math.isfinite(v):
            raise DrsedgeError(f"{flag} {it!r}: the budget must be a finite number of dB")
        out[stage.strip()] = v
    return out


def model_config(preset: str, overrides: list[str] | None):
    from drsedge.models.config import ModelConfig, teacher_config

    given = kv(overrides)
    from drsedge.models.family import FAMILIES, student_from_dict

    if preset == "student":  # the same rule as the pipeline's student.model
        return student_from_dict(given, "--model")
    for fam in FAMILIES.values():  # another family's preset, or --model family=NAME (its student or its default size)
        presets = fam.preset_configs()
        if presets and ((preset in presets and preset != "student") or given.get("family") == fam.name):
            given.pop("family", None)
            base = presets.get(preset) or next(iter(presets.values()))
            return type(base).from_dict({**base.to_dict(), **given}, f"--preset {preset}")
    if preset == "drsformer-nomefc":
        given.setdefault("mefc", False)
    if preset == "drsformer-upstream":
        return teacher_config(**given)
    return teacher_config(**given) if given else ModelConfig()


def train_cfg(a, **extra):
    """TrainConfig from the flags; unset flags take the preset's recipe (``drsformer-upstream``) or drsedge's defaults."""
    from drsedge.training.loop import TrainConfig

    base = {**TRAIN_DEFAULTS, "steps": a.default_steps}
    if getattr(a, "preset", None) == "drsformer-upstream":
        base = dict(UPSTREAM_RECIPE)
    given = {k: getattr(a, k) for k in ("steps", "batch_size", "patch", "lr", "seed", "checkpoint_every", "ema", "progressive", "loss")
             if getattr(a, k, None) is not None}
    return TrainConfig(**{**base, **given, **extra})


def speed_kwargs(a) -> dict:
    """``train()``'s speed/memory options from the flags (:mod:`drsedge.training.speed`)."""
    return {"compile": a.compile, "checkpoint_activations": a.checkpoint_activations, "channels_last": a.channels_last}


def stage(text: str) -> tuple[float, int, int]:
    try:
        f, b, p = text.split(":")
        return float(f), int(b), int(p)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected FRACTION:BATCH:PATCH, e.g. 0.3:8:128") from None


def check_out_dir(out: str) -> None:
    if Path(out).exists() and not Path(out).is_dir():
        raise DrsedgeError(f"{out}: --out must be a folder, and this is a file; choose another path")


def int_type(lo: int, multiple: int = 1, hi: int | None = None):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if v < lo or v % multiple:
            raise argparse.ArgumentTypeError(f"{v} must be >= {lo}" + (f" and a multiple of {multiple}" if multiple > 1 else ""))
        if hi is not None and v > hi:  # checked before anything is allocated from it
            raise argparse.ArgumentTypeError(f"{v} is over the limit of {hi}")
        return v

    parse.__name__ = "int"
    return parse


def float_type(lo: float = 0.0, inclusive: bool = True, hi: float | None = None):
    import math

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(v) or v < lo or (not inclusive and v == lo) or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"{text} must be a finite number {'>=' if inclusive else '>'} {lo}" + (f" and <= {hi}" if hi is not None else ""))
        return v

    parse.__name__ = "float"
    return parse


def samples(a, paired_only: bool):
    from drsedge.data.folders import find_pairs, find_unlabeled
    from drsedge.data.heldout import guard_not_held_out
    from drsedge.data.sampling import load_samples

    guard_not_held_out(list(a.train or []) + list(getattr(a, "unlabeled", None) or []), "training")
    pairs = [p for d in a.train or [] for p in find_pairs(d)]
    unl = [] if paired_only else [f for d in a.unlabeled or [] for f in find_unlabeled(d)]
    return load_samples(pairs, unl)


def training_data(a, paired_only: bool, cfg):
    """The training batches: images decoded into memory (CropSampler), or from disk in DataLoader workers
    (``--stream-data``: StepDataset, headers of every file checked first)."""
    if not getattr(a, "stream_data", False):
        from drsedge.data.sampling import CropSampler

        return CropSampler(samples(a, paired_only), cfg.patch, cfg.batch_size, cfg.seed)
    from drsedge.data.folders import find_pairs, find_unlabeled
    from drsedge.data.heldout import guard_not_held_out
    from drsedge.data.streaming import StepDataset, scan_headers

    guard_not_held_out(list(a.train or []) + list(getattr(a, "unlabeled", None) or []), "training")
    pairs = [p for d in a.train or [] for p in find_pairs(d)]
    unl = [] if paired_only else [f for d in getattr(a, "unlabeled", None) or [] for f in find_unlabeled(d)]
    return StepDataset(scan_headers(pairs, unl), cfg.patch, cfg.batch_size, cfg.seed, cfg.steps)


def hw(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise DrsedgeError(f"{text!r}: expected HxW, e.g. 720x1280") from None
    if h <= 0 or w <= 0:
        raise DrsedgeError(f"{text!r}: H and W must be > 0")
    return h, w


def onnx_out(text: str) -> str:
    """An ONNX output path (``-o`` of export/quantize/qat): it must end in ``.onnx``, the suffix by which derain, check,
    compare and stream tell an ONNX model from a checkpoint (``runtime.frame_models.open_frame_model``).

    Raises:
        argparse.ArgumentTypeError: another suffix (argparse prints it as one usage error, exit 2; nothing is written).
    """
    if not text.endswith(".onnx"):
        raise argparse.ArgumentTypeError(f"{text}: an ONNX output must end in .onnx (the runners tell ONNX models from "
                                         "checkpoints by it)")
    return text


onnx_out.__name__ = "ONNX path"


def add_compare_args(p):
    p.add_argument("ref", help="reference ONNX, run in ONNX Runtime (e.g. FP32)")
    p.add_argument("test", nargs="?", help="ONNX to examine in ONNX Runtime (e.g. INT8 Q/DQ); with --trt: the ONNX to build from")
    p.add_argument("--trt", choices=("fp32", "fp16", "int8"), help="examine a TensorRT engine of this precision (GPU)")
    add_plugin_arg(p)
    p.add_argument("--images", nargs="+", required=True, metavar="DIR", help="rainy images (not the held-out test set)")
    p.add_argument("--crop", "--size", dest="size", type=MULT8, default=128, help="center crop side in px (multiple of 8)")
    p.add_argument("--limit", type=POS, default=4)


def add_plugin_arg(p) -> None:
    """``--plugin``: the one definition (build-engine, check, compare, localize)."""
    p.add_argument("--plugin", metavar="LIB", help="TopKSparseSoftmax TensorRT plugin library, needed for engines of --attention fused "
                   "exports: native/topk_sparse_softmax/build/libdrsedge_trt_plugin_static.so (any TensorRT), or "
                   "libdrsedge_trt_plugin.so (TensorRT >= 8.6, loadLibrary; required with --version-compatible); "
                   "see native/topk_sparse_softmax/README.md")


def add_skip_copies(p) -> None:
    """``--skip-held-out-copies``: the CLI runs the command inside :func:`drsedge.data.heldout.leave_out_copies`."""
    p.add_argument("--skip-held-out-copies", action="store_true",
                   help="leave out (one line each) files that copy a held-out test image (e.g. rain200L/train pair 1 is Rain100L "
                        "test pair 1) instead of refusing their folder")


def add_train_args(p, steps: int, out: bool = True):
    p.add_argument("--train", nargs="+", metavar="DIR", help="paired folders (input/+target/, rain/+norain/, rain-N/norain-N)")
    add_skip_copies(p)
    if out:
        p.add_argument("-o", "--output", "--out", dest="out", required=True, help="output folder (model.safetensors, train_state.pt)")
    p.add_argument("--model", action="append", metavar="KEY=VALUE", help="model option override, e.g. dim=16")
    p.set_defaults(default_steps=steps)
    p.add_argument("--steps", type=POS, help=f"optimizer steps (default {steps}; drsformer-upstream: 300000)")
    p.add_argument("--batch-size", type=POS, help="global batch (default 4; drsformer-upstream: 32 = 8 per GPU x 4)")
    p.add_argument("--patch", type=MULT8, help="crop size in px (default 64; drsformer-upstream: 128)")
    p.add_argument("--lr", type=float_type(0.0, inclusive=False), help="peak learning rate (default 3e-4)")
    p.add_argument("--seed", type=NONNEG, help="default 0; drsformer-upstream: 100")
    p.add_argument("--checkpoint-every", type=POS, help="default 100; drsformer-upstream: 5000")
    p.add_argument("--resume", action="store_true", help="continue from OUT/train_state.pt (any world size)")
    p.add_argument("--val", metavar="DIR", help="paired validation folder (not the test set): PSNR-Y/SSIM-Y, best.safetensors")
    p.add_argument("--val-every", type=POS, help="validate every N steps (default 1000)")
    p.add_argument("--val-limit", type=POS, help="first N validation pairs only")
    p.add_argument("--stream-data", action="store_true", help="decode training images from disk per batch (large sets) instead of in memory")
    p.add_argument("--workers", type=NONNEG, default=0, help="with --stream-data: DataLoader worker processes (same batches for any count)")
    p.add_argument("--stop-after", type=int_type(1), metavar="N", help="run at most N steps now, save and exit (continue with --resume)")
    p.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N (under torchrun: each rank's LOCAL_RANK GPU)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="autocast precision; scores/top-k/softmax stay FP32; fp16 (GradScaler) needs CUDA")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (inductor; first steps compile)")
    p.add_argument("--checkpoint-activations", action="store_true",
                   help="recompute each TransformerBlock in the backward pass: less memory, ~1/3 more compute (full teacher on a GPU)")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format (see benchmarks/bench_train.py)")
    p.add_argument("--ema", type=float_type(0.0, hi=0.999999), metavar="DECAY",
                   help="keep an EMA of the weights (e.g. 0.999); validation and the saved model use it")
    p.add_argument("--loss", choices=("l1", "udr"),
                   help="ground-truth loss: l1 (default, DRSformer recipe) or udr (UDR-S2Former's PSNR + uncertainty loss on "
                        "its five outputs; needs a UDR model and --patch a multiple of 64; no VGG19 here, so no perceptual term)")
    p.add_argument("--progressive", nargs="+", type=stage, metavar="FRAC:BATCH:PATCH",
                   help="Restormer progressive learning: stages of (fraction of steps, global batch, patch); draws are made "
                        "at --batch-size / --patch, which must be the largest")


POS = int_type(1)
NONNEG = int_type(0)
# an image side: 16384 px bounds a 64 MP frame's longer side (data.images.MAX_PIXELS), checked before allocation
MAX_SIDE = 16384
MULT8 = int_type(8, 8, MAX_SIDE)
