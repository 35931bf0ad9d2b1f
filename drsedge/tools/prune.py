"""``drsedge prune``: structural pruning with distillation fine-tuning."""

from __future__ import annotations

from pathlib import Path

from drsedge.errors import DrsedgeError

from .args import POS
from .args import add_train_args as _add_train_args
from .args import float_type as _float_type
from .args import samples as _samples
from .args import train_cfg as _train_cfg


def cmd_prune(a) -> int:
    from drsedge.compress.prune import ratio_for_macs, taylor_gradients
    from drsedge.compress.prune_driver import iterative_prune
    from drsedge.compress.prune_udr import UDR_SCOPES, prune_udr
    from drsedge.data.folders import find_pairs
    from drsedge.data.images import read_image, to_tensor, to_uint8
    from drsedge.data.sampling import CropSampler
    from drsedge.fileio import refuse_overwrite
    from drsedge.metrics.psnr_ssim import psnr_y
    from drsedge.models.checkpoint import load_any, save_model
    from drsedge.models.config import ModelConfig
    from drsedge.models.info import model_info
    from drsedge.runtime.runners import TorchRunner
    from drsedge.runtime.tiling import restore
    from drsedge.training.loop import train

    refuse_overwrite(a.output, [a.model, a.teacher], "pruned model")
    model, cfg = load_any(a.model)
    udr = not isinstance(cfg, ModelConfig)
    scopes = a.scope or (list(UDR_SCOPES) if udr else ["msfn"])
    if udr and (set(scopes) - set(UDR_SCOPES) or a.target_gmacs is not None):
        raise DrsedgeError(f"{a.model}: a UDR-S2Former prunes --scope {' '.join(UDR_SCOPES)} by --ratio (not {' '.join(scopes)}"
                           f"{' / --target-gmacs' if a.target_gmacs is not None else ''})")
    if not udr and set(scopes) & set(UDR_SCOPES):
        raise DrsedgeError(f"--scope {' '.join(UDR_SCOPES)} are UDR-S2Former's; a DRSformer prunes msfn, attention, heads, streams")
    hw = tuple(a.size)
    pairs = find_pairs(a.test, a.limit) if a.test else []

    def psnr(m) -> float | None:
        if not pairs:
            return None
        r = TorchRunner(m)
        vals = [psnr_y(to_uint8(restore(r, to_tensor(read_image(p.rainy)))), to_uint8(to_tensor(read_image(p.clean)))) for p in pairs]
        return sum(vals) / len(vals)

    if a.target_gmacs is not None:
        ratio = ratio_for_macs(model, cfg, int(a.target_gmacs * 1e9), hw, scopes)
    else:
        ratio = a.ratio
    teacher = load_any(a.teacher)[0] if a.teacher else None
    samples = _samples(a, paired_only=False) if (a.train or a.unlabeled) else []
    if a.importance == "taylor" and not samples:
        raise DrsedgeError("taylor importance needs --train or --unlabeled images to compute gradients")
    rows = [("original", model_info(model, *hw), psnr(model))]
    steps = max(1, a.iterations)

    def taylor(m, it):
        if a.importance == "taylor":
            tc = _train_cfg(a)
            x, _, _ = CropSampler(samples, tc.patch, tc.batch_size, tc.seed).batch(10_000 + it)
            ref = teacher(x).detach() if teacher is not None else m(x).detach()
            taylor_gradients(m, x, ref)

    def finetune(m, c, it):
        rows.append((f"pruned step {it}", model_info(m, *hw), psnr(m)))
        if teacher is not None and samples and _train_cfg(a).steps > 0:
            tcfg = _train_cfg(a, lambda_kd=1.0, zero_init_output=False)
            train(m, CropSampler(samples, tcfg.patch, tcfg.batch_size, tcfg.seed), tcfg, Path(a.output).parent / f"prune_ft{it}",
                  teacher=teacher, resume=False, device=a.device, precision=a.precision)
            rows.append((f"fine-tuned step {it}", model_info(m, *hw), psnr(m)))

    if udr:  # the same schedule as iterative_prune: equal fractions per step that compound to the ratio
        step_ratio = 1.0 - (1.0 - ratio) ** (1.0 / steps)
        for it in range(1, steps + 1):
            taylor(model, it)
            model, cfg = prune_udr(model, cfg, step_ratio, a.importance, scopes)
            model.zero_grad(set_to_none=True)
            finetune(model, cfg, it)
    else:
        model, cfg = iterative_prune(model, cfg, ratio=ratio, importance=a.importance, scopes=scopes, iterations=steps,
                                     before_step=taylor, after_step=finetune)
    path = save_model(a.output, model, cfg, {"pruned_from": str(a.model), "ratio": ratio, "importance": a.importance})
    print(f"| model | params | GMACs @ {hw[0]}x{hw[1]} | PSNR-Y (dB){' on ' + str(a.test) if pairs else ''} |")
    print("|---|---|---|---|")
    for name, info, p in rows:
        print(f"| {name} | {info.params:,} | {info.gmacs:.3f} | {'–' if p is None else f'{p:.2f}'} |")
    print(f"pruned model: {path} ({'+'.join(scopes)} ratio {ratio:.3f}, {a.importance} importance, {steps} step(s))")
    return 0


def register(sub) -> None:
    p = sub.add_parser("prune", help="structural pruning (MSFN width, channels per head), with distillation fine-tuning between steps")
    p.add_argument("model", help="model checkpoint (.safetensors from drsedge)")
    p.add_argument("-o", "--output", required=True, help="pruned model .safetensors (config with per-block widths inside)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--ratio", type=_float_type(0.0, inclusive=False), default=0.5, help="fraction of MSFN hidden channels to remove")
    g.add_argument("--target-gmacs", type=_float_type(0.0, inclusive=False), help="prune until the model needs at most this many GMACs at --hw")
    p.add_argument("--hw", "--size", dest="size", type=POS, nargs=2, default=[256, 256], metavar=("H", "W"))
    p.add_argument("--importance", choices=("l1", "l2", "taylor"), default="l2")
    p.add_argument("--scope", nargs="+", choices=("msfn", "attention", "heads", "streams", "mlp", "mffn"),
                   help="what to prune: DRSformer (default msfn): MSFN hidden channels, the same channels in every attention "
                        "head, whole heads, residual-stream widths (patch embed, levels, Down/Upsample, skips); "
                        "UDR-S2Former (default mlp mffn): decoder MLP hidden units, latent MFFN gate pairs")
    p.add_argument("--iterations", type=POS, default=1, help="prune in this many steps, fine-tuning after each")
    p.add_argument("--teacher", help="teacher for distillation fine-tuning (the same loss as `drsedge distill`)")
    p.add_argument("--unlabeled", nargs="+", metavar="DIR")
    p.add_argument("--test", help="paired folder to report PSNR before/after (not used for decisions)")
    p.add_argument("--limit", type=POS, default=5)
    _add_train_args(p, 100, out=False)
    p.set_defaults(fn=cmd_prune)
