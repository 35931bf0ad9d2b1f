"""The one model interface of the runtime, torch-free (Polygraphy's ``BaseRunner`` idea, reduced to images).

A *frame model* maps ``x``: ``[N, 3, H, W]`` float32 numpy in [0, 1] (H, W multiples of 8, within ``limits``) to an
output of the same shape and dtype, checked on every call by :meth:`FrameModel.__call__` (:func:`check_output`; a
backend implements only ``_infer``). Implementations:
:class:`~drsedge.runtime.onnx_np.OnnxModel` (ONNX Runtime), :class:`~drsedge.runtime.openvino_np.OpenVinoModel`,
:class:`~drsedge.runtime.engine_np.EngineModel` (TensorRT) and :class:`~drsedge.runtime.frame_models.TorchFrameModel`
(PyTorch eager). Tiling and padding of whole frames: :func:`drsedge.runtime.onnx_np.restore_np` (numpy) and
:func:`drsedge.runtime.tiling.restore` (torch tensors, through :class:`drsedge.runtime.runners.TensorRunner`), both
planned by :func:`drsedge.runtime.limits.plan_tiles` and cut by :mod:`drsedge.runtime.tile_plan`.
"""

from __future__ import annotations

import statistics
import time
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from drsedge.errors import DrsedgeError, NonFiniteError

from .limits import ShapeLimits


def latency_summary(times_ms: list[float], height: int, width: int) -> dict:
    """The one latency record of drsedge: ``{height, width, runs, median_ms, p95_ms}`` from per-call times in ms
    (median; p95 by nearest rank). Wall time here, GPU time from CUDA events for engines; same keys either way."""
    s = sorted(times_ms)
    return {"height": height, "width": width, "runs": len(s), "median_ms": statistics.median(s),
            "p95_ms": s[min(len(s) - 1, round(0.95 * (len(s) - 1)))]}


def wall_times_ms(fn, x, runs: int, warmup: int) -> list[float]:
    """``fn(x)`` called ``warmup`` times untimed, then ``runs`` times; the wall time of each timed call in ms."""
    for _ in range(warmup):
        fn(x)
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(x)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


class FrameModel(ABC):
    """``model(x) -> y`` (see the module docstring); ``path``: the file it runs; ``limits``: the frame sizes it takes.

    The contract is enforced here, not remembered by each backend: ``__call__`` makes ``x`` contiguous float32, calls
    the backend's :meth:`_infer` and checks the result once (:func:`check_output`). A model is a context manager;
    :meth:`close` frees what the backend holds (sessions, GPU buffers).
    """

    path: Path
    limits: ShapeLimits
    fix = "re-export it"  # what the NaN/Inf message tells the user to do

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        return check_output(self._infer(x), x.shape, str(self.path), self.fix)

    @abstractmethod
    def _infer(self, x: np.ndarray) -> np.ndarray:
        """The backend's inference on a contiguous float32 ``[N, 3, H, W]``; raise :class:`DrsedgeError` on failure."""

    def latency_ms(self, height: int = 256, width: int = 256, runs: int = 5, warmup: int = 1) -> dict:
        """Wall-time :func:`latency_summary` of whole ``[1, 3, height, width]`` frames (engines: GPU time).

        Raises:
            DrsedgeError: a frame size outside :attr:`limits` (time through a tiling runner instead).
        """
        lo, hi = self.limits.min_hw, self.limits.max_hw
        if height < lo[0] or width < lo[1] or (hi is not None and (height > hi[0] or width > hi[1])):
            raise DrsedgeError(f"{self.path}: latency size {height}x{width} is outside what it takes ({self.limits.source})")
        x = np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32)
        return latency_summary(wall_times_ms(self, x, runs, warmup), height, width)

    def close(self) -> None:
        """Free the backend's resources (idempotent); the model is unusable afterwards."""
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_output(y, x_shape: tuple, source: str, fix: str = "re-export it") -> np.ndarray:
    """``y`` as a float32 numpy array, refused when it is not shaped like the input or holds NaN/Inf.

    Raises:
        DrsedgeError: output shape differs from ``x_shape`` (e.g. an ONNX whose output size differs from its input).
        NonFiniteError: NaN or Inf in the output (nothing downstream may write it).
    """
    y = np.asarray(y, dtype=np.float32)
    if tuple(y.shape) != tuple(x_shape):
        raise DrsedgeError(f"{source}: output shape {tuple(y.shape)} differs from input {tuple(x_shape)}; "
                           "drsedge models map [N, 3, H, W] to the same shape (re-export with `drsedge export`)")
    if not np.isfinite(y).all():
        raise NonFiniteError(f"{source}: output holds NaN or Inf; the model is broken ({fix}); nothing written")
    return y
