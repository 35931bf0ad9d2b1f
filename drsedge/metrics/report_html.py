"""``report.html``: the drift report as one self-contained page people look at.

Beside ``report.md`` / ``report.json``: the stage table, PSNR-Y per stage and its change vs the stage it came
from as bars (matplotlib), the worst test image's crops side by side (rainy input, every stage, ground
truth), and a heat map of |INT8 - FP32| (or of the last derived stage against its parent). Every image is
embedded as a base64 PNG, so the file can be mailed or archived alone.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path

import numpy as np

from drsedge.fileio import atomic_write

from .drift import DriftReport, fmt, fmt_ci


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _img_png(arr: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _bars(rep: DriftReport) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s.name for s in rep.stages]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    psnr = [s.psnr for s in rep.stages]
    axes[0].bar(names, psnr, color="#4C72B0")
    if not np.isnan(rep.input_psnr):
        axes[0].axhline(rep.input_psnr, color="#C44E52", ls="--", label=f"rainy input {rep.input_psnr:.2f} dB")
        axes[0].legend(loc="lower right", fontsize=8)
    lo = min([*psnr, rep.input_psnr if not np.isnan(rep.input_psnr) else min(psnr)]) - 1
    axes[0].set_ylim(lo, max(psnr) + 0.5)
    axes[0].set_ylabel("PSNR-Y (dB)")
    axes[0].set_title("vs ground truth")
    deltas = [s.delta_vs_prev for s in rep.stages]
    colors = ["#C44E52" if not s.within_budget else "#55A868" for s in rep.stages]
    cis = [s.delta_vs_prev_ci for s in rep.stages]
    err = np.array([[d - c[0], c[1] - d] if c else [0.0, 0.0] for d, c in zip(deltas, cis)]).T  # 95 % paired-bootstrap CI
    axes[1].bar(names, deltas, color=colors, yerr=err, capsize=4, error_kw={"lw": 1})
    for i, s in enumerate(rep.stages):
        if s.budget_db is not None:
            axes[1].plot([i - 0.4, i + 0.4], [-s.budget_db] * 2, color="black", lw=1)
    axes[1].axhline(0, color="grey", lw=0.5)
    axes[1].set_ylabel("Δ PSNR (dB)")
    axes[1].set_title("change vs the stage it came from, 95 % CI (black: budget)", fontsize=9)
    for ax in axes:
        ax.tick_params(axis="x", rotation=30, labelsize=8)
    fig.tight_layout()
    out = _png(fig)
    plt.close(fig)
    return out


def _heatmap(diff: np.ndarray, title: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    im = ax.imshow(diff, cmap="magma", vmin=0, vmax=max(float(diff.max()), 1e-6))
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    fig.colorbar(im, ax=ax, fraction=0.046, label="|Δ| (8-bit levels)")
    out = _png(fig)
    plt.close(fig)
    return out


def _crop(a: np.ndarray, size: int = 192) -> np.ndarray:
    h, w = a.shape[:2]
    i, j = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return a[i : i + size, j : j + size]


def report_html(rep: DriftReport, worst: dict[str, np.ndarray] | None = None) -> str:
    """The page. ``worst``: label -> ``[H, W, 3]`` uint8 for the worst image (``input``, each stage, ``target``)."""
    rows = []
    for s in rep.stages:
        lat = f"{s.latency['median_ms']:.1f} / {s.latency['p95_ms']:.1f}" if s.latency else "–"
        fid = "–" if s.psnr_vs_parent is None else f"{s.psnr_vs_parent:.2f} dB / {s.max_abs_vs_parent:.3f}"
        if s.psnr_vs_parent_ci:
            fid = f"{s.psnr_vs_parent:.2f} [{s.psnr_vs_parent_ci[0]:.2f}, {s.psnr_vs_parent_ci[1]:.2f}] dB / {s.max_abs_vs_parent:.3f}"
        budget = "–" if s.budget_db is None else (f"-{s.budget_db:.2f} " + ("ok" if s.within_budget else "<b>BROKEN</b>"))
        if s.budget_within_noise:
            budget += f" (within noise at n={rep.n_images})"
        excl = "–" if s.delta_excludes_zero is None else ("yes" if s.delta_excludes_zero else "no")
        tail = "–" if s.frac_loss_over_0_1db is None else f"{s.frac_loss_over_0_1db:.0%} / {s.frac_loss_over_0_5db:.0%}, {s.worst_delta_vs_prev:+.2f}"
        gmacs = fmt(s.info.get("macs") / 1e9 if s.info.get("macs") else None, ".3f")
        rows.append(f"<tr><td>{html.escape(s.name)}</td><td>{html.escape(s.runtime)}</td><td>{s.psnr:.2f}</td><td>{s.ssim:.4f}</td>"
                    f"<td>{html.escape(fmt_ci(s.delta_vs_prev, s.delta_vs_prev_ci))}</td><td>{excl}</td><td>{budget}</td><td>{fid}</td><td>{tail}</td><td>{html.escape(s.worst_image)} ({s.worst_psnr:.2f})</td>"
                    f"<td>{gmacs}</td><td>{lat}</td></tr>")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>drsedge drift report</title><style>",
        "body{font-family:sans-serif;margin:24px;color:#222} table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right} td:first-child,th:first-child{text-align:left}"
        ".ok{color:#2a7a2a}.bad{color:#b22} figure{display:inline-block;margin:4px;text-align:center;font-size:12px}",
        "</style></head><body>",
        "<h1>drsedge drift report</h1>",
        f"<p>Test set <code>{html.escape(rep.test_dir)}</code>, {rep.n_images} images, PSNR-Y / SSIM-Y ({rep.convention} protocol). "
        f"Rainy input without deraining: {fmt(rep.input_psnr, '.2f')} dB / {fmt(rep.input_ssim, '.4f')}.</p>",
        f"<p class='{'ok' if rep.ok else 'bad'}'><b>{'All stages within budget.' if rep.ok else 'Budget broken: ' + html.escape('; '.join(rep.failures()))}</b></p>",
        "<table><tr><th>stage</th><th>runtime</th><th>PSNR (dB)</th><th>SSIM</th><th>Δ vs prev [95 % CI]</th><th>CI excludes 0</th><th>budget</th>"
        "<th>fidelity vs parent (PSNR [95 % CI] / max abs)</th><th>tail: &gt;0.1 / &gt;0.5 dB, worst Δ</th><th>worst image (dB)</th><th>GMACs</th><th>latency median / p95 (ms)</th></tr>",
        *rows, "</table>",
        f"<h2>PSNR per stage</h2><img alt='PSNR bars' src='data:image/png;base64,{_bars(rep)}'>",
    ]
    if worst:
        parts.append(f"<h2>Worst image: {html.escape(rep.stages[-1].worst_image)} (centre crops)</h2><div>")
        for label, arr in worst.items():
            parts.append(f"<figure><img alt='{html.escape(label)}' src='data:image/png;base64,{_img_png(_crop(arr))}'>"
                         f"<figcaption>{html.escape(label)}</figcaption></figure>")
        parts.append("</div>")
        derived = [s for s in rep.stages if s.parent and s.parent in worst and s.name in worst]
        if derived:
            s = next((d for d in derived if d.name == "onnx_int8"), derived[-1])
            diff = np.abs(worst[s.name].astype(np.int16) - worst[s.parent].astype(np.int16)).max(axis=2)
            parts.append(f"<h2>|{html.escape(s.name)} − {html.escape(s.parent)}| on the worst image</h2>"
                         f"<img alt='difference heat map' src='data:image/png;base64,{_heatmap(diff, f'{s.name} vs {s.parent}: max {diff.max()} levels')}'>")
    if rep.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in rep.notes) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html(rep: DriftReport, out_dir: str | os.PathLike, worst: dict[str, np.ndarray] | None = None) -> Path:
    """Write ``out_dir/report.html`` atomically."""
    text = report_html(rep, worst)
    return atomic_write(Path(out_dir) / "report.html", lambda tmp: Path(tmp).write_text(text))
