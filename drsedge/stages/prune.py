"""Prune stage: structural pruning in ``iterations`` steps (Taylor gradients before each step when asked) with
distillation fine-tuning after each. Used by ``drsedge prune`` and the pipeline's ``prune`` stage."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from drsedge.errors import DrsedgeError
from drsedge.run_config import PruneSection

from .result import StageResult

TAYLOR_BATCH = 10_000  # Taylor gradients of step i use sampler batch TAYLOR_BATCH + i: crops no fine-tune step draws
DEPTH_PROBE_PATCH, DEPTH_PROBE_BATCH, DEPTH_PROBE_SEED = 64, 8, 20_000  # the depth scope's probe: 8 training crops of 64 px


@dataclass
class PruneInputs:
    """``model``: the checkpoint to prune. ``teacher``: distillation target of the fine-tuning and of the Taylor loss
    (None: the model's own output, and no fine-tuning). ``samples``: decoded training images
    (:func:`drsedge.data.sampling.load_samples`; never the test set). ``test_pairs``: paired images whose PSNR-Y is
    reported after each step (never used for a decision)."""

    model: str | os.PathLike
    teacher: str | os.PathLike | None = None
    samples: list = field(default_factory=list)
    test_pairs: list = field(default_factory=list)


def run(options: PruneSection, inputs: PruneInputs, out: str | os.PathLike, *, finetune, target_gmacs: float | None = None,
        hw: tuple[int, int] = (256, 256), resume_key: str | None = None, progress: bool = True, log: Callable[[str], None] = print,
        device: str = "cpu", precision: str = "fp32") -> StageResult:
    """Prune ``inputs.model`` by ``options`` (ratio, or the ratio that reaches ``target_gmacs`` GMACs at ``hw``; the
    family's scopes by default, :func:`drsedge.compress.prune_driver.family_scopes`) and write ``out`` (.safetensors
    with the pruned widths in its config).

    ``finetune``: the :class:`drsedge.training.loop.TrainConfig` of the fine-tuning after each step (0 steps: none;
    always a warm start). Step ``i`` trains on sampler seed ``finetune.seed + i - 1`` in ``out``'s folder
    ``finetune{i}``, resumable when ``resume_key`` is given (the pipeline's stage key).

    Artifacts: ``model``. Metrics: ratio, scopes, the pruned widths. ``detail["rows"]``: (name, ModelInfo, PSNR-Y dB or
    None) for the original and after every step and fine-tune.

    Raises:
        DrsedgeError: a scope of the other family, ``target_gmacs`` on UDR-S2Former, Taylor importance without training
            images; the errors of the prune functions.
    """
    from drsedge.compress.prune import taylor_gradients
    from drsedge.compress.prune_driver import family_scopes, iterative_prune
    from drsedge.data.sampling import CropSampler
    from drsedge.models.checkpoint import load_any, save_model
    from drsedge.models.info import model_info
    from drsedge.training.loop import train

    model, cfg = load_any(inputs.model)
    scopes = family_scopes(cfg, options.scope)
    probe = None  # depth: blocks ranked by the output change on real training crops (drsedge.compress.prune_depth)
    if "depth" in scopes and inputs.samples:
        probe = CropSampler(inputs.samples, DEPTH_PROBE_PATCH, DEPTH_PROBE_BATCH, DEPTH_PROBE_SEED).batch(0)[0]
    if target_gmacs is not None:
        from drsedge.models.family import family_of_config

        fam = family_of_config(cfg)
        if not fam.macs_target:
            raise DrsedgeError(f"{inputs.model}: a {fam.label} is pruned by ratio (--ratio), not --target-gmacs")
        from drsedge.compress.prune import ratio_for_macs

        ratio = ratio_for_macs(model, cfg, int(target_gmacs * 1e9), hw, scopes, probe)
    else:
        ratio = options.ratio
    if options.importance == "taylor" and not inputs.samples:
        raise DrsedgeError("taylor importance needs training images (--train / --unlabeled, data.train) to compute gradients")
    teacher = load_any(inputs.teacher)[0] if inputs.teacher else None
    ft = dataclasses.replace(finetune, zero_init_output=False)
    rows = [("original", model_info(model, *hw), _psnr(model, inputs.test_pairs))]
    out = Path(out)

    def taylor(m, it):
        if options.importance == "taylor":  # L1 to the teacher (or the model itself) on one training crop batch
            x, _, _ = CropSampler(inputs.samples, ft.patch, ft.batch_size, ft.seed).batch(TAYLOR_BATCH + it)
            taylor_gradients(m, x, (teacher if teacher is not None else m)(x).detach())

    def after(m, c, it):
        rows.append((f"pruned step {it}", model_info(m, *hw), _psnr(m, inputs.test_pairs)))
        if teacher is not None and inputs.samples and ft.steps > 0:
            train(m, CropSampler(inputs.samples, ft.patch, ft.batch_size, ft.seed + it - 1), ft, out.parent / f"finetune{it}",
                  teacher=teacher, resume=resume_key is not None, key=resume_key or "", progress=progress, log=log, device=device,
                  precision=precision)
            rows.append((f"fine-tuned step {it}", model_info(m, *hw), _psnr(m, inputs.test_pairs)))

    model, cfg = iterative_prune(model, cfg, ratio=ratio, importance=options.importance, scopes=scopes, iterations=options.iterations,
                                 before_step=taylor, after_step=after, probe=probe)
    from drsedge.fileio import sha256  # the source's bytes, not its path: two identical runs write identical weights
    from drsedge.weights import resolve

    save_model(out, model, cfg, {"pruned_from_sha256": sha256(resolve(inputs.model)), "ratio": ratio,
                                 "importance": options.importance})
    widths = ("ffn_hidden", "attn_inner", "attn_heads", "stream_widths", "depths", "mlp_hidden", "frfn_hidden")  # those the family has
    metrics = {"ratio": ratio, "scopes": scopes, **{k: getattr(cfg, k) for k in widths if hasattr(cfg, k)}}
    return StageResult({"model": out}, metrics, {"rows": rows})


def _psnr(model, pairs) -> float | None:
    """Mean PSNR-Y (dB) of ``model`` on ``pairs`` (whole images, tiled as :func:`drsedge.runtime.tiling.restore`)."""
    if not pairs:
        return None
    from drsedge.data.images import read_image, to_tensor, to_uint8
    from drsedge.metrics.psnr_ssim import psnr_y
    from drsedge.runtime.runners import TorchRunner
    from drsedge.runtime.tiling import restore

    r = TorchRunner(model)
    vals = [psnr_y(to_uint8(restore(r, to_tensor(read_image(p.rainy)))), to_uint8(to_tensor(read_image(p.clean)))) for p in pairs]
    return sum(vals) / len(vals)
