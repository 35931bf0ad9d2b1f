"""Training loop shared by teacher training and distillation.

Teacher (``teacher=None``): L1(model(x), GT), the DRSformer recipe (paper
Sec. 4.1 / upstream ``options/train``): AdamW lr 3e-4, weight decay 1e-4,
betas (0.9, 0.999), cosine annealing with restarts
(``CosineAnnealingRestartCyclicLR``: a constant first period at 3e-4, then a
cosine to 1e-6; upstream periods 92k + 208k of 300k iterations, kept here as
fractions of ``steps``), random crops with flips/rotations.

Distillation (``teacher`` given): ``L = L1(s, GT)`` over samples that have GT
``+ lambda_kd * L1(s, t)`` over all samples ``+ feature_weight * sum_l
L1(adapter_l(f_s,l), f_t,l)`` over the chosen levels, where ``adapter_l`` is a
1x1 conv from the student's to the teacher's width. Unlabeled images only get
the teacher terms.

Reproducibility: batches are a pure function of ``(seed, step)`` (see
:class:`drsedge.data.CropSampler`); the resume file holds model, adapters,
optimizer and scheduler state, so ``resume=True`` continues bit-identically
on CPU.

Size: ~330 lines on purpose: one training loop (teacher and distillation, resume keys, NaN stops, autocast, DDP);
the device/process-group pieces live in :mod:`.distributed`, validation and logs in :mod:`.monitor`.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from drsedge.data.sampling import CropSampler
from drsedge.errors import DrsedgeError, NonFiniteError, StaleStateError, first_line
from drsedge.fileio import atomic_write

from .udr_loss import udr_loss

STATE_FILE = "train_state.pt"


MAX_BATCH_PIXELS = 2**28  # one training batch: batch_size x patch^2 (e.g. 1024 x 512^2)


@dataclass
class TrainConfig:
    """Hyper-parameters of one training or distillation run (steps are optimizer steps)."""

    steps: int = 1000
    batch_size: int = 4
    patch: int = 64
    lr: float = 3e-4
    weight_decay: float = 1e-4
    restart_fractions: list[float] = field(default_factory=lambda: [92 / 300, 208 / 300])
    eta_mins: list[float] = field(default_factory=lambda: [3e-4, 1e-6])
    seed: int = 0
    checkpoint_every: int = 100
    lambda_kd: float = 1.0
    feature_weight: float = 0.0
    feature_levels: list[str] = field(default_factory=lambda: ["encoder_level2", "latent"])
    grad_clip: float = 0.0  # max grad norm; 0 disables
    zero_init_output: bool = True  # from scratch only: output conv starts at 0, so the net starts as identity (+ inp_img)
    ema: float = 0.0  # EMA decay of the weights (BasicSR ema_decay, e.g. 0.999); 0 disables. The saved model is the EMA
    progressive: list[tuple[float, int, int]] = field(default_factory=list)  # [(fraction of steps, mini-batch, patch)]
    loss: str = "l1"  # ground-truth loss: "l1" (DRSformer recipe) or "udr" (UDR-S2Former's own, training/udr_loss.py)

    def __post_init__(self):
        import math

        bad = []
        if not isinstance(self.steps, int) or self.steps < 0:
            bad.append(f"steps {self.steps!r} must be an integer >= 0")
        for name in ("batch_size", "checkpoint_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                bad.append(f"{name} {v!r} must be an integer >= 1")
        if not isinstance(self.patch, int) or self.patch < 8 or self.patch % 8:
            bad.append(f"patch {self.patch!r} must be a positive multiple of 8")
        elif isinstance(self.batch_size, int) and self.batch_size * self.patch**2 > MAX_BATCH_PIXELS:
            # checked before the sampler allocates [batch, 3, patch, patch]: a typo must not ask for gigabytes
            bad.append(f"batch_size x patch^2 = {self.batch_size} x {self.patch}^2 is over {MAX_BATCH_PIXELS:,} px per batch "
                       "(3.2 GB in FP32); lower batch_size or patch")
        if not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) or self.lr <= 0:
            bad.append(f"lr {self.lr!r} must be a finite number > 0")
        for name in ("weight_decay", "lambda_kd", "feature_weight", "grad_clip"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                bad.append(f"{name} {v!r} must be a finite number >= 0")
        if not isinstance(self.ema, (int, float)) or not 0 <= self.ema < 1:
            bad.append(f"ema {self.ema!r} must be in [0, 1) (0 disables; 0.999 is BasicSR's)")
        if self.progressive:
            fr = [s[0] for s in self.progressive]
            if any(not 0 < f <= 1 for f in fr) or abs(sum(fr) - 1) > 1e-6:
                bad.append(f"progressive fractions {fr} must be in (0, 1] and sum to 1")
            for _f, b, p in self.progressive:
                if not 1 <= b <= self.batch_size or p % 8 or not 8 <= p <= self.patch:
                    bad.append(f"progressive stage (batch {b}, patch {p}) must have 1 <= batch <= batch_size {self.batch_size} "
                               f"and a patch that is a multiple of 8 <= patch {self.patch} (draws are made at the largest)")
                    break
        if self.loss not in ("l1", "udr"):
            bad.append(f"loss {self.loss!r} must be 'l1' or 'udr'")
        elif self.loss == "udr" and (not isinstance(self.patch, int) or self.patch % 64
                                     or any(int(p) % 64 for _f, _b, p in self.progressive)):
            bad.append(f"loss 'udr' trains on UDR-S2Former's five outputs, which need patches that are multiples of 64 "
                       f"(patch {self.patch}, progressive {[p for _f, _b, p in self.progressive]})")
        if bad:
            raise DrsedgeError("training config: " + "; ".join(bad))

    @classmethod
    def from_dict(cls, d: dict, source: str = "training config") -> TrainConfig:
        """Build from a mapping; unknown keys, wrong types or impossible numbers raise one-line DrsedgeError."""
        import pydantic

        from drsedge.errors import unknown_keys

        unknown, names = unknown_keys(cls, d)
        if unknown:
            raise DrsedgeError(f"{source}: unknown training option(s) {unknown}; valid: {names}")
        try:
            return pydantic.TypeAdapter(cls).validate_python(d)
        except pydantic.ValidationError as e:
            err = e.errors()[0]
            raise DrsedgeError(f"{source}: {'.'.join(map(str, err['loc']))}: {err['msg']} (got {err.get('input')!r})") from None
        except DrsedgeError as e:
            raise DrsedgeError(f"{source}: {e}") from None

    def to_dict(self) -> dict:
        return asdict(self)


def cosine_restart_lr(step: int, cfg: TrainConfig) -> float:
    """Learning rate at ``step`` under BasicSR's ``CosineAnnealingRestartCyclicLR`` (periods as fractions of ``steps``)."""
    periods = [max(1, round(f * cfg.steps)) for f in cfg.restart_fractions]
    start = 0
    for period, eta_min in zip(periods, cfg.eta_mins):
        if step < start + period or period is periods[-1]:
            t = min(1.0, (step - start) / period)
            return eta_min + 0.5 * (cfg.lr - eta_min) * (1 + math.cos(math.pi * t))
        start += period
    return cfg.eta_mins[-1]


