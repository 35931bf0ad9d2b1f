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
class StageResult:
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

    @property
    def within_budget(self) -> bool:
        return self.budget_db is None or self.delta_vs_prev >= -self.budget_db


@dataclass
class DriftReport:
    stages: list[StageResult]
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
    overlap: int = 32,
    budgets: dict[str, float] | None = None,
    latency_hw: tuple[int, int] | None = (256, 256),
    latency_runs: int = 5,
    progress: bool = True,
) -> DriftReport:
    """Evaluate ``stages`` (the first is the reference teacher) on ``pairs``.

    Args:
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
    results: list[StageResult] = []
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
        results.append(
            StageResult(
                name=s.name, runtime=s.runtime, psnr=psnr, ssim=_mean(rows, "ssim"), psnr_vs_teacher=_mean(rows, "psnr_vs_teacher"),
                delta_vs_teacher=psnr - teacher_psnr, delta_vs_prev=psnr - prev_psnr, worst_image=worst,
                worst_psnr=rows[worst]["psnr"], per_image=rows, latency=lat, info=s.info, budget_db=budgets.get(s.name),
                parent=s.parent if s.parent in by_name else None, psnr_vs_parent=sum(fid) / len(fid) if fid else None,
                max_abs_vs_parent=max(mabs) if mabs else None,
            )
        )
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
        "| stage | runtime | PSNR (dB) | SSIM | Δ vs teacher | Δ vs prev | budget | vs teacher (dB) | fidelity (dB / max abs) | worst image (dB) | params | GMACs | latency median / p95 (ms) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in rep.stages:
        lat = f"{s.latency['median_ms']:.1f} / {s.latency['p95_ms']:.1f} @ {s.latency['height']}x{s.latency['width']}" if s.latency else "–"
        budget = "–" if s.budget_db is None else f"-{s.budget_db:.2f} {'ok' if s.within_budget else '**BROKEN**'}"
        params = s.info.get("params")
        macs = s.info.get("macs")
        lines.append(
            f"| {s.name} | {s.runtime} | {s.psnr:.2f} | {s.ssim:.4f} | {s.delta_vs_teacher:+.2f} | {s.delta_vs_prev:+.2f} | {budget} | "
            f"{'ref' if s is rep.stages[0] else format(s.psnr_vs_teacher, '.2f')} | "
            f"{'–' if s.psnr_vs_parent is None else f'{s.psnr_vs_parent:.2f} / {s.max_abs_vs_parent:.3f} vs {s.parent}'} | {s.worst_image} ({s.worst_psnr:.2f}) | {fmt(params, ',') if params else '–'} | "
            f"{fmt(macs / 1e9 if macs else None, '.3f')} | {lat} |"
        )
    lines += ["", "**Result: " + ("all stages within budget**" if rep.ok else "budget broken**: " + "; ".join(rep.failures())), ""]
    if rep.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in rep.notes] + [""]
    return "\n".join(lines)
