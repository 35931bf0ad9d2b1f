"""INT8 per backend and CPU runtime, side by side in one run: Q/DQ count, integer kernels ONNX Runtime fuses,
fidelity to the FP32 output (PSNR-Y, max abs), ΔPSNR-Y vs ground truth, and latency ratios vs FP32.

    python benchmarks/bench_int8.py [--checkpoint shipped:student | --dim 24] [--backends nncf ort modelopt]
                                    [--runtimes ort openvino] [--sizes 256x256 720x1280] [--runs 5] [--json out.json]

Calibration: 16 centre crops of 128^2 from rain200H/train and rain200L/train (never rain100L, never an evaluation
image). Fidelity: whole frames of rain200H/test, rain200L/test and real/ (14 images); ΔGT: the 6 paired ones.
Latency: every (runtime, model) once per round, rounds interleaved (``_timing.interleaved``), median ms.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _timing import interleaved

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _model(a):
    import torch

    from drsedge.models import load_any, student_config
    from drsedge.weights import resolve

    if a.checkpoint:
        return load_any(resolve(a.checkpoint))[0], a.checkpoint
    torch.manual_seed(0)
    return student_config(dim=a.dim, num_blocks=[1, 2, 2, 2]).build().eval(), f"student dim {a.dim} (random init)"


def _runner(runtime: str, path: Path):
    from drsedge.runtime.onnx_np import OnnxModel
    from drsedge.runtime.openvino_np import OpenVinoModel

    return OnnxModel(path) if runtime == "ort" else OpenVinoModel(path)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", help="e.g. shipped:student (default: a random-init student of --dim)")
    ap.add_argument("--dim", type=int, default=24)
    ap.add_argument("--backends", nargs="+", default=["nncf", "ort", "modelopt"])
    ap.add_argument("--runtimes", nargs="+", default=["ort", "openvino"])
    ap.add_argument("--sizes", nargs="+", default=["256x256", "720x1280"])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json")
    a = ap.parse_args()

    from drsedge.calibration import calibration_set
    from drsedge.compress.quantize import count_qdq, fused_kernel_counts, quantize_onnx
    from drsedge.data import find_pairs, list_images, read_image
    from drsedge.export import export_onnx
    from drsedge.metrics import psnr_y
    from drsedge.runtime.onnx_np import restore_np

    model, label = _model(a)
    tmp = Path(tempfile.mkdtemp(prefix="bench-int8-"))
    paths = {"fp32": export_onnx(model, tmp / "fp32.onnx")}
    calib = calibration_set([DATA / "rain200H" / "train", DATA / "rain200L" / "train"], size=128, limit=16)
    for b in a.backends:
        try:
            paths[f"int8 {b}"] = quantize_onnx(paths["fp32"], tmp / f"int8_{b}.onnx", calib, b)
        except Exception as e:  # e.g. ModelOpt not installed
            print(f"{b}: skipped ({str(e).splitlines()[0][:120]})", file=sys.stderr)
    runners = {}
    for rt in a.runtimes:
        for name, p in paths.items():
            try:
                runners[(rt, name)] = _runner(rt, p)
            except Exception as e:
                print(f"{rt} {name}: skipped ({str(e).splitlines()[0][:120]})", file=sys.stderr)

    pairs = find_pairs(DATA / "rain200H" / "test") + find_pairs(DATA / "rain200L" / "test")
    evals = [(p.name, read_image(p.rainy), read_image(p.clean)) for p in pairs]
    evals += [(f"real/{f.stem}", read_image(f), None) for f in list_images(DATA / "real")]
    u8 = lambda im: (np.clip(im, 0, 1) * 255 + 0.5).astype(np.uint8)
    rows = {}
    for (rt, name), r in runners.items():
        ref = runners.get((rt, "fp32")) or runners[("ort", "fp32")]
        fid, mx, gt, gt_ref = [], [], [], []
        for _n, img, clean in evals:
            y, y0 = restore_np(r, img), restore_np(ref, img)
            fid.append(psnr_y(u8(y), u8(y0)) if name != "fp32" else float("inf"))
            mx.append(float(np.abs(y - y0).max()))
            if clean is not None:
                gt.append(psnr_y(u8(y), u8(clean)))
                gt_ref.append(psnr_y(u8(y0), u8(clean)))
        rows[(rt, name)] = {"fidelity_db": float(np.mean(fid)), "fidelity_min_db": float(np.min(fid)), "max_abs": float(np.max(mx)),
                            "psnr_gt": float(np.mean(gt)), "delta_gt_db": float(np.mean(gt) - np.mean(gt_ref))}
    lat = {}
    for size in a.sizes:
        h, w = (int(v) for v in size.split("x"))
        x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
        med = interleaved({f"{rt}|{name}": (lambda r=r: r(x)) for (rt, name), r in runners.items()}, runs=a.runs)
        for k, v in med.items():
            rt, name = k.split("|")
            lat.setdefault((rt, name), {})[size] = v
    qdq = {name: count_qdq(p)["QuantizeLinear"] for name, p in paths.items()}
    fused = {name: fused_kernel_counts(p) for name, p in paths.items()}
    base = lat[("ort", "fp32")]
    print(f"## INT8 on this CPU: {label}; fidelity on {len(evals)} whole frames, ΔGT on {len(pairs)} pairs\n")
    print("| runtime | model | Q (QuantizeLinear) | ORT QLinearConv / QLinearMatMul / QLinearAdd | fidelity PSNR-Y (mean / min, dB) "
          "| max abs | PSNR-Y vs GT (dB) | Δ vs FP32 (dB) | " + " | ".join(f"{s} ms (vs ORT FP32)" for s in a.sizes) + " |")
    print("|" + "---|" * (8 + len(a.sizes)))
    for (rt, name), row in rows.items():
        fk = fused[name]
        lats = " | ".join(f"{lat[(rt, name)][s]:.0f} ({base[s] / lat[(rt, name)][s]:.2f}x)" for s in a.sizes)
        fid = "–" if name == "fp32" else f"{row['fidelity_db']:.2f} / {row['fidelity_min_db']:.2f}"
        print(f"| {rt} | {name} | {qdq[name]} | {fk['QLinearConv']} / {fk['QLinearMatMul']} / {fk['QLinearAdd']} | {fid} | "
              f"{row['max_abs']:.4f} | {row['psnr_gt']:.2f} | {row['delta_gt_db']:+.2f} | {lats} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"model": label, "rows": {f"{k[0]}|{k[1]}": {**v, "latency_ms": lat[k], "qdq": qdq[k[1]],
                                                                                     "ort_fused": fused[k[1]]} for k, v in rows.items()}},
                                           indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
