"""``drsedge train``: teacher training and student distillation."""

from __future__ import annotations

from pathlib import Path

from drsedge.choices import DRSFORMER_PRUNE_SCOPES, WIDTH_IMPORTANCES
from drsedge.errors import DrsedgeError

from .args import POS, PRESETS, add_train_args, check_out_dir, float_type, kv, model_config, samples, speed_kwargs, train_cfg, training_data


def model_macs(model, size) -> int:
    """MACs of ``model`` at ``size`` ``[H, W]`` (torch.utils.flop_counter)."""
    from drsedge.models.info import model_info

    return model_info(model, int(size[0]), int(size[1])).macs


def _is_main() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


def _validation(a, cfg) -> dict:
    """``--val DIR --val-every N``: validation pairs and the best-checkpoint callback (best.safetensors)."""
    if not a.val:
        return {}
    from drsedge.data.folders import find_pairs
    from drsedge.data.heldout import guard_not_held_out
    from drsedge.models.checkpoint import save_model

    guard_not_held_out([a.val], "validation")
    pairs = find_pairs(a.val, a.val_limit)

    def on_best(model, step, v):
        save_model(Path(a.out) / "best.safetensors", model, cfg, {"step": step, **{k: v[k] for k in ("val_psnr", "val_ssim")}})

    return {"val": pairs, "val_every": a.val_every or 1000, "on_best": on_best}


def cmd_train_teacher(a) -> int:
    import torch

    from drsedge.models.checkpoint import save_model
    from drsedge.training.loop import train

    check_out_dir(a.out)
    cfg = model_config(a.preset, a.model)
    tcfg = train_cfg(a)
    torch.manual_seed(tcfg.seed)
    model = cfg.build()
    res = train(model, training_data(a, True, tcfg), tcfg, a.out, resume=a.resume, stale="refuse",
                device=a.device, precision=a.precision, stop_after=a.stop_after, workers=a.workers, **_validation(a, cfg), **speed_kwargs(a))
    if _is_main():
        path = save_model(Path(a.out) / "model.safetensors", model, cfg)
        print(f"teacher: {path} (step {res['step']}, loss {res['loss']:.4f})")
    return 0


def cmd_distill(a) -> int:
    from drsedge.models.checkpoint import load_any, save_model
    from drsedge.stages.train import initial_student
    from drsedge.training.loop import train

    check_out_dir(a.out)
    teacher, _ = load_any(a.teacher)
    tcfg = train_cfg(a, lambda_kd=a.lambda_kd, feature_weight=a.feature_weight, feature_levels=a.feature_levels)
    init = a.init
    if a.init == "prune-teacher":  # Minitron's order: the teacher pruned to the target MACs, then distilled
        from drsedge.run_config import PruneTeacherInit, make_options

        if a.target_gmacs is None:
            raise DrsedgeError("--init prune-teacher needs --target-gmacs G (the student's MACs at --size H W)")
        init = make_options(PruneTeacherInit, "drsedge distill --init prune-teacher", target_gmacs=a.target_gmacs, size=list(a.size),
                            **({"scope": a.scope} if a.scope else {}), importance=a.importance)
    elif a.target_gmacs is not None:
        raise DrsedgeError("--target-gmacs is for --init prune-teacher")
    model, cfg, warm = initial_student(init, kv(a.model), a.teacher, lambda: samples(a, paired_only=False), seed=tcfg.seed,
                                       source="--model")
    if warm:
        tcfg.zero_init_output = False
    if a.init == "prune-teacher":
        print(f"initial student: the teacher pruned to {model_macs(model, init.size) / 1e9:.3f} GMACs at "
              f"{init.size[0]}x{init.size[1]} ({'+'.join(init.scope)})")
    res = train(model, training_data(a, False, tcfg), tcfg, a.out, teacher=teacher, resume=a.resume,
                stale="refuse", device=a.device, precision=a.precision, stop_after=a.stop_after, workers=a.workers, **_validation(a, cfg),
                **speed_kwargs(a))
    if _is_main():
        path = save_model(Path(a.out) / "model.safetensors", model, cfg)
        print(f"student: {path} (step {res['step']}, loss {res['loss']:.4f})")
    return 0


def register(sub) -> None:
    p = sub.add_parser("train-teacher", help="train a DRSformer teacher (L1, AdamW, cosine restarts)")
    p.add_argument("--preset", choices=PRESETS, default="drsformer")
    add_train_args(p, 1000)
    p.set_defaults(fn=cmd_train_teacher)
    p = sub.add_parser("distill", help="distill a compact student from a teacher on paired and unlabeled images")
    p.add_argument("--teacher", required=True, help="teacher checkpoint (.safetensors from drsedge, or an official .pth)")
    p.add_argument("--unlabeled", nargs="+", metavar="DIR", help="rainy images without ground truth")
    p.add_argument("--lambda-kd", type=float_type(), default=1.0, help="weight of L1(student, teacher)")
    p.add_argument("--feature-weight", type=float_type(), default=0.0, help="weight of the feature-matching term (0: off)")
    p.add_argument("--feature-levels", nargs="+", default=["encoder_level2", "latent"])
    p.add_argument("--init", metavar="CKPT|prune-teacher",
                   help="start from a checkpoint (shipped:student), or from the teacher pruned to --target-gmacs (prune, then distill)")
    p.add_argument("--target-gmacs", type=float_type(0.0, inclusive=False), help="with --init prune-teacher: the student's GMACs at --size")
    p.add_argument("--size", "--hw", dest="size", type=POS, nargs=2, default=[256, 256], metavar=("H", "W"))
    p.add_argument("--scope", nargs="+", choices=DRSFORMER_PRUNE_SCOPES,
                   help="with --init prune-teacher: what to prune (default depth msfn heads streams)")
    p.add_argument("--importance", choices=WIDTH_IMPORTANCES, default="l2", help="with --init prune-teacher: width importance")
    add_train_args(p, 1000)
    p.set_defaults(fn=cmd_distill)
