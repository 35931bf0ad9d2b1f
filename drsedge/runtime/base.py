"""The one model interface of the runtime, torch-free (Polygraphy's ``BaseRunner`` idea, reduced to images).

A *frame model* maps ``x``: ``[N, 3, H, W]`` float32 numpy in [0, 1] (H, W multiples of 8, within ``limits``) to an
output of the same shape and dtype, checked on every call by :func:`check_output`. Implementations:
:class:`~drsedge.runtime.onnx_np.OnnxModel` (ONNX Runtime), :class:`~drsedge.runtime.openvino_np.OpenVinoModel`,
:class:`~drsedge.runtime.engine_np.EngineModel` (TensorRT) and :class:`~drsedge.runtime.frame_models.TorchFrameModel`
(PyTorch eager). Tiling and padding of whole frames: :func:`drsedge.runtime.onnx_np.restore_np` (numpy) and
:func:`drsedge.runtime.tiling.restore` (torch tensors, through :class:`drsedge.runtime.runners.TensorRunner`), both
planned by :mod:`drsedge.runtime.tile_plan`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from drsedge.errors import DrsedgeError, NonFiniteError

from .limits import ShapeLimits


class FrameModel(Protocol):
    """``model(x) -> y`` (see module docstring); ``path``: the file it runs; ``limits``: the frame sizes it takes."""

    path: Path
    limits: ShapeLimits

    def __call__(self, x: np.ndarray) -> np.ndarray: ...


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
