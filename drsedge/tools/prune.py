"""``drsedge prune``: structural pruning with distillation fine-tuning."""

from __future__ import annotations

from drsedge.run_config import PruneSection, cli_choice

from .args import POS, add_train_args, float_type, samples, train_cfg


def cmd_prune(a) -> int:
    from drsedge.data.folders import find_pairs
    from drsedge.fileio import refuse_overwrite
    from drsedge.run_config import PruneSection, make_options
    from drsedge.stages import prune

    refuse_overwrite(a.output, [a.model, a.teacher], "pruned model")
    opts = make_options(PruneSection, "drsedge prune", enabled=True, ratio=a.ratio, importance=a.importance, scope=a.scope,
                        iterations=a.iterations)
    hw = tuple(a.size)
    inputs = prune.PruneInputs(a.model, a.teacher, samples(a, paired_only=False) if (a.train or a.unlabeled) else [],
                               find_pairs(a.test, a.limit) if a.test else [])
    res = prune.run(opts, inputs, a.output, finetune=train_cfg(a), target_gmacs=a.target_gmacs, hw=hw, device=a.device,
                    precision=a.precision)
    print(f"| model | params | GMACs @ {hw[0]}x{hw[1]} | PSNR-Y (dB){' on ' + str(a.test) if inputs.test_pairs else ''} |")
    print("|---|---|---|---|")
    for name, info, p in res.detail["rows"]:
        print(f"| {name} | {info.params:,} | {info.gmacs:.3f} | {'–' if p is None else f'{p:.2f}'} |")
    m = res.metrics
    print(f"pruned model: {a.output} ({'+'.join(m['scopes'])} ratio {m['ratio']:.3f}, {a.importance} importance, {a.iterations} step(s))")
    return 0


def register(sub) -> None:
    p = sub.add_parser("prune", help="structural pruning (MSFN width, channels per head), with distillation fine-tuning between steps")
    p.add_argument("model", help="model checkpoint (.safetensors from drsedge)")
    p.add_argument("-o", "--output", required=True, help="pruned model .safetensors (config with per-block widths inside)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--ratio", type=float_type(0.0, inclusive=False), default=cli_choice(PruneSection, "ratio")["default"], help="fraction of MSFN hidden channels to remove")
    g.add_argument("--target-gmacs", type=float_type(0.0, inclusive=False), help="prune until the model needs at most this many GMACs at --hw")
    p.add_argument("--hw", "--size", dest="size", type=POS, nargs=2, default=[256, 256], metavar=("H", "W"))
    p.add_argument("--importance", **cli_choice(PruneSection, "importance"))
    p.add_argument("--scope", nargs="+", **cli_choice(PruneSection, "scope"),
                   help="what to prune: DRSformer (default msfn): MSFN hidden channels, the same channels in every attention "
                        "head, whole heads, residual-stream widths (patch embed, levels, Down/Upsample, skips), whole transformer blocks "
                        "(depth: ranked by the output change without them on training crops); "
                        "UDR-S2Former (default mlp mffn): decoder MLP hidden units, latent MFFN gate pairs; AST (default frfn): "
                        "FRFN hidden units")
    p.add_argument("--iterations", type=POS, default=cli_choice(PruneSection, "iterations")["default"], help="prune in this many steps, fine-tuning after each")
    p.add_argument("--teacher", help="teacher for distillation fine-tuning (the same loss as `drsedge distill`)")
    p.add_argument("--unlabeled", nargs="+", metavar="DIR")
    p.add_argument("--test", help="paired folder to report PSNR before/after (not used for decisions)")
    p.add_argument("--limit", type=POS, default=5)
    add_train_args(p, 100, out=False)
    p.set_defaults(fn=cmd_prune)
