"""Camera-side throughput on this CPU, side by side in one run: the torch-free ONNX Runtime path
(``drsedge stream`` / ``derain MODEL.onnx``) per model precision at 256x256 and 720x1280, then whole-clip FPS of
``drsedge stream`` on the NTURain frames.

    python benchmarks/bench_stream.py runs/demo/export/student_fp32.onnx runs/demo/export/student_fp16.onnx \\
        runs/demo/quantize/student_int8.onnx [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drsedge.runtime.onnx_np import OnnxModel, restore_np
from drsedge.runtime.stream import run_stream


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+", help="ONNX files (FP32, FP16, INT8 ...)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--clip", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "nturain_ra1" / "ra1_Rain"))
    ap.add_argument("--frames", type=int, default=20)
    a = ap.parse_args()
    models = {Path(m).stem: OnnxModel(m) for m in a.models}
    rng = np.random.default_rng(0)
    for h, w in ((256, 256), (720, 1280)):
        img = rng.random((h, w, 3), dtype=np.float32)
        times = {k: [] for k in models}
        for m in models.values():
            restore_np(m, img)  # warm-up
        for _ in range(a.runs):  # interleaved: machine noise hits every model alike
            for k, m in models.items():
                t0 = time.perf_counter()
                restore_np(m, img)
                times[k].append((time.perf_counter() - t0) * 1e3)
        base = statistics.median(times[next(iter(times))])
        print(f"## ONNX Runtime CPU, {h}x{w}, {a.runs} interleaved runs\n\n| model | median ms | p95 ms | FPS | ratio vs first |\n|---|---|---|---|---|")
        for k, t in times.items():
            t = sorted(t)
            med = statistics.median(t)
            print(f"| {k} | {med:.1f} | {t[min(len(t) - 1, round(0.95 * (len(t) - 1)))]:.1f} | {1e3 / med:.2f} | {med / base:.2f}x |")
        print()
    print(f"## drsedge stream on {a.clip} ({a.frames} frames, 640x480, decode/infer/encode threads)\n")
    print("| model | FPS | latency p50 / p95 / p99 ms |\n|---|---|---|")
    for k, path in zip(models, a.models):
        s = run_stream(a.clip, path, None, max_frames=a.frames, progress=False)
        lat = s.latency_ms
        print(f"| {k} | {s.fps:.2f} | {lat['p50']:.0f} / {lat['p95']:.0f} / {lat['p99']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
