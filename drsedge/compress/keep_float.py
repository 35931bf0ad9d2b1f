"""Budget-driven INT8: which modules must stay in float for the INT8 model to meet its ΔPSNR budget?

Greedy search, each step measured, nothing assumed:

1. quantize with the current keep-float set (:func:`drsedge.compress.quantize.quantize_onnx`);
2. ΔPSNR-Y of INT8 vs FP32 against ground truth on a paired *validation* folder (never the
   held-out test set), the same quantity the drift report's ``onnx_int8`` budget checks;
3. within budget: stop. Otherwise localise (:func:`drsedge.compress.localize.localize`, per-layer
   error vs FP32 on the calibration images), rank the units (``granularity="stage"``: the model's
   top-level children such as ``decoder_level1`` or ``output``, by the summed error their layers
   add; ``"module"``: single modules such as ``latent.1.attn``), quantize and measure with each of
   the ``candidates`` best-ranked units kept in float, and keep the one that recovers the most dB.

Per-layer error alone is a poor guide here: INT8 noise in DRSformer is spread evenly (on the
demo teacher the 15 worst single modules each add 0.09-0.13 relative error, and keeping one in
float recovers <= 0.1 dB), while keeping one *stage* in float can recover all of it (measured on
the demo teacher, Rain200H test: -0.38 dB fully quantized; ``decoder_level1`` kept in float
+0.06 dB, ``encoder_level1`` +0.65 dB). The ranking is only a prior (it put ``encoder_level1``
outside the top 3 there), so the default unit is the stage and each step measures its candidates.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from drsedge.calibration.calib import CalibrationSet
from drsedge.choices import KEEP_FLOAT_UNITS
from drsedge.data.folders import Pair
from drsedge.errors import DrsedgeError
from drsedge.fileio import atomic_write

from .quantize import count_qdq, quantize_onnx


@dataclass
class SearchStep:
    """One candidate: modules kept in float, its INT8 PSNR-Y (dB) and drop vs FP32 (dB, negative = worse), Q/DQ pairs."""

    keep_float: list[str]
    psnr: float
    delta_db: float
    qdq: int
    fidelity_db: float = float("nan")  # mean PSNR-Y of the INT8 output against the FP32 output (dB)
    fidelity_min_db: float = float("nan")  # its worst image


@dataclass
class SearchResult:
    fp32_psnr: float
    budget_db: float | None
    steps: list[SearchStep] = field(default_factory=list)
    min_fidelity_db: float | None = None  # floor on the worst image's PSNR-Y of INT8 vs the FP32 output

    def meets(self, s: SearchStep) -> bool:
        """Both targets that were set: ΔPSNR-Y vs ground truth within the budget, fidelity to FP32 above the floor."""
        gt = self.budget_db is None or s.delta_db >= -self.budget_db
        fid = self.min_fidelity_db is None or s.fidelity_min_db >= self.min_fidelity_db
        return gt and fid

    def score(self, s: SearchStep) -> float:
        """What a step ranks candidates by: the fidelity floor's margin when it is a target, else ΔPSNR-Y."""
        return s.fidelity_min_db if self.min_fidelity_db is not None else s.delta_db

    @property
    def ok(self) -> bool:
        return bool(self.steps) and self.meets(self.steps[-1])

    def table(self) -> str:
        targets = ([f"budget -{self.budget_db:.2f} dB vs ground truth"] if self.budget_db is not None else []) + (
            [f"fidelity >= {self.min_fidelity_db:.1f} dB vs FP32 on every image"] if self.min_fidelity_db is not None else [])
        rows = [f"FP32 PSNR-Y {self.fp32_psnr:.2f} dB; " + "; ".join(targets), "",
                "| step | kept in float | INT8 PSNR-Y (dB) | Δ vs FP32 (dB) | fidelity vs FP32 mean / min (dB) | Q/DQ pairs |",
                "|---|---|---|---|---|---|"]
        rows += [f"| {i} | {', '.join(s.keep_float) or '–'} | {s.psnr:.2f} | {s.delta_db:+.3f} | "
                 f"{s.fidelity_db:.2f} / {s.fidelity_min_db:.2f} | {s.qdq} |" for i, s in enumerate(self.steps)]
        return "\n".join(rows)


GRANULARITIES = KEEP_FLOAT_UNITS


