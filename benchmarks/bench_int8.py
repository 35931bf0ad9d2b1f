"""INT8 per backend and CPU runtime, side by side in one run: Q/DQ count, integer kernels ONNX Runtime fuses,
fidelity to the FP32 output (PSNR-Y, max abs), ΔPSNR-Y vs ground truth, and latency ratios vs FP32.

    python benchmarks/bench_int8.py [--checkpoint shipped:student | --dim 24] [--backends nncf ort modelopt]
                                    [--runtimes ort openvino] [--sizes 256x256 720x1280] [--runs 5] [--json out.json]

Calibration: 16 centre crops of 128^2 from rain200H/train and rain200L/train (never rain100L, never an evaluation
image). Fidelity: whole frames of rain200H/test, rain200L/test and real/ (14 images); ΔGT: the 6 paired ones.
Latency: each model against the FP32 ONNX in the same runtime (OpenVINO FP32 against ONNX Runtime FP32), the two
run in turn every round (``_timing.interleaved``), median ms; ONNX Runtime with its memory arena (default).
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


def _runner(runtime: str, path: Path, arena: bool = False):
    from drsedge.runtime.onnx_np import OnnxModel
    from drsedge.runtime.openvino_np import OpenVinoModel

    return OnnxModel(path, arena=arena) if runtime == "ort" else OpenVinoModel(path)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", help="e.g. shipped:student (default: a random-init student of --dim)")
    ap.add_argument("--dim", type=int, default=24)
    ap.add_argument("--backends", nargs="+", default=["nncf", "ort", "modelopt"])
    ap.add_argument("--runtimes", nargs="+", default=["ort", "openvino"])
    ap.add_argument("--sizes", nargs="+", default=["256x256", "720x1280"])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json")
    ap.add_argument("--no-fidelity", dest="fidelity", action="store_false", help="latency only")
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
    pairs = find_pairs(DATA / "rain200H" / "test") + find_pairs(DATA / "rain200L" / "test")
    evals = [(p.name, read_image(p.rainy), read_image(p.clean)) for p in pairs]
    evals += [(f"real/{f.stem}", read_image(f), None) for f in list_images(DATA / "real")]
    u8 = lambda im: (np.clip(im, 0, 1) * 255 + 0.5).astype(np.uint8)
    ref_out = [restore_np(_runner("ort", paths["fp32"]), img) for _n, img, _c in evals] if a.fidelity else []  # FP32 in ORT
    rows, usable = {}, []
    for rt in a.runtimes:
        for name, p in paths.items():
            try:
                r = _runner(rt, p)
            except Exception as e:  # e.g. OpenVINO refusing signed-INT8 activations
                print(f"{rt} {name}: skipped ({str(e).splitlines()[0][:160]})", file=sys.stderr)
                continue
            usable.append((rt, name))
            rows[(rt, name)] = _fidelity(r, evals, ref_out, u8, restore_np, psnr_y, name) if a.fidelity else {}
            del r
    lat: dict = {}
    for size in a.sizes:
        h, w = (int(v) for v in size.split("x"))
        x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
        # pairs, interleaved: each model against the FP32 ONNX in the same runtime (and OpenVINO FP32 against ORT FP32);
        # two sessions at a time keep 720p within this machine's RAM with ONNX Runtime's memory arena on
        for k in usable:
            base = ("ort", "fp32") if k == ("openvino", "fp32") else (k[0], "fp32")
            if k == base:
                continue
            group = {base: _runner(base[0], paths[base[1]], arena=True), k: _runner(k[0], paths[k[1]], arena=True)}
            med = interleaved({f"{g[0]}|{g[1]}": (lambda r=r: r(x)) for g, r in group.items()}, runs=a.runs)
            lat.setdefault(k, {})[size] = (med[f"{k[0]}|{k[1]}"], med[f"{base[0]}|{base[1]}"])
            del group
    qdq = {name: count_qdq(p)["QuantizeLinear"] for name, p in paths.items()}
    fused = {name: fused_kernel_counts(p) for name, p in paths.items()}
    print(f"## INT8 on this CPU: {label}; fidelity on {len(evals)} whole frames, ΔGT on {len(pairs)} pairs\n")
    print("| runtime | model | Q (QuantizeLinear) | ORT QLinearConv / QLinearMatMul / QLinearAdd | fidelity PSNR-Y (mean / min, dB) "
          "| max abs | PSNR-Y vs GT (dB) | Δ vs FP32 (dB) | " + " | ".join(f"{s}: ms (speed-up vs FP32, same runtime)" for s in a.sizes) + " |")
    print("|" + "---|" * (8 + len(a.sizes)))
    for (rt, name), row in rows.items():
        fk = fused[name]
        lats = " | ".join("–" if (rt, name) not in lat else f"{lat[(rt, name)][s][0]:.0f} ({lat[(rt, name)][s][1] / lat[(rt, name)][s][0]:.2f}x"
                          f"{' vs ORT' if (rt, name) == ('openvino', 'fp32') else ''})" for s in a.sizes)
        fid = "–" if name == "fp32" or not row else f"{row['fidelity_db']:.2f} / {row['fidelity_min_db']:.2f}"
        acc = f"{row['max_abs']:.4f} | {row['psnr_gt']:.2f} | {row['delta_gt_db']:+.2f}" if row else "– | – | –"
        print(f"| {rt} | {name} | {qdq[name]} | {fk['QLinearConv']} / {fk['QLinearMatMul']} / {fk['QLinearAdd']} | {fid} | {acc} | {lats} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"model": label, "rows": {f"{k[0]}|{k[1]}": {**v, "latency_ms_vs_base": lat.get(k), "qdq": qdq[k[1]],
                                                                                     "ort_fused": fused[k[1]]} for k, v in rows.items()}},
                                           indent=2))
    return 0


def _fidelity(r, evals, ref_out, u8, restore_np, psnr_y, name) -> dict:
    """PSNR-Y / max abs of ``r``'s outputs against the FP32 outputs, and PSNR-Y vs ground truth (paired frames)."""
    fid, mx, gt, gt_ref = [], [], [], []
    for (_n, img, clean), y0 in zip(evals, ref_out, strict=True):
        y = restore_np(r, img)
        fid.append(psnr_y(u8(y), u8(y0)) if name != "fp32" else float("inf"))
        mx.append(float(np.abs(y - y0).max()))
        if clean is not None:
            gt.append(psnr_y(u8(y), u8(clean)))
            gt_ref.append(psnr_y(u8(y0), u8(clean)))
    return {"fidelity_db": float(np.mean(fid)), "fidelity_min_db": float(np.min(fid)), "max_abs": float(np.max(mx)),
            "psnr_gt": float(np.mean(gt)), "delta_gt_db": float(np.mean(gt) - np.mean(gt_ref))}


if __name__ == "__main__":
    sys.exit(main())
