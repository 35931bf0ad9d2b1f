"""Teacher and student stages of the pipeline: a teacher from a checkpoint (official ``.pth``, drsedge file or
``shipped:teacher``) or trained from scratch, and a student distilled from it (paired + unlabeled images).

``drsedge train`` / ``drsedge distill`` drive :func:`drsedge.training.loop.train` directly with their wider options
(DDP, validation, streaming data); these functions are the pipeline's recipe on its run-config sections."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from drsedge.run_config import StudentSection, TeacherSection

from .result import StageResult


def teacher(options: TeacherSection, samples: Callable[[], list], out: str | os.PathLike, *, seed: int = 0, resume_key: str = "",
            progress: bool = True, log: Callable[[str], None] = print) -> StageResult:
    """Write the teacher to ``out`` (.safetensors): ``options.checkpoint`` re-saved, or ``options.model`` trained for
    ``options.train`` on ``samples()`` (decoded paired images; only called when training), resumable under ``resume_key``.

    Artifacts: ``model``. Metrics: the checkpoint's source, or the final L1 loss and steps trained.

    Raises:
        DrsedgeError: unreadable checkpoint, bad model or training options, no training images.
    """
    import torch

    from drsedge.data.sampling import CropSampler
    from drsedge.models.checkpoint import load_any, save_model
    from drsedge.models.config import config_from_dict
    from drsedge.training.loop import TrainConfig, train

    out = Path(out)
    if options.checkpoint:
        from drsedge.weights import resolve

        ckpt = Path(resolve(options.checkpoint))
        model, mcfg = load_any(ckpt)
        from drsedge.fileio import sha256

        save_model(out, model, mcfg, {"source_sha256": sha256(ckpt)})  # the path goes to the manifest, not into the weights
        return StageResult({"model": out}, {"source": str(ckpt), "trained_steps": 0})
    mcfg = config_from_dict(options.model, "teacher.model")
    tcfg = TrainConfig.from_dict({**(options.train or {}), "seed": seed}, "teacher.train")
    torch.manual_seed(seed)
    model = mcfg.build()
    res = train(model, CropSampler(samples(), tcfg.patch, tcfg.batch_size, tcfg.seed), tcfg, out.parent, resume=True, progress=progress,
                key=resume_key, log=log)
    save_model(out, model, mcfg)
    return StageResult({"model": out}, {"final_loss": res["loss"], "trained_steps": res["step"]})


def pruned_teacher(teacher_path: str | os.PathLike, spec, samples: list | None = None):
    """The teacher at ``teacher_path`` pruned to ``spec.target_gmacs`` GMACs at ``spec.size`` (``[H, W]``) over
    ``spec.scope`` with ``spec.importance``: the initial student of the prune-then-distill order (Muralidharan et al.,
    2024). Depth is ranked on 8 real training crops from ``samples`` when given
    (:mod:`drsedge.compress.prune_depth`). Returns ``(model, config)``; the model's MACs are <= the target.

    Raises:
        DrsedgeError: a teacher family pruned by ratio only (UDR-S2Former), a target out of reach for the scopes.
    """
    from drsedge.compress.prune import prune_model, ratio_for_macs
    from drsedge.compress.prune_driver import family_scopes
    from drsedge.models.checkpoint import load_any
    from drsedge.models.config import require_drsformer

    model, cfg = load_any(teacher_path)
    require_drsformer(cfg, "--init prune-teacher (pruning to a MACs target)", str(teacher_path))
    scopes = family_scopes(cfg, spec.scope)
    probe = None
    if "depth" in scopes and samples:
        from drsedge.data.sampling import CropSampler
        from drsedge.stages.prune import DEPTH_PROBE_BATCH, DEPTH_PROBE_PATCH, DEPTH_PROBE_SEED

        probe = CropSampler(samples, DEPTH_PROBE_PATCH, DEPTH_PROBE_BATCH, DEPTH_PROBE_SEED).batch(0)[0]
    hw = (int(spec.size[0]), int(spec.size[1]))
    if "depth" in scopes:
        from drsedge.compress.prune_depth import block_importance

        probe = block_importance(model, probe, spec.importance)  # one ranking for the MACs search and the cut
    ratio = ratio_for_macs(model, cfg, int(spec.target_gmacs * 1e9), hw, scopes, probe)
    model, cfg = prune_model(model, cfg, ratio, spec.importance, scopes, probe)
    return model.train(), cfg


def train_options(d: dict | None, source: str):
    """A training section (``teacher.train``, ``student.distill``, ``prune.finetune``) -> its
    :class:`~drsedge.training.loop.TrainConfig`.

    Raises:
        DrsedgeError: an unknown key or a bad value, naming ``source``.
    """
    from drsedge.training.loop import TrainConfig

    return TrainConfig.from_dict(d or {}, source)


def initial_student(init, model: dict | None, teacher_path: str | os.PathLike, samples: Callable[[], list] | None = None, *,
                    seed: int = 0, source: str = "student.model"):
    """The student distillation starts from, the one rule of ``drsedge distill`` and the pipeline's student stage:

    * ``init`` a checkpoint name or path (``shipped:student``): that model and its own config;
    * ``init`` a :class:`~drsedge.run_config.PruneTeacherInit`: the teacher pruned to its MACs target
      (:func:`pruned_teacher`; depth ranked on crops of ``samples()`` when ``depth`` is in its scope);
    * None: ``model`` (options on the family's default student, :func:`~drsedge.models.family.student_from_dict`)
      built after ``torch.manual_seed(seed)``.

    The global RNG is seeded with ``seed`` before the model is returned either way. Returns ``(model, config, warm)``;
    ``warm``: a trained start (no zero-initialised output conv).

    Raises:
        DrsedgeError: an unreadable checkpoint, a bad model option (naming ``source``), a MACs target out of reach.
    """
    import torch

    if isinstance(init, str):
        from drsedge.models.checkpoint import load_any
        from drsedge.weights import resolve

        net, cfg = load_any(resolve(init))
        net.train()
    elif init is not None:  # the teacher pruned to the student's size, then distilled (Minitron's order)
        net, cfg = pruned_teacher(teacher_path, init, samples() if samples is not None and "depth" in init.scope else None)
    else:
        from drsedge.models.family import student_from_dict

        cfg = student_from_dict(model, source)
        torch.manual_seed(seed)
        return cfg.build(), cfg, False
    torch.manual_seed(seed)
    return net, cfg, True


def student(options: StudentSection, teacher_path: str | os.PathLike, samples: list, out: str | os.PathLike, *, seed: int = 0,
            resume_key: str = "", progress: bool = True, log: Callable[[str], None] = print) -> StageResult:
    """Distill a student from the teacher at ``teacher_path`` on ``samples`` (paired and unlabeled decoded images) and
    write it to ``out``: ``options.model`` from scratch (on its family's default student: :func:`~drsedge.models.family.student_from_dict`), or warm-started from
    ``options.init`` (that checkpoint's own config; no zero-initialised output conv), or, with
    ``init: {prune_teacher: ...}``, from the teacher pruned to the target MACs (:func:`pruned_teacher`).

    Artifacts: ``model``. Metrics: final loss, steps trained, number of training images.
    """
    from drsedge.data.sampling import CropSampler
    from drsedge.models.checkpoint import load_model, save_model
    from drsedge.training.loop import TrainConfig, train

    out = Path(out)
    teacher_model, _ = load_model(teacher_path)
    init = options.init.prune_teacher if options.init is not None and not isinstance(options.init, str) else options.init
    model, mcfg, warm = initial_student(init, options.model, teacher_path, lambda: samples, seed=seed, source="student.model")
    dcfg = TrainConfig.from_dict({**(options.distill or {}), "seed": seed}, "student.distill")
    if warm:
        dcfg.zero_init_output = False
    res = train(model, CropSampler(samples, dcfg.patch, dcfg.batch_size, dcfg.seed), dcfg, out.parent, teacher=teacher_model, resume=True,
                progress=progress, key=resume_key, log=log)
    save_model(out, model, mcfg)
    return StageResult({"model": out}, {"final_loss": res["loss"], "trained_steps": res["step"], "train_images": len(samples)})
