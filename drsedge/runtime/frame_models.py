"""One numpy model API over the three kinds of MODEL ``drsedge stream`` and ``drsedge derain`` take.

``open_frame_model(path)`` returns ``model(x [1, 3, H, W] float32 in [0, 1]) -> same shape`` with ``limits``
(:class:`~drsedge.runtime.limits.ShapeLimits`) and ``path``:

- ``*.onnx``: ONNX Runtime (CPU, CUDA or TensorRT execution provider) or OpenVINO (``provider="openvino"``, CPU),
  no PyTorch;
- ``*.engine`` / ``*.plan`` / ``*.trt``: a drsedge-built TensorRT engine with its sidecar, no PyTorch
  (TensorRT + cuda-python, :mod:`.engine_np`);
- anything else (``*.safetensors``, upstream ``*.pth``, ``shipped:student``): PyTorch eager on the CPU.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from drsedge.errors import DrsedgeError

from .base import FrameModel, check_output
from .limits import ShapeLimits

ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


class TorchFrameModel(FrameModel):
    """A PyTorch model in eval mode (CPU) as a :class:`~drsedge.runtime.base.FrameModel`: numpy in and out, output
    checked. ``source``: a drsedge or upstream checkpoint (or ``shipped:student``), or an ``nn.Module``.

    Raises:
        DrsedgeError: an unreadable checkpoint (:func:`drsedge.models.checkpoint.load_any`).
    """

    def __init__(self, source, name: str | None = None):
        import torch

        if isinstance(source, torch.nn.Module):
            self.model, self.path = source, Path(name or type(source).__name__)
        else:
            from drsedge.models.checkpoint import load_any
            from drsedge.weights import resolve

            self.path = Path(resolve(str(source)))
            self.model, _ = load_any(self.path)
        self.model.eval()
        self.limits = ShapeLimits(source="checkpoint (any size)")
        self._torch = torch

    def forward_tensor(self, x):
        """``[N, 3, H, W]`` float32 torch tensor in and out, under ``no_grad``, checked."""
        with self._torch.no_grad():
            y = self.model(x)
        check_output(y.detach().float().numpy(), tuple(x.shape), str(self.path), "retrain or re-export it")
        return y

    fix = "retrain or re-export it"

    def _infer(self, x: np.ndarray) -> np.ndarray:
        with self._torch.no_grad():
            return self.model(self._torch.from_numpy(x)).detach().float().numpy()


def open_frame_model(path: str | os.PathLike, provider: str = "cpu", plugin: str | None = None):
    """The model behind ``path`` (see module docstring).

    ``provider`` applies to ONNX only, ``plugin`` (the fused-op plugin library) to engines only.

    Raises:
        DrsedgeError: a missing file, an option that does not apply to this kind of model, or what the
            backend raises (unloadable file, wrong input shape, no TensorRT/GPU).
    """
    p = str(path)
    if p.endswith(".onnx"):
        if plugin:
            raise DrsedgeError(f"{p}: --plugin is for TensorRT engines; ONNX Runtime runs the fused op from the model's own function")
        if provider == "openvino":
            from .openvino_np import OpenVinoModel

            return OpenVinoModel(p)
        from .onnx_np import OnnxModel

        return OnnxModel(p, provider)
    if p.endswith(ENGINE_SUFFIXES):
        from .engine_np import EngineModel

        if provider != "cpu":
            raise DrsedgeError(f"{p}: --provider is for ONNX models; an engine runs in TensorRT on its GPU")
        return EngineModel(p, plugin)
    if provider != "cpu" or plugin:
        raise DrsedgeError(f"{p}: checkpoints run in PyTorch on the CPU; --provider and --plugin are for ONNX models and engines")
    if not p.startswith("shipped:") and not Path(p).is_file():
        raise DrsedgeError(f"{p}: model not found (an .onnx, a TensorRT .engine/.plan with its .json sidecar, or a checkpoint)")
    return TorchFrameModel(p)
