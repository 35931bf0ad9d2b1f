"""Where ONNX Runtime CPU time goes, per op type (ORT's own profiler), for one or more ONNX models at one size.

    python benchmarks/profile_ort_ops.py MODEL.onnx [MODEL2.onnx ...] [--size 720x1280] [--runs 3]

Prints each model's total kernel time and the share per op type. The share of ``Conv``/``QLinearConv`` bounds what
INT8 convolutions can save (Amdahl: with conv share c, convs k times faster give at most 1 / (1 - c + c / k)).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile

import numpy as np


def profile(path: str, h: int, w: int, runs: int) -> dict[str, float]:
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as d:
        so = ort.SessionOptions()
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(d, "prof")
        so.log_severity_level = 3
        s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
        name = s.get_inputs()[0].name
        s.run(None, {name: x})  # warm-up (also profiled; dropped below by run count)
        for _ in range(runs):
            s.run(None, {name: x})
        with open(s.end_profiling()) as f:
            events = json.load(f)
    per_op: dict[str, float] = collections.defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            per_op[e["args"].get("op_name", "?")] += e["dur"] / 1e3 / (runs + 1)  # ms per inference
    return dict(per_op)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--size", default="720x1280")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--top", type=int, default=10)
    a = ap.parse_args()
    h, w = (int(v) for v in a.size.split("x"))
    for m in a.models:
        per_op = profile(m, h, w, a.runs)
        total = sum(per_op.values())
        print(f"## {m} at {a.size}: {total:.0f} ms of kernel time per inference\n\n| op type | ms | share |\n|---|---|---|")
        for op, t in sorted(per_op.items(), key=lambda kv: -kv[1])[: a.top]:
            print(f"| {op} | {t:.1f} | {t / total:.1%} |")
        conv = sum(t for op, t in per_op.items() if op in ("Conv", "QLinearConv", "ConvInteger", "FusedConv"))
        print(f"\nconvolutions: {conv / total:.1%} of the time; INT8 convs 2x / 4x faster would make the model at most "
              f"{1 / (1 - conv / total + conv / total / 2):.2f}x / {1 / (1 - conv / total + conv / total / 4):.2f}x faster\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
