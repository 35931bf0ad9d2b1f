"""INT8 in ONNX Runtime CPU: FP32 vs NNCF Q/DQ vs ONNX Runtime quantize_static Q/DQ, same student, same
calibration images (rain200H/train + real; never rain100L). Prints latency ratios from one interleaved run and
the PSNR-Y of each INT8 model's output against the FP32 output on rain200H/test.

    python benchmarks/bench_int8_ort.py [--data ../shared/data] [--checkpoint student.safetensors] [--runs 7]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import interleaved, table

from drsedge.calibration import calibration_set
from drsedge.compress import quantize_onnx
from drsedge.data import find_pairs, read_image, to_tensor, to_uint8
from drsedge.export import export_onnx
from drsedge.metrics import psnr_y
from drsedge.models import load_any, student_config
from drsedge.runtime import OrtRunner, restore


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
    ap.add_argument("--checkpoint", help="student checkpoint (default: a random-init default student)")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--size", type=int, nargs=2, default=[256, 256])
    a = ap.parse_args()
    data = Path(a.data)
    tmp = Path(tempfile.mkdtemp())
    if a.checkpoint:
        model, _ = load_any(a.checkpoint)
    else:
        torch.manual_seed(0)
        model = student_config().build().eval()
    fp32 = export_onnx(model, tmp / "fp32.onnx")
    calib = calibration_set([data / "rain200H" / "train" / "input", data / "real"], size=128, limit=24)
    runners = {"fp32": OrtRunner(fp32)}
    for backend in ("nncf", "ort"):
        runners[f"int8 {backend}"] = OrtRunner(quantize_onnx(fp32, tmp / f"int8_{backend}.onnx", calib, backend))
    x = torch.rand(1, 3, *a.size)
    med = interleaved({k: (lambda r=r: r(x)) for k, r in runners.items()}, runs=a.runs)
    print(table(f"student at {a.size[0]}x{a.size[1]}, ORT CPU ({torch.get_num_threads()} threads)", med, "fp32"))
    pairs = find_pairs(data / "rain200H" / "test")
    for name, r in runners.items():
        if name == "fp32":
            continue
        vals = []
        for p in pairs:
            img = to_tensor(read_image(p.rainy))
            vals.append(psnr_y(to_uint8(restore(r, img)), to_uint8(restore(runners["fp32"], img))))
        print(f"{name}: PSNR-Y vs FP32 output on rain200H/test ({len(pairs)} images): {sum(vals) / len(vals):.2f} dB")


if __name__ == "__main__":
    main()
