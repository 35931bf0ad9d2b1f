"""Runners: one callable API ``runner(x) -> y`` over PyTorch and ONNX Runtime.

``x`` and ``y`` are ``[B, 3, H, W]`` float32 torch tensors (H, W multiples of 8).
Every runner also has ``name`` and ``latency_ms(height, width, runs)``.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from drsedge.errors import DrsedgeError


class TorchRunner:
    """Eager PyTorch model in eval mode under ``torch.no_grad()``."""

    def __init__(self, model: torch.nn.Module, name: str = "torch"):
        self.model, self.name = model.eval(), name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model(x)

    def latency_ms(self, height: int = 256, width: int = 256, runs: int = 5, warmup: int = 1) -> dict:
        return _time(self, height, width, runs, warmup)


def ort_session(path: str | os.PathLike, threads: int | None = None, fused_kernel: str = "function"):
    """An ONNX Runtime CPU ``InferenceSession`` for ``path``.

    ``fused_kernel`` says how ``drsedge::TopKSparseSoftmax`` nodes run: ``"function"`` (the
    model-local function, native speed) or ``"pyop"`` (onnxruntime-extensions Python kernel, slow);
    see :mod:`drsedge.runtime.ort_fused`.

    Raises:
        DrsedgeError: the file is missing or does not parse as ONNX.
    """
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise DrsedgeError(f"{path}: ONNX file not found")
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    so.log_severity_level = 3
    try:
        if fused_kernel == "pyop":
            import onnx

            from .ort_fused import register_pyop, to_pyop_model

            so.register_custom_ops_library(register_pyop())
            model = to_pyop_model(onnx.load(str(path)))
            return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except DrsedgeError:
        raise
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/InvalidProtobuf types
        msg = str(e).strip().splitlines()[0][:200]
        raise DrsedgeError(f"{path}: ONNX Runtime cannot load this model ({msg}); re-run `drsedge export`") from None


class OrtRunner:
    """ONNX Runtime (CPU) session with one image input and one output."""

    def __init__(self, path: str | os.PathLike, name: str = "onnx", threads: int | None = None, fused_kernel: str = "function"):
        self.session = ort_session(path, threads, fused_kernel)
        self.input = self.session.get_inputs()[0].name
        self.name, self.path = name, Path(path)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = self.session.run(None, {self.input: np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)})[0]
        return torch.from_numpy(y)

    def latency_ms(self, height: int = 256, width: int = 256, runs: int = 5, warmup: int = 1) -> dict:
        return _time(self, height, width, runs, warmup)


def _time(fn, height: int, width: int, runs: int, warmup: int) -> dict:
    """Median and p95 wall time in ms of ``fn`` on a ``[1, 3, height, width]`` input."""
    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    for _ in range(warmup):
        fn(x)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return {
        "height": height,
        "width": width,
        "runs": runs,
        "median_ms": statistics.median(times),
        "p95_ms": times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))],
    }