def _rank_units(jumps: list[tuple[str, float]], granularity: str) -> list[str]:
    """Units to try, most added error first: modules as ranked, or stages by the summed error of their modules."""
    if granularity == "module":
        return [m for m, _ in jumps if m]
    total: dict[str, float] = {}
    for m, e in jumps:
        if m:
            total[m.split(".")[0]] = total.get(m.split(".")[0], 0.0) + max(e, 0.0)
    return sorted(total, key=lambda k: -total[k])


def _int8_delta(fp32: Path, int8: Path, val: list[Pair]) -> tuple[float, float, float, float, float]:
    """FP32 and INT8 PSNR-Y vs ground truth, their difference, and INT8's mean / worst PSNR-Y vs the FP32 output (dB)."""
    from drsedge.metrics.drift import Stage, evaluate_stages
    from drsedge.runtime.runners import OrtRunner

    rep = evaluate_stages([Stage("fp32", OrtRunner(fp32), "ort"), Stage("int8", OrtRunner(int8), "ort", parent="fp32")], val,
                          latency_hw=None, progress=False)
    q = rep.stages[1]
    fid = [r["psnr_vs_parent"] for r in q.per_image.values() if "psnr_vs_parent" in r]
    return rep.stages[0].psnr, q.psnr, q.delta_vs_prev, q.psnr_vs_parent, min(fid) if fid else float("nan")


def search_keep_float(
    src: str | os.PathLike, dst: str | os.PathLike, calib: CalibrationSet, val: list[Pair], *, budget_db: float | None = None,
    backend: str = "nncf", quantize_depthwise: bool = False, keep_float: list[str] | None = None, max_steps: int = 4,
    candidates: int = 3, localize_images: int = 4, granularity: str = "stage", min_fidelity_db: float | None = None,
    high_precision: str = "fp32",
) -> SearchResult:
    """Quantize ``src`` (FP32 ONNX), keeping modules in float until the targets hold on ``val``: ΔPSNR-Y vs ground
    truth within ``budget_db`` and/or fidelity (PSNR-Y of the INT8 output against the FP32 output, every image) of at
    least ``min_fidelity_db``. With a fidelity floor, candidates are ranked by the worst image's fidelity.

    Each step quantizes and evaluates up to ``candidates`` models (one per candidate module).
    Writes ``dst`` (atomic) only when the budget is met; otherwise nothing is written and the
    result (``ok`` False) carries every step's measurement.

    Raises:
        DrsedgeError: empty validation set, a validation folder that is the held-out test set,
            or the errors of :func:`quantize_onnx`.
    """
    from drsedge.compress.localize import localize, worst_modules

    if granularity not in GRANULARITIES:
        raise DrsedgeError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    if not val:
        raise DrsedgeError("keep-float search needs paired validation images (--val DIR)")
    if budget_db is None and min_fidelity_db is None:
        raise DrsedgeError("keep-float search needs a target: a ΔPSNR budget (--budget) and/or a fidelity floor (--min-fidelity)")
    from drsedge.data.heldout import guard_not_held_out

    guard_not_held_out([f for p in val for f in (p.rainy, p.clean)], "validation")
    kept = list(keep_float or [])
    res = SearchResult(float("nan"), budget_db, min_fidelity_db=min_fidelity_db)
    with tempfile.TemporaryDirectory(prefix="drsedge-kf-") as d:

        def measure(keep: list[str]) -> tuple[SearchStep, Path]:
            cand = Path(tempfile.mkdtemp(dir=d)) / "int8.onnx"
            quantize_onnx(src, cand, calib, backend, quantize_depthwise, keep, high_precision)
            res.fp32_psnr, psnr, delta, fid, fid_min = _int8_delta(Path(src), cand, val)
            return SearchStep(list(keep), psnr, delta, count_qdq(cand)["QuantizeLinear"], fid, fid_min), cand

        best, best_path = measure(kept)
        res.steps.append(best)
        while not res.ok and len(res.steps) <= max_steps:
            ranked = _rank_units(worst_modules(localize(src, best_path, calib.inputs[:localize_images]), top=10_000), granularity)
            fresh = [m for m in ranked if not any((m + ".").startswith(k + ".") for k in best.keep_float)][:candidates]
            if not fresh:
                break
            tried = [measure([*best.keep_float, m]) for m in fresh]
            best, best_path = max(tried, key=lambda t: res.score(t[0]))
            res.steps.append(best)
        if res.ok:
            atomic_write(dst, lambda tmp: shutil.copyfile(best_path, tmp))
    return res
