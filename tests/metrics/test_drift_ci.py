"""Drift report intervals (issue 35): paired bootstrap CIs for every Δ and fidelity, identical on two runs; the
per-image tail; "within noise" verdicts; CIs in md, json and html."""

import json
import math

import numpy as np
import pytest

from drsedge.data import find_pairs
from drsedge.metrics.drift import Stage, evaluate_stages, paired_ci, report_markdown
from drsedge.metrics.report_html import report_html


def _stages():
    return [Stage("teacher", lambda x: x, "identity"), Stage("brighter", lambda x: (x + 0.03).clamp(0, 1), "offset"),
            Stage("noisy", lambda x: (x + 0.004 * ((x * 997) % 1 - 0.5)).clamp(0, 1), "dither"),
            Stage("coarse", lambda x: ((x + 0.03).clamp(0, 1) * 32).round() / 32, "coarse", parent="brighter")]


@pytest.fixture
def report(data_dir):
    pairs = find_pairs(data_dir / "rain200H" / "train", 6)
    return evaluate_stages(_stages(), pairs, latency_hw=None, progress=False, budgets={"noisy": 0.05, "coarse": 0.01})


def test_intervals_bracket_the_mean_and_repeat(report, data_dir):
    for s in report.stages[1:]:
        for v, ci in ((s.delta_vs_prev, s.delta_vs_prev_ci), (s.delta_vs_teacher, s.delta_vs_teacher_ci)):
            assert ci is not None and ci[0] <= v + 1e-9 and v - 1e-9 <= ci[1]
    brighter = report.stages[1]
    assert brighter.delta_vs_prev_ci[1] < 0 and brighter.delta_excludes_zero  # rain already brightens: +0.03 loses on every image
    coarse = report.stages[3]
    assert coarse.parent == "brighter" and coarse.psnr_vs_parent_ci[0] <= coarse.psnr_vs_parent <= coarse.psnr_vs_parent_ci[1]
    assert report.stages[0].delta_vs_prev_ci is None  # the reference
    again = evaluate_stages(_stages(), find_pairs(data_dir / "rain200H" / "train", 6), latency_hw=None, progress=False,
                            budgets={"noisy": 0.05, "coarse": 0.01})
    assert json.dumps(again.to_dict()["stages"], default=str) == json.dumps(report.to_dict()["stages"], default=str)


def test_tail_fractions_match_the_per_image_deltas(report):
    s, prev = report.stages[1], report.stages[0]
    d = {n: s.per_image[n]["psnr"] - prev.per_image[n]["psnr"] for n in s.per_image}
    assert s.frac_loss_over_0_1db == sum(v < -0.1 for v in d.values()) / len(d)
    assert s.frac_loss_over_0_5db == sum(v < -0.5 for v in d.values()) / len(d)
    assert s.worst_delta_image == min(d, key=d.get) and math.isclose(s.worst_delta_vs_prev, min(d.values()))


def test_reports_show_intervals(report):
    md = report_markdown(report)
    s = report.stages[1]
    assert f"{s.delta_vs_prev:+.2f} [{s.delta_vs_prev_ci[0]:+.2f}, {s.delta_vs_prev_ci[1]:+.2f}]" in md
    assert "CI excludes 0" in md and "BCa" in md
    d = report.to_dict()
    assert d["stages"][1]["delta_vs_prev_ci"] == s.delta_vs_prev_ci and "frac_loss_over_0_1db" in d["stages"][1]
    html = report_html(report)
    assert "95 % CI" in html and f"[{s.delta_vs_prev_ci[0]:+.2f}, {s.delta_vs_prev_ci[1]:+.2f}]" in html


def test_within_noise_is_said():
    """A stage whose budget verdict flips inside its CI is marked, in the table and under it."""
    from drsedge.metrics.drift import DriftReport, StageDrift

    mk = lambda name, psnr, ci, budget=None: StageDrift(name, "x", psnr, 0.9, 0, 0, psnr - 30, "1", psnr, {}, budget_db=budget,
                                                          delta_vs_prev_ci=ci)
    rep = DriftReport([mk("teacher", 30.0, None), mk("int8", 29.95, [-0.2, 0.1], budget=0.1)], 12, "t")
    assert rep.ok and rep.stages[1].budget_within_noise
    assert "within noise at n=12" in report_markdown(rep)


def test_paired_ci_degenerate_and_known_values():
    assert paired_ci([0.0, 0.0, 0.0]) == [0.0, 0.0] and paired_ci([0.3]) == [0.3, 0.3]
    rng = np.random.default_rng(1)
    d = rng.normal(-0.5, 0.2, 100)
    lo, hi = paired_ci(d)
    assert lo < d.mean() < hi and 0.05 < hi - lo < 0.1  # about 2 x 1.96 x 0.2 / sqrt(100) = 0.078
    assert paired_ci(d) == [lo, hi]
