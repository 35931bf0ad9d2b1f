"""Do pruned students get faster? ONNX Runtime CPU latency of several checkpoints, side by side in one run.

Each model is exported (TorchScript, native attention) and timed interleaved with the others at each size;
ratios are against the first model given.

    python benchmarks/bench_pruned_ort.py student.safetensors pruned_msfn.safetensors pruned_heads.safetensors \
        [--sizes 256x256 720x1280] [--runs 7]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import interleaved, table

from drsedge.export import export_onnx
from drsedge.models import load_any, model_info
from drsedge.runtime import OrtRunner


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="checkpoints; the first is the baseline")
    ap.add_argument("--sizes", nargs="+", default=["256x256", "720x1280"], metavar="HxW")
    ap.add_argument("--runs", type=int, default=7)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runners, names = {}, []
        for i, path in enumerate(a.models):
            model, _ = load_any(path)
            name = f"{i}:{Path(path).stem}"
            info = model_info(model, 256, 256)
            print(f"{name}: {info.params:,} params, {info.gmacs:.3f} GMACs @ 256x256")
            runners[name] = OrtRunner(export_onnx(model, Path(d) / f"m{i}.onnx"))
            names.append(name)
        for size in a.sizes:
            h, w = (int(v) for v in size.split("x"))
            x = torch.rand(1, 3, h, w)
            med = interleaved({n: (lambda r=r: r(x)) for n, r in runners.items()}, runs=a.runs)
            print(table(f"ORT CPU latency, {h}x{w} ({torch.get_num_threads()} threads)", med, names[0]))


if __name__ == "__main__":
    main()
