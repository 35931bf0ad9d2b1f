"""Runners: the frame models of :mod:`drsedge.runtime.base` behind torch tensors, for the drift report and parity.

``runner(x) -> y``: ``[B, 3, H, W]`` float32 CPU torch tensors (H, W multiples of 8). Every runner has ``name``,
``model`` (the :class:`~drsedge.runtime.base.FrameModel` it wraps) and ``latency_ms(height, width, runs)``.
A model with a static input size (a UDR-S2Former export) runs other frame sizes by overlapping tiles.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from .base import FrameModel, check_output, latency_summary, wall_times_ms


def checked_output(y: torch.Tensor, x: torch.Tensor, source: str) -> torch.Tensor:
    """``y`` unchanged when it is shaped like ``x`` and finite (:func:`drsedge.runtime.base.check_output`).

    Raises:
        DrsedgeError: wrong shape. NonFiniteError: NaN or Inf.
    """
    check_output(y.detach().cpu().float().numpy(), tuple(x.shape), source)
    return y


class TensorRunner:
    """A :class:`~drsedge.runtime.base.FrameModel` with torch tensors in and out (zero-copy on the CPU)."""

    def __init__(self, model, name: str):
        self.model, self.name, self.path = model, name, getattr(model, "path", None)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` -> ``[B, 3, H, W]``; a frame the model cannot take whole (a static export, an engine profile)
        is tiled by :func:`drsedge.runtime.limits.plan_tiles`, the policy ``derain`` and ``stream`` use."""
        from .limits import plan_tiles

        plan = plan_tiles(self.model.limits, *x.shape[-2:], model=str(self.path or self.name))
        if plan is None:
            return self._run(x)
        from .tiling import static_tiled

        return torch.cat([static_tiled(self._run, x[i : i + 1], plan.th, plan.tw, overlap=plan.overlap) for i in range(x.shape[0])])

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.model(np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)))

    def latency_ms(self, height: int = 256, width: int = 256, runs: int = 5, warmup: int = 1) -> dict:
        """:func:`~drsedge.runtime.base.latency_summary` in ms: the model's own timer when it has one (TensorRT: CUDA
        events), else the wall time of whole ``[1, 3, height, width]`` frames through this runner (tiles included)."""
        if getattr(type(self.model), "latency_ms", FrameModel.latency_ms) is not FrameModel.latency_ms:
            return self.model.latency_ms(height, width, runs=runs, warmup=warmup)
        x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
        return latency_summary(wall_times_ms(self, x, runs, warmup), height, width)


class TorchRunner(TensorRunner):
    """Eager PyTorch model in eval mode under ``torch.no_grad()`` (:class:`~drsedge.runtime.frame_models.TorchFrameModel`)."""

    def __init__(self, model: torch.nn.Module, name: str = "torch"):
        from .frame_models import TorchFrameModel

        super().__init__(TorchFrameModel(model, name), name)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_tensor(x)


class OrtRunner(TensorRunner):
    """ONNX Runtime (CPU) session with one image input and one output (:class:`~drsedge.runtime.onnx_np.OnnxModel`)."""

    def __init__(self, path: str | os.PathLike, name: str = "onnx", threads: int | None = None, fused_kernel: str = "function"):
        from .onnx_np import OnnxModel

        super().__init__(OnnxModel(path, threads=threads, fused_kernel=fused_kernel), name)
        self.session = self.model.session


class EngineRunner(TensorRunner):  # pragma: no cover - needs a GPU and TensorRT
    """A drsedge-built TensorRT engine (:class:`~drsedge.runtime.engine_np.EngineModel`); ``latency_ms`` is GPU
    time from CUDA events.

    Raises:
        DrsedgeError: no GPU / TensorRT, a sidecar that does not match this TensorRT or GPU, or a plugin library that
            is missing or differs from the one the engine was built with.
    """

    def __init__(self, engine: str | os.PathLike, name: str = "trt", plugin: str | None = None):
        from .engine_np import EngineModel

        super().__init__(EngineModel(engine, plugin), name)

    def latency_ms(self, height: int = 256, width: int = 256, runs: int = 50, warmup: int = 10) -> dict:
        return self.model.latency_ms(height, width, runs=runs, warmup=warmup)
