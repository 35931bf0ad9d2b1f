"""ONNX Runtime CPU: native top-k attention graph vs the fused TopKSparseSoftmax node (run through its
model-local function, and through the onnxruntime-extensions Python kernel), on the attention sub-graph at
DRSformer shapes and on the whole student at 256x256 and 1280x720. Ratios come from one interleaved run.

    python benchmarks/bench_fused_ort.py [--runs 7] [--skip-720p]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import interleaved, table

from drsedge.export import export_onnx
from drsedge.models import student_config, topk_sizes, topk_sparse_probs
from drsedge.ops.topk_sparse_softmax.op import register_onnx_schema, register_torchscript_symbolic, topk_sparse_softmax
from drsedge.runtime import OrtRunner, ort_session


class Probs(torch.nn.Module):
    def __init__(self, ks, fused):
        super().__init__()
        self.ks, self.fused = ks, fused

    def forward(self, scores, weights):
        if self.fused:
            return topk_sparse_softmax(scores, weights, self.ks)
        return topk_sparse_probs(scores, weights, self.ks, "threshold")


def export_probs(path, c, fused):
    import onnx

    from drsedge.ops.topk_sparse_softmax.op import attach_function

    ks = topk_sizes(c)
    register_onnx_schema()
    register_torchscript_symbolic(17)
    s, w = torch.randn(1, 2, c, c), torch.rand(4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Probs(ks, fused), (s, w), path, input_names=["scores", "weights"], output_names=["probs"], opset_version=17,
                          dynamo=False, dynamic_axes={"scores": {0: "b", 1: "h"}}, custom_opsets={"drsedge": 1} if fused else None)
    if fused:
        m = onnx.load(path)
        onnx.save(attach_function(m, 17), path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--skip-720p", action="store_true")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    out = [f"# Fused vs native top-k attention in ONNX Runtime {__import__('onnxruntime').__version__} (CPU, {torch.get_num_threads()} threads)\n"]
    for c, heads in ((48, 1), (48, 8), (96, 8)):
        feeds = {"scores": np.random.randn(1, heads, c, c).astype(np.float32), "weights": np.random.rand(4).astype(np.float32)}
        sessions = {}
        for fused in (False, True):
            p = tmp / f"probs_{c}_{fused}.onnx"
            export_probs(p, c, fused)
            sessions["fused (function)" if fused else "native"] = ort_session(p)
            if fused:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    sessions["fused (pyop kernel)"] = ort_session(p, fused_kernel="pyop")
        ref = sessions["native"].run(None, feeds)[0]
        for s in sessions.values():
            assert np.abs(s.run(None, feeds)[0] - ref).max() < 1e-5
        med = interleaved({k: (lambda s=s: s.run(None, feeds)) for k, s in sessions.items()}, runs=a.runs * 5)
        out.append(table(f"attention probs, [1, {heads}, {c}, {c}]", med, "native"))

    torch.manual_seed(0)
    model = student_config().build().eval()
    runners = {}
    for att in ("native", "fused"):
        p = export_onnx(model, tmp / f"student_{att}.onnx", attention=att)
        runners[att] = OrtRunner(p)
    sizes = [(256, 256)] + ([] if a.skip_720p else [(720, 1280)])
    for h, w in sizes:
        x = torch.rand(1, 3, h, w)
        assert (runners["native"](x) - runners["fused"](x)).abs().max() < 1e-4
        med = interleaved({k: (lambda r=r: r(x)) for k, r in runners.items()}, runs=a.runs if h == 256 else max(3, a.runs // 2))
        out.append(table(f"student (dim 16, blocks 1/2/2/2) at {h}x{w}", med, "native"))
    print("\n".join(out))


if __name__ == "__main__":
    main()