class _Features:
    """Forward hooks collecting the outputs of named submodules."""

    def __init__(self, model: nn.Module, names: list[str]):
        self.out: dict[str, torch.Tensor] = {}
        modules = dict(model.named_modules())
        missing = [n for n in names if n not in modules]
        if missing:
            raise DrsedgeError(f"feature level(s) {missing} not in the model; choose from encoder_level1..3, latent, decoder_level1..3")
        self.handles = [modules[n].register_forward_hook(self._hook(n)) for n in names]

    def _hook(self, name):
        def fn(_m, _i, o):
            self.out[name] = o

        return fn

    def close(self):
        for h in self.handles:
            h.remove()


def build_adapters(student: nn.Module, teacher: nn.Module, levels: list[str], hw: int = 32) -> nn.ModuleDict:
    """One 1x1 conv per level mapping student to teacher channels (probed with a ``[1, 3, hw, hw]`` input)."""
    fs, ft = _Features(student, levels), _Features(teacher, levels)
    x = torch.zeros(1, 3, hw, hw)
    with torch.no_grad():
        student.eval()(x)
        teacher.eval()(x)
    adapters = nn.ModuleDict(
        {n.replace(".", "_"): nn.Conv2d(fs.out[n].shape[1], ft.out[n].shape[1], 1, bias=False) for n in levels}
    )
    fs.close()
    ft.close()
    return adapters


