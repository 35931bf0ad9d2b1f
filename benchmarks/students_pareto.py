"""PSNR against 720p CPU latency for every student of ``bench_students.py``: the Pareto table and plot (issue 34).

Each result's model is exported (deploy structure, dynamic H/W, native attention) and timed at 720x1280 in ONNX Runtime
and OpenVINO (CPU), interleaved (runtime A, runtime B, A, B, ...) so both see the same machine state; medians of
``--runs`` calls after one warm-up each. PSNR-Y is the result's Rain100L score (all 100 pairs, scored once, with its
95 % CI) from the bench JSON; nothing here is tuned on Rain100L.

    python benchmarks/students_pareto.py [--results benchmarks/results/bench_students.json ...] [--runs 5] \\
        [--out benchmarks/results/students_pareto.json] [--plot docs/students_pareto.png]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

# the shipped models as reference points: Rain100L (all 100 pairs) from their model cards (drsedge/weights/*.md)
SHIPPED = {
    "shipped_student": {"model": "shipped:student", "arm": "shipped", "steps": None, "seed": 0, "rain100L_all": {"psnr": 29.09, "ci95": [28.40, 29.73]}},
    "shipped_teacher": {"model": "shipped:teacher", "arm": "shipped", "steps": None, "seed": 0, "rain100L_all": {"psnr": 31.04, "ci95": [30.32, 31.72]}},
}


def time_interleaved(runners: dict, x: np.ndarray, runs: int) -> dict[str, float]:
    """Median ms per runner, calls interleaved after one warm-up each."""
    for r in runners.values():
        r(x)
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(runs):
        for k, r in runners.items():
            t0 = time.perf_counter()
            r(x)
            times[k].append((time.perf_counter() - t0) * 1e3)
    return {k: round(statistics.median(v), 1) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", nargs="+", type=Path, default=[Path("benchmarks/results/bench_students.json")])
    ap.add_argument("--runs-dir", type=Path, default=Path("runs/bench_students"), help="where bench_students.py trained the models")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-shipped", dest="shipped", action="store_false", help="leave out the shipped student and teacher")
    ap.add_argument("--hw", type=int, nargs=2, default=[720, 1280])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/students_pareto.json"))
    ap.add_argument("--plot", type=Path, default=Path("docs/students_pareto.png"))
    a = ap.parse_args()

    from drsedge.export import export_onnx
    from drsedge.models.checkpoint import load_any
    from drsedge.runtime.onnx_np import OnnxModel
    from drsedge.runtime.openvino_np import OpenVinoModel

    rows = []
    x = np.random.default_rng(0).random((1, 3, *a.hw), dtype=np.float32)
    from drsedge.models.info import model_info
    from drsedge.weights import resolve

    sources = [(f, json.loads(f.read_text())) for f in a.results] + ([("model cards", SHIPPED)] if a.shipped else [])
    with tempfile.TemporaryDirectory(prefix="drsedge-pareto-") as d:
        for res_file, results in sources:
            for key, r in results.items():
                cands = [a.runs_dir / key / "model.safetensors"] + ([Path(resolve(r["model"]))] if r.get("model") else [])
                model_path = next((p for p in cands if p.is_file()), None)
                if model_path is None:
                    print(f"{key}: model not found under {a.runs_dir}; skipped")
                    continue
                model, _ = load_any(model_path)
                if "params" not in r:
                    info = model_info(model, 256, 256)
                    r = {**r, "params": info.params, "gmacs_256": info.gmacs}
                onnx_path = export_onnx(model, Path(d) / f"{key}.onnx")
                ms = time_interleaved({"onnxruntime": OnnxModel(onnx_path, threads=2), "openvino": OpenVinoModel(onnx_path, threads=2)}, x, a.runs)
                rl = r["rain100L_all"]
                rows.append({"key": key, "arm": r["arm"], "size_gmacs": r.get("size_gmacs", 2.15), "steps": r["steps"], "seed": r["seed"],
                             "params": r["params"], "gmacs_256": round(r["gmacs_256"], 3), "rain100L_psnr": round(rl["psnr"], 2),
                             "rain100L_ci95": [round(v, 2) for v in rl["ci95"]], "ms_720p_onnxruntime": ms["onnxruntime"],
                             "ms_720p_openvino": ms["openvino"], "source": str(res_file)})
                print(f"{key}: {rl['psnr']:.2f} dB, ORT {ms['onnxruntime']} ms, OpenVINO {ms['openvino']} ms @ {a.hw[0]}x{a.hw[1]}", flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"hw": a.hw, "runs": a.runs, "rows": rows}, indent=2) + "\n")
    if rows:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5))
        for arm in sorted({r["arm"] for r in rows}):
            pts = [r for r in rows if r["arm"] == arm]
            lat = [r["ms_720p_onnxruntime"] for r in pts]
            ps = [r["rain100L_psnr"] for r in pts]
            err = np.array([[p - r["rain100L_ci95"][0] for p, r in zip(ps, pts)], [r["rain100L_ci95"][1] - p for p, r in zip(ps, pts)]])
            ax.errorbar(lat, ps, yerr=err, fmt="o", capsize=3, label=arm)
            for r in pts:
                ax.annotate(f"{r['gmacs_256']:.2f} GMACs" + (f", {r['steps']} st" if r['steps'] else ""), (r["ms_720p_onnxruntime"], r["rain100L_psnr"]), fontsize=7,
                            xytext=(4, 4), textcoords="offset points")
        ax.set_xlabel(f"ONNX Runtime CPU latency @ {a.hw[0]}x{a.hw[1]} (ms, median of {a.runs}, 2 threads)")
        ax.set_ylabel("PSNR-Y on Rain100L, all 100 pairs (dB, 95 % CI)")
        ax.set_title("Compact derainers: PSNR vs latency (bench_students.py)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        a.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(a.plot, dpi=120)
        print(f"wrote {a.out} and {a.plot}")


if __name__ == "__main__":
    main()
