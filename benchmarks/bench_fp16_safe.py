"""Cost of the FP16-safe LayerNorm / q,k-normalisation forms (``drsedge export --fp16-safe``) in FP32.

Measured side by side in one interleaved run: PyTorch eager and ONNX Runtime CPU, default form vs the
bounded form, on the student at 256x256 and 720x1280. On a GPU the question is different (FP16 engine
with FP32 layers vs an all-FP16 engine of the safe export); that comparison needs TensorRT:
``drsedge build-engine`` both ways and ``trtexec --loadEngine`` (see README, FP16 safety).

    python benchmarks/bench_fp16_safe.py [--checkpoint student.safetensors] [--runs 7] [--skip-720p]
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
from drsedge.models import load_any, set_fp16_safe, student_config
from drsedge.runtime import OrtRunner


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="model to time (default: a random-init student)")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--skip-720p", action="store_true")
    a = ap.parse_args()
    model = load_any(a.checkpoint)[0] if a.checkpoint else student_config().build().eval()
    torch.set_num_threads(torch.get_num_threads())
    with tempfile.TemporaryDirectory() as d, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        native = OrtRunner(export_onnx(model, Path(d) / "native.onnx"))
        safe = OrtRunner(export_onnx(model, Path(d) / "safe.onnx", fp16_safe=True))
        sizes = [(256, 256)] + ([] if a.skip_720p else [(720, 1280)])
        for h, w in sizes:
            x = torch.rand(1, 3, h, w)

            def eager(on: bool):
                def run():
                    set_fp16_safe(model, on)
                    with torch.no_grad():
                        model(x)
                return run

            med = interleaved({"torch default": eager(False), "torch fp16-safe": eager(True),
                               "ORT default": lambda: native(x), "ORT fp16-safe": lambda: safe(x)}, runs=a.runs)
            print(table(f"FP32 cost of the FP16-safe forms, {h}x{w} (CPU, {torch.get_num_threads()} threads)", med, "ORT default"))
        set_fp16_safe(model, False)


if __name__ == "__main__":
    main()