def train(
    model: nn.Module,
    sampler: CropSampler,
    cfg: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    teacher: nn.Module | None = None,
    resume: bool = False,
    progress: bool = True,
    key: str = "",
    stale: str = "restart",
    log=print,
    device: str = "cpu",
    precision: str = "fp32",
    stop_after: int | None = None,
    workers: int = 0,
    val: list | None = None,
    val_every: int = 0,
    on_best=None,
    compile: bool = False,
    checkpoint_activations: bool = False,
    channels_last: bool = False,
) -> dict:
    """Train ``model`` in place for ``cfg.steps`` steps; returns ``{"step", "loss", "losses"}``.

    Writes ``out_dir/train_state.pt`` every ``cfg.checkpoint_every`` steps and at the end
    (atomically). With ``resume=True`` it continues from that file, but only when the file's run key
    matches this run: a hash of ``cfg``, the model's parameter shapes, the training images (names,
    sizes, pixel sums), whether a teacher is used, and the caller's ``key`` (the pipeline passes its
    stage key). A file of another run is ignored and training starts over (``stale="restart"``, the
    pipeline) or refused (``stale="refuse"``, the CLI's ``--resume``); so is an unreadable one.

    ``device`` (``cpu``, ``cuda[:N]``, ``auto``) and ``precision`` (``fp32``, ``bf16`` or ``fp16`` autocast;
    fp16 with a GradScaler, CUDA only) choose where it runs; under torchrun (``WORLD_SIZE`` > 1) it runs
    data-parallel (:mod:`drsedge.training.distributed`). The model is back on the CPU when it returns.
    ``stop_after``: run at most this many steps now, save the state and return (a time-boxed job that a
    later ``resume=True`` continues, on any world size). ``sampler`` may be a
    :class:`drsedge.data.streaming.StepDataset` (images decoded from disk; ``workers`` DataLoader processes).
    ``val`` (paired, never the test set) is evaluated every ``val_every`` steps on rank 0 (PSNR-Y/SSIM-Y); each new
    best calls ``on_best(model, step, figures)``; ``out_dir/train_log.jsonl`` logs loss, lr, images/s and
    validation (and TensorBoard when installed, :mod:`drsedge.training.monitor`).
    ``compile`` (torch.compile), ``checkpoint_activations`` and ``channels_last`` change speed and memory, not the
    result (:mod:`drsedge.training.speed`). ``cfg.ema`` keeps an EMA of the weights (``torch.optim.swa_utils``);
    validation, ``on_best`` and the returned model use it. ``cfg.progressive`` applies Restormer's progressive
    patch/batch schedule (:func:`drsedge.data.sampling.progressive_crop`).

    Raises:
        DrsedgeError: teacher training without ground truth.
        StaleStateError: ``stale="refuse"`` and the resume file belongs to another run or is unreadable.
        NonFiniteError: the loss became NaN/Inf (nothing is saved for that step; lower the lr).
    """
    import hashlib
    import json

    from .distributed import barrier, setup, shard, wrap

    pl = setup(device, precision)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if teacher is None and any(s.clean is None for s in sampler.samples):
        raise DrsedgeError("teacher training needs paired data: every training folder must have ground truth")
    use_feat = teacher is not None and cfg.feature_weight > 0 and cfg.feature_levels
    adapters = build_adapters(model, teacher, cfg.feature_levels) if use_feat else nn.ModuleDict()
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from drsedge.data.sampling import progressive_crop, progressive_stage

    from .speed import activation_checkpointing, prepare, to_input_format

    net = prepare(wrap(model, pl), channels_last, compile)  # moves the model; DistributedDataParallel under torchrun
    adapters.to(pl.device)
    if teacher is not None:
        teacher.to(pl.device)
    params = list(model.parameters()) + list(adapters.parameters())
    scaler = torch.amp.GradScaler("cuda", enabled=pl.precision == "fp16")
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.999))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_restart_lr(s, cfg) / cfg.lr)
    step, losses = 0, []
    if cfg.loss == "udr" and not hasattr(model, "forward_all"):
        raise DrsedgeError(f"training config: loss 'udr' needs a UDR-S2Former model (five outputs), not {type(model).__name__}")
    from drsedge.models.family import family_of_model

    fam = family_of_model(model)
    out_conv = model.get_submodule(fam.output_conv) if fam is not None and fam.output_conv else None
    if cfg.zero_init_output and isinstance(out_conv, nn.Conv2d):
        with torch.no_grad():
            out_conv.weight.zero_()  # overwritten below when resuming
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True) if cfg.ema else None
    state_path = out_dir / STATE_FILE
    run_key = hashlib.sha256(json.dumps([
        cfg.to_dict(), key, teacher is not None, [sampler.seed, sampler.patch, sampler.batch_size], [(k, list(v.shape)) for k, v in model.state_dict().items()],
        sampler.fingerprint() if hasattr(sampler, "fingerprint") else
        [(smp.name, list(smp.rainy.shape), round(float(smp.rainy.sum()), 2),
          None if smp.clean is None else round(float(smp.clean.sum()), 2)) for smp in sampler.samples],
    ]).encode()).hexdigest()[:16]
    if resume and state_path.is_file():
        why, st = None, None
        try:
            st = torch.load(state_path, map_location=pl.device, weights_only=True)
            if not isinstance(st, dict) or st.get("run_key") != run_key:
                why = "belongs to another run (config, model, data or seed changed)"
        except Exception as e:  # truncated, hostile or foreign pickle: refused by weights_only
            why = f"is unreadable ({first_line(e, 120)})"
        if why and stale == "refuse":
            raise StaleStateError(f"{state_path}: resume file {why}; delete it or run without --resume")
        if why:
            log(f"{state_path}: resume file {why}; starting over")
        else:
            try:
                model.load_state_dict(st["model"])
                adapters.load_state_dict(st["adapters"])
                opt.load_state_dict(st["optimizer"])
                sched.load_state_dict(st["scheduler"])
                if ema is not None:
                    ema.load_state_dict(st["ema"])
                step, losses = int(st["step"]), list(st["losses"])
            except (KeyError, RuntimeError, ValueError, TypeError) as e:
                raise StaleStateError(f"{state_path}: resume file does not fit this model ({first_line(e, 120)}); delete it") from None

    hooks_s = _Features(model, cfg.feature_levels) if use_feat else None
    hooks_t = _Features(teacher, cfg.feature_levels) if use_feat else None
    if teacher is not None:
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    model.train()
    bar = tqdm(total=cfg.steps, initial=step, disable=not (progress and pl.is_main), desc="distill" if teacher is not None else "train",
               dynamic_ncols=True)

    def save():
        if not pl.is_main:  # rank 0 alone writes
            return
        st = {
            "model": model.state_dict(), "adapters": adapters.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "step": step, "losses": losses, "config": cfg.to_dict(), "run_key": run_key,
        }
        if ema is not None:
            st["ema"] = ema.state_dict()
        atomic_write(state_path, lambda tmp: torch.save(st, tmp))

    first = step
    from drsedge.data.streaming import StepDataset, batches

    from .monitor import Monitor

    mon = Monitor(out_dir, val, val_every, enabled=pl.is_main)

    feed = batches(sampler, step, cfg.steps, workers) if isinstance(sampler, StepDataset) else (sampler.batch(s) for s in range(step, cfg.steps))
    ckpt = activation_checkpointing(model, checkpoint_activations)
    ckpt.__enter__()
    try:
        while step < cfg.steps and (stop_after is None or step - first < stop_after):
            drawn = next(feed)
            stage = progressive_stage(step, cfg.steps, cfg.progressive)
            if stage is not None:
                drawn = progressive_crop(drawn, cfg.seed, step, *stage)
            x, y, has_gt = (t.to(pl.device) for t in shard(drawn, pl))
            x = to_input_format(x, channels_last)
            with torch.autocast(pl.device.type, dtype=pl.autocast_dtype, enabled=pl.autocast_dtype is not None):
                if cfg.loss == "udr":  # upstream UDR-S2Former loss on the five outputs and uncertainty maps
                    outs, var = net(x, all_outputs=True)
                    pred = outs[0].float()
                else:
                    pred = net(x).float()
                loss = pred.new_zeros(())
                if has_gt.any() and cfg.loss == "udr":
                    loss = loss + udr_loss([o[has_gt].float() for o in outs], [v[has_gt].float() for v in var], y[has_gt])[0]
                elif has_gt.any():
                    loss = loss + F.l1_loss(pred[has_gt], y[has_gt])
                if teacher is not None:
                    with torch.no_grad():
                        t_out = teacher(x).float()
                    loss = loss + cfg.lambda_kd * F.l1_loss(pred, t_out)
                    if use_feat:
                        for name in cfg.feature_levels:
                            a = adapters[name.replace(".", "_")](hooks_s.out[name])
                            loss = loss + cfg.feature_weight * F.l1_loss(a.float(), hooks_t.out[name].float())
            finite = torch.isfinite(loss.detach()).float()
            if pl.world > 1:  # every rank stops together
                torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
            if not bool(finite):
                raise NonFiniteError(f"training diverged: loss is {loss.item()} at step {step + 1} (lr {sched.get_last_lr()[0]:.2e}); "
                                     f"nothing saved for it, the last good state is {state_path.name if state_path.is_file() else 'none'}; "
                                     "lower the learning rate")
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip > 0:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            scaler.step(opt)
            scaler.update()
            sched.step()
            if ema is not None:
                ema.update_parameters(model)
            if not all(bool(torch.isfinite(p).all()) for p in params):
                raise NonFiniteError(f"training diverged: weights hold NaN/Inf after step {step + 1}; nothing saved for it; lower the learning rate")
            step += 1
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{sched.get_last_lr()[0]:.2e}")
            shown = ema.module if ema is not None else model
            v = mon.step(step, losses[-1], sched.get_last_lr()[0], x.shape[0] * pl.world, shown, pl.device)
            if v is not None:
                bar.write(f"step {step}: val PSNR-Y {v['val_psnr']:.2f} dB, SSIM-Y {v['val_ssim']:.4f}" + (" (best)" if v["best"] else ""))
                if v["best"] and on_best is not None:
                    on_best(shown, step, v)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps or (stop_after is not None and step - first == stop_after):
                save()
    finally:
        ckpt.__exit__(None, None, None)
        bar.close()
        mon.close()
        for h in (hooks_s, hooks_t):
            if h is not None:
                h.close()
    barrier(pl)
    if ema is not None:
        model.load_state_dict(ema.module.state_dict())
    model.to("cpu")
    if teacher is not None:
        teacher.to("cpu")
    model.eval()
    return {"step": step, "loss": losses[-1] if losses else float("nan"), "losses": losses}
