"""The cross-machine spread of the demo's ONNX rows, reproduced on one machine (issue 35).

The demo printed INT8 28.70 dB on one machine and 28.96 on another with the same code: the earlier stages (training,
pruning) run other CPU kernels elsewhere, and the INT8 rounding amplifies float32 differences. This benchmark makes such
differences on purpose, from the demo's pruned student (``RUN_DIR/prune/pruned.safetensors``):

* ``weights seed k``: every weight multiplied by ``1 + 1e-7 * N(0, 1)`` (float32 rounding level), k = 0..N-1;
* ``calibration reversed``: the unperturbed weights, calibration images in reverse order;

then exports the FP32 and the mixed FP16 ONNX, quantizes INT8 exactly as the demo does (``demo.yaml``'s export and
quantize sections, NNCF) and scores every row on the demo's 12 Rain100L pairs. It prints and writes min / max / std of
each row (PSNR-Y and fidelity), next to the widest 95 % paired-bootstrap CI of Δ vs FP32 from the same runs.

    python benchmarks/drift_spread.py RUN_DIR [--seeds 4] [--out benchmarks/results/drift_spread.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch


def _perturbed(model, seed: int | None):
    if seed is None:
        return model
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1 + 1e-7 * torch.randn(p.shape, generator=g))
    return model


def run_once(ckpt: Path, seed: int | None, reverse_calib: bool, data: Path, work: Path) -> dict:
    from drsedge.calibration.calib import calibration_set
    from drsedge.compress.quantize import quantize_onnx
    from drsedge.data.folders import find_pairs
    from drsedge.data.heldout import leave_out_copies
    from drsedge.export.fp16 import convert_fp16
    from drsedge.export.onnx_export import export_onnx
    from drsedge.metrics.drift import Stage, evaluate_stages
    from drsedge.models.checkpoint import load_model
    from drsedge.run_config import load_run_config
    from drsedge.runtime import OrtRunner

    cfg = load_run_config(Path(__file__).resolve().parents[1] / "drsedge" / "configs" / "demo.yaml")
    model, _ = load_model(ckpt)
    model = _perturbed(model.eval(), seed)
    fp32 = export_onnx(model, work / "fp32.onnx", opset=cfg.export.opset)
    with leave_out_copies(cfg.data.skip_held_out_copies):
        calib = calibration_set([data / c for c in cfg.data.calibration], size=cfg.quantize.size, limit=cfg.quantize.limit)
        frames = calibration_set([data / c for c in cfg.data.calibration], size=None, limit=cfg.export.fp16_frames)
    if reverse_calib:
        calib.inputs.reverse()
    fp16 = work / "fp16.onnx"
    convert_fp16(fp32, fp16, frames.inputs)
    int8 = quantize_onnx(fp32, work / "int8.onnx", calib, cfg.quantize.backend)
    pairs = find_pairs(data / cfg.data.test, cfg.data.test_limit)
    stages = [Stage("onnx_fp32", OrtRunner(fp32), "ort"), Stage("onnx_fp16", OrtRunner(fp16), "ort", parent="onnx_fp32"),
              Stage("onnx_int8", OrtRunner(int8), "ort", parent="onnx_fp32")]
    rep = evaluate_stages(stages, pairs, latency_hw=None, progress=False)
    return {s.name: {"psnr": s.psnr, "fidelity": s.psnr_vs_parent, "delta_vs_fp32": s.delta_vs_prev, "delta_ci": s.delta_vs_prev_ci}
            for s in rep.stages}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path, help="a demo run directory (drsedge demo --run-dir DIR)")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/drift_spread.json"))
    a = ap.parse_args()
    ckpt = a.run_dir / "prune" / "pruned.safetensors"
    variants = [("unperturbed", None, False), ("calibration reversed", None, True)]
    variants += [(f"weights seed {k}", k, False) for k in range(a.seeds)]
    runs = {}
    t0 = time.time()
    for name, seed, rev in variants:
        with tempfile.TemporaryDirectory(prefix="drsedge-spread-") as d:
            runs[name] = run_once(ckpt, seed, rev, a.data, Path(d))
        print(name, {k: round(v["psnr"], 3) for k, v in runs[name].items()}, flush=True)
    spread = {}
    for stage in runs["unperturbed"]:
        for key in ("psnr", "fidelity", "delta_vs_fp32"):
            vals = [r[stage][key] for r in runs.values() if r[stage][key] is not None]
            if vals:
                spread[f"{stage}.{key}"] = {"min": min(vals), "max": max(vals), "range": max(vals) - min(vals),
                                            "std": statistics.pstdev(vals)}
    ci = [r["onnx_int8"]["delta_ci"] for r in runs.values() if r["onnx_int8"]["delta_ci"]]
    res = {"run_dir": str(a.run_dir), "variants": list(runs), "runs": runs, "spread": spread,
           "int8_delta_ci_widest": max((c[1] - c[0] for c in ci), default=None), "seconds": round(time.time() - t0, 1)}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2) + "\n")
    for k, v in spread.items():
        print(f"{k:28s} min {v['min']:8.3f}  max {v['max']:8.3f}  range {v['range']:.3f}  std {v['std']:.3f}")
    print(f"widest 95 % CI of INT8 Δ vs FP32: {res['int8_delta_ci_widest']:.3f} dB")


if __name__ == "__main__":
    main()
