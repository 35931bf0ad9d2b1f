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

from drsedge.errors import DrsedgeError, NonFiniteError, first_line


def checked_output(y: torch.Tensor, x: torch.Tensor, source: str) -> torch.Tensor:
    """Refuse a model output that is not ``[B, 3, H, W]`` like its input, or holds NaN/Inf.

    Raises:
        DrsedgeError: wrong shape (e.g. an ONNX whose output size differs from its input).
        NonFiniteError: NaN or Inf in the output.
    """
    if tuple(y.shape) != tuple(x.shape):
        raise DrsedgeError(f"{source}: output shape {tuple(y.shape)} differs from input {tuple(x.shape)}; "
                           "drsedge models map [N, 3, H, W] to the same shape (re-export with `drsedge export`)")
    if not bool(torch.isfinite(y).all()):
        raise NonFiniteError(f"{source}: output holds NaN or Inf; the model is broken (retrain or re-export it); nothing written")
    return y


class TorchRunner:
    """Eager PyTorch model in eval mode under ``torch.no_grad()``."""

    def __init__(self, model: torch.nn.Module, name: str = "torch"):
        self.model, self.name = model.eval(), name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return checked_output(self.model(x), x, self.name)

    def latency_ms(self, height: int = 256, width: int = 256, runs: int = 5, warmup: int = 1) -> dict:
        return _time(self, height, width, runs, warmup)


def ort_session(path: str | os.PathLike, threads: int | None = None, fused_kernel: str = "function"):
    """An ONNX Runtime CPU ``InferenceSession`` for ``path``.

    ``fused_kernel`` says how ``drsedge::TopKSparseSoftmax`` nodes run: ``"function"`` (the
    model-local function, native speed) or ``"pyop"`` (onnxruntime-extensions Python kernel, slow);
    see :mod:`drsedge.ops.topk_sparse_softmax.ort_kernel`.

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

            from drsedge.ops.topk_sparse_softmax.ort_kernel import register_pyop, to_pyop_model

            so.register_custom_ops_library(register_pyop())
            model = to_pyop_model(onnx.load(str(path)))
            return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except DrsedgeError:
        raise
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/InvalidProtobuf types
        from drsedge.onnx_io import ort_load_error

        raise ort_load_error(path, e) from None


class OrtRunner:
    """ONNX Runtime (CPU) session with one image input and one output."""

    def __init__(self, path: str | os.PathLike, name: str = "onnx", threads: int | None = None, fused_kernel: str = "function"):
        self.session = ort_session(path, threads, fused_kernel)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = inputs[0].shape if len(inputs) == 1 else None
        if shape is None or len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 3):
            raise DrsedgeError(f"{path}: input(s) {[(i.name, i.shape) for i in inputs]}: drsedge models take one N x 3 x H x W image; "
                               "export it with `drsedge export`")
        if len(outputs) != 1:
            raise DrsedgeError(f"{path}: {len(outputs)} outputs; drsedge models return one N x 3 x H x W image")
        self.input = inputs[0].name
        self.name, self.path = name, Path(path)
        h, w = shape[2], shape[3]
        # a static-shape export (UDR-S2Former) takes one size: other frames are tiled with it (runtime.tiling.static_tiled)
        self.static_hw = (h, w) if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0 else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.static_hw and tuple(x.shape[-2:]) != self.static_hw:
            from .tiling import static_tiled

            ov = min(64, min(self.static_hw) // 4)  # upstream UDR-S2Former: 320 tiles, overlap 64
            return torch.cat([static_tiled(self._run, x[i : i + 1], *self.static_hw, overlap=ov) for i in range(x.shape[0])])
        return self._run(x)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        try:
            y = self.session.run(None, {self.input: np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)})[0]
        except Exception as e:  # onnxruntime's own error types
            raise DrsedgeError(f"{self.path}: ONNX Runtime failed on a {tuple(x.shape)} input ({first_line(e)})") from None
        return checked_output(torch.from_numpy(np.asarray(y, dtype=np.float32)), x, str(self.path))

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
