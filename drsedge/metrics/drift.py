"""Accuracy drift across compression stages (teacher -> student -> ONNX FP32 -> ONNX INT8 -> ...).

Every stage derains the same paired test images with the same pre/post
processing (:func:`drsedge.runtime.restore`). Per stage: PSNR-Y/SSIM-Y vs ground
truth, PSNR-Y vs the teacher's output, the change (dB) vs the teacher and vs
the previous stage, the worst image, and latency. A budget is the largest
allowed PSNR drop (dB) of a stage vs the previous stage.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from tqdm import tqdm

from drsedge.data.folders import Pair
from drsedge.data.images import read_image, read_uint8, to_tensor, to_uint8
from drsedge.errors import DrsedgeError
from drsedge.runtime.tiling import restore

from .psnr_ssim import psnr_y, ssim_y


@dataclass
class Stage:
    """A stage to evaluate: ``runner(x [B,3,H,W]) -> y``; ``runtime`` names where it runs; ``info`` is free-form (params, MACs, path)."""

    name: str
    runner: Callable[[torch.Tensor], torch.Tensor]
    runtime: str
    info: dict = field(default_factory=dict)
    parent: str | None = None  # the stage this one was derived from (INT8/FP16 ONNX: onnx_fp32); default: the previous stage


@dataclass
class StageDrift:
    """One stage's row of the drift report: PSNR-Y / SSIM (dB, [0, 1]) against ground truth, its drift against the
    teacher, the stage it came from and its parent's output, the worst image, per-image values and latency (ms).
    (Named apart from :class:`drsedge.stages.result.StageResult`, a stage's artifacts and metrics.)"""

    name: str
    runtime: str
    psnr: float
    ssim: float
    psnr_vs_teacher: float
    delta_vs_teacher: float
    delta_vs_prev: float
    worst_image: str
    worst_psnr: float
    per_image: dict[str, dict[str, float]]
    latency: dict | None = None
    info: dict = field(default_factory=dict)
    budget_db: float | None = None
    parent: str | None = None
    psnr_vs_parent: float | None = None  # fidelity: PSNR-Y (dB) of this stage's output against its parent's output
    max_abs_vs_parent: float | None = None  # largest |output - parent output| over the images, in [0, 1] units
    # 95 % paired-bootstrap confidence intervals (dB) of the mean over the test images (:func:`paired_ci`); None for the
    # reference stage, [v, v] when every image has the same value
    delta_vs_teacher_ci: list[float] | None = None
    delta_vs_prev_ci: list[float] | None = None
    psnr_vs_parent_ci: list[float] | None = None
    # the per-image tail of Δ vs prev (the parent when set): fractions of images losing > 0.1 dB and > 0.5 dB, and the
    # worst image's Δ (dB) with its name
    frac_loss_over_0_1db: float | None = None
    frac_loss_over_0_5db: float | None = None
    worst_delta_vs_prev: float | None = None
    worst_delta_image: str | None = None

    @property
    def within_budget(self) -> bool:
        return self.budget_db is None or self.delta_vs_prev >= -self.budget_db

    @property
    def delta_excludes_zero(self) -> bool | None:
        """Whether the 95 % CI of Δ vs prev excludes 0 (the change is more than image-sampling noise)."""
        ci = self.delta_vs_prev_ci
        return None if ci is None else bool(ci[0] > 0 or ci[1] < 0)

    @property
    def budget_within_noise(self) -> bool:
        """The budget's verdict (on the point estimate) would flip somewhere inside the CI of Δ vs prev."""
        ci = self.delta_vs_prev_ci
        return self.budget_db is not None and ci is not None and ci[0] < -self.budget_db <= ci[1]


@dataclass
class DriftReport:
    stages: list[StageDrift]
    n_images: int
    test_dir: str
    convention: str = "matlab"
    input_psnr: float = float("nan")  # the rainy input itself vs ground truth: the no-deraining baseline
    input_ssim: float = float("nan")
    notes: list[str] = field(default_factory=list)  # facts from other stages shown under the table (e.g. FP16 range)
    worst_outputs: dict = field(default_factory=dict, repr=False)  # label -> [H, W, 3] uint8 of the worst image (HTML report)

    @property
    def ok(self) -> bool:
        return all(s.within_budget for s in self.stages)

    def failures(self) -> list[str]:
        return [
            f"{s.name}: {s.delta_vs_prev:+.2f} dB vs {s.parent or 'previous stage'} breaks its budget of -{s.budget_db:.2f} dB"
            for s in self.stages
            if not s.within_budget
        ]

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("worst_outputs")
        d["ok"], d["failures"] = self.ok, self.failures()
        return d


def evaluate_stages(
    stages: list[Stage],
    pairs: list[Pair],
    tile: int | None = None,
    overlap: int | None = None,
    budgets: dict[str, float] | None = None,
    latency_hw: tuple[int, int] | None = (256, 256),
    latency_runs: int = 5,
    progress: bool = True,
) -> DriftReport:
    """Evaluate ``stages`` (the first is the reference teacher) on ``pairs``.

    Args:
        tile: square tiles in px (:func:`drsedge.runtime.tiling.restore`); None: whole frames (a runner of a
            fixed-size model tiles on its own, by :func:`drsedge.runtime.limits.plan_tiles`).
        overlap: px shared by neighbouring tiles; None: the :func:`drsedge.runtime.limits.plan_tiles` default.
        budgets: stage name -> largest allowed PSNR drop in dB vs the previous stage.
        latency_hw: ``(H, W)`` for latency timing (median/p95 ms); None skips timing.

    Raises:
        DrsedgeError: ``latency_hw`` over the 64 MP frame limit (checked before any stage allocates a frame).
    """
    from drsedge.data.images import check_frame_size

    if latency_hw:
        check_frame_size(*latency_hw, "latency size (--latency-size, check.latency_hw)")
    budgets = budgets or {}
    per = {s.name: {} for s in stages}
    base = []
    for pair in tqdm(pairs, desc="check", disable=not progress, dynamic_ncols=True):
        x = to_tensor(read_image(pair.rainy))
        gt = read_uint8(pair.clean)
        rainy = to_uint8(x)
        if rainy.shape == gt.shape:
            base.append((psnr_y(rainy, gt), ssim_y(rainy, gt)))
        ref = None
        floats: dict[str, torch.Tensor] = {}
        outs: dict[str, object] = {}
        for s in stages:
            y = restore(s.runner, x, tile=tile, overlap=overlap)
            out = to_uint8(y)
            if out.shape != gt.shape:
                raise DrsedgeError(f"{pair.rainy}: {s.name} output {out.shape} does not match target {gt.shape}")
            ref = out if ref is None else ref
            floats[s.name], outs[s.name] = y, out
            row = {"psnr": psnr_y(out, gt), "ssim": ssim_y(out, gt), "psnr_vs_teacher": min(psnr_y(out, ref), 100.0)}
            if s.parent in outs:
                row["psnr_vs_parent"] = min(psnr_y(out, outs[s.parent]), 100.0)
                row["max_abs_vs_parent"] = float((y - floats[s.parent]).abs().max())
            per[s.name][pair.name] = row
    results: list[StageDrift] = []
    for s in stages:
        rows = per[s.name]
        worst = min(rows, key=lambda n: rows[n]["psnr"])
        psnr = _mean(rows, "psnr")
        teacher_psnr = results[0].psnr if results else psnr
        by_name = {r.name: r for r in results}
        prev_psnr = by_name[s.parent].psnr if s.parent in by_name else (results[-1].psnr if results else psnr)
        fid = [r["psnr_vs_parent"] for r in rows.values() if "psnr_vs_parent" in r]
        mabs = [r["max_abs_vs_parent"] for r in rows.values() if "max_abs_vs_parent" in r]
        lat = s.runner.latency_ms(*latency_hw, runs=latency_runs) if latency_hw and hasattr(s.runner, "latency_ms") else None
        res = StageDrift(
            name=s.name, runtime=s.runtime, psnr=psnr, ssim=_mean(rows, "ssim"), psnr_vs_teacher=_mean(rows, "psnr_vs_teacher"),
            delta_vs_teacher=psnr - teacher_psnr, delta_vs_prev=psnr - prev_psnr, worst_image=worst,
            worst_psnr=rows[worst]["psnr"], per_image=rows, latency=lat, info=s.info, budget_db=budgets.get(s.name),
            parent=s.parent if s.parent in by_name else None, psnr_vs_parent=sum(fid) / len(fid) if fid else None,
            max_abs_vs_parent=max(mabs) if mabs else None,
        )
        if results:
            prev = by_name[s.parent] if s.parent in by_name else results[-1]
            _add_intervals(res, results[0], prev, [n for n in rows if n in prev.per_image])
        results.append(res)
    rep = DriftReport(results, len(pairs), str(pairs[0].rainy.parent.parent) if pairs else "")
    if results:  # the worst image (of the last stage) through every stage, for the HTML report
        pair = next(p for p in pairs if p.name == results[-1].worst_image)
        x = to_tensor(read_image(pair.rainy))
        rep.worst_outputs = {"input": to_uint8(x)}
        rep.worst_outputs.update({s.name: to_uint8(restore(s.runner, x, tile=tile, overlap=overlap)) for s in stages})
        rep.worst_outputs["target"] = read_uint8(pair.clean)
    if base:
        rep.input_psnr = sum(b[0] for b in base) / len(base)
        rep.input_ssim = sum(b[1] for b in base) / len(base)
    return rep


CI_LEVEL = 0.95
CI_RESAMPLES = 9999
CI_SEED = 0  # fixed: two runs on the same images give the same intervals


def paired_ci(diffs, level: float = CI_LEVEL) -> list[float]:
    """``level`` confidence interval (same unit as ``diffs``, e.g. dB) of the mean of per-image paired differences
    ``diffs`` ``[N]`` float, by the bias-corrected and accelerated (BCa) bootstrap over images (Efron & Tibshirani,
    "An Introduction to the Bootstrap", 1993, ch. 14; ``scipy.stats.bootstrap``, 9,999 resamples, seed
    :data:`CI_SEED`). Pairing removes the between-image variance that both stages share, which is what makes a 0.1 dB
    change measurable on 12 images. Constant ``diffs`` give ``[v, v]``; one image gives ``[v, v]`` too (no spread to
    resample); BCa's NaN on degenerate samples falls back to the percentile interval."""
    import warnings

    import numpy as np
    from scipy import stats

    d = np.asarray(diffs, np.float64)
    if d.size == 0:
        raise DrsedgeError("no paired values to bootstrap")
    if d.size < 2 or np.ptp(d) == 0:
        return [float(d.mean()), float(d.mean())]
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DegenerateDataWarning: handled by the percentile fallback
            r = stats.bootstrap((d,), np.mean, confidence_level=level, n_resamples=CI_RESAMPLES, method=method,
                                random_state=np.random.default_rng(CI_SEED))
        lo, hi = float(r.confidence_interval.low), float(r.confidence_interval.high)
        if math.isfinite(lo) and math.isfinite(hi):
            return [lo, hi]
    return [float(d.mean()), float(d.mean())]


def _add_intervals(res: StageDrift, teacher: StageDrift, prev: StageDrift, names: list[str]) -> None:
    """Paired CIs of Δ vs teacher, Δ vs prev and the fidelity, and the per-image tail of Δ vs prev."""
    rows = res.per_image
    res.delta_vs_teacher_ci = paired_ci([rows[n]["psnr"] - teacher.per_image[n]["psnr"] for n in rows])
    d = {n: rows[n]["psnr"] - prev.per_image[n]["psnr"] for n in names}
    if d:
        res.delta_vs_prev_ci = paired_ci(list(d.values()))
        res.frac_loss_over_0_1db = sum(v < -0.1 for v in d.values()) / len(d)
        res.frac_loss_over_0_5db = sum(v < -0.5 for v in d.values()) / len(d)
        res.worst_delta_image = min(d, key=d.get)
        res.worst_delta_vs_prev = d[res.worst_delta_image]
    fid = [r["psnr_vs_parent"] for r in rows.values() if "psnr_vs_parent" in r]
    if fid:
        res.psnr_vs_parent_ci = paired_ci(fid)


def fmt_ci(v: float, ci: list[float] | None) -> str:
    """``-0.80 [-0.95, -0.66]`` (signed dB with its interval), or the value alone without one."""
    return f"{v:+.2f}" if ci is None else f"{v:+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}]"


def _mean(rows: dict[str, dict[str, float]], key: str) -> float:
    return sum(r[key] for r in rows.values()) / len(rows)


def fmt(v, spec: str) -> str:
    """``format(v, spec)``, or an en dash for None / NaN (report cells)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return format(v, spec)


def report_markdown(rep: DriftReport) -> str:
    """The drift report as a Markdown table plus budget verdicts."""
    lines = [
        "# drsedge drift report",
        "",
        f"Test set: `{rep.test_dir}` ({rep.n_images} images). PSNR-Y / SSIM-Y, {rep.convention} protocol. "
        "Δ columns are PSNR differences in dB; *vs teacher (dB)* is PSNR of the stage's output against the teacher's output.",
        f"Rainy input without deraining: {fmt(rep.input_psnr, '.2f')} dB / {fmt(rep.input_ssim, '.4f')}.",
        "",
        "*Fidelity* is PSNR-Y (dB) of a derived stage's output against the stage it was made from (INT8/FP16 ONNX vs FP32 ONNX) "
        "and the largest absolute difference (output in [0, 1]); Δ vs prev is taken against that stage too.",
        "",
        f"Δ and fidelity carry {CI_LEVEL:.0%} paired-bootstrap confidence intervals over the {rep.n_images} images (BCa, "
        f"scipy.stats.bootstrap, seed {CI_SEED}); *CI excludes 0* says whether Δ vs prev is more than image-sampling noise. "
        "Budgets compare the point estimate. *Tail*: share of images losing more than 0.1 / 0.5 dB against the previous "
        "stage, and the worst image's Δ.",
        "",
        "| stage | runtime | PSNR (dB) | SSIM | Δ vs teacher [95 % CI] | Δ vs prev [95 % CI] | CI excludes 0 | budget | vs teacher (dB) | fidelity (dB [95 % CI] / max abs) | tail: >0.1 / >0.5 dB, worst Δ | worst image (dB) | params | GMACs | latency median / p95 (ms) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in rep.stages:
        lat = f"{s.latency['median_ms']:.1f} / {s.latency['p95_ms']:.1f} @ {s.latency['height']}x{s.latency['width']}" if s.latency else "–"
        budget = "–" if s.budget_db is None else f"-{s.budget_db:.2f} {'ok' if s.within_budget else '**BROKEN**'}"
        params = s.info.get("params")
        macs = s.info.get("macs")
        if s.budget_within_noise:
            budget += f" (within noise at n={rep.n_images})"
        fid = "–"
        if s.psnr_vs_parent is not None:
            ci = s.psnr_vs_parent_ci
            fid = f"{s.psnr_vs_parent:.2f}{f' [{ci[0]:.2f}, {ci[1]:.2f}]' if ci else ''} / {s.max_abs_vs_parent:.3f} vs {s.parent}"
        first = s is rep.stages[0]
        excl = "–" if s.delta_excludes_zero is None else ("yes" if s.delta_excludes_zero else "no")
        tail = "–" if s.frac_loss_over_0_1db is None else (
            f"{s.frac_loss_over_0_1db:.0%} / {s.frac_loss_over_0_5db:.0%}, {s.worst_delta_vs_prev:+.2f} ({s.worst_delta_image})")
        lines.append(
            f"| {s.name} | {s.runtime} | {s.psnr:.2f} | {s.ssim:.4f} | {'–' if first else fmt_ci(s.delta_vs_teacher, s.delta_vs_teacher_ci)} | "
            f"{'–' if first else fmt_ci(s.delta_vs_prev, s.delta_vs_prev_ci)} | {excl} | {budget} | "
            f"{'ref' if first else format(s.psnr_vs_teacher, '.2f')} | {fid} | {tail} | {s.worst_image} ({s.worst_psnr:.2f}) | "
            f"{fmt(params, ',') if params else '–'} | {fmt(macs / 1e9 if macs else None, '.3f')} | {lat} |"
        )
    lines += ["", "**Result: " + ("all stages within budget**" if rep.ok else "budget broken**: " + "; ".join(rep.failures())), ""]
    noisy = [s.name for s in rep.stages if s.budget_within_noise]
    if noisy:
        lines += [f"Within noise at n={rep.n_images}: the budget verdict of {', '.join(noisy)} would flip inside the 95 % CI of "
                  "Δ vs prev; more test images would settle it.", ""]
    if rep.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in rep.notes] + [""]
    return "\n".join(lines)
