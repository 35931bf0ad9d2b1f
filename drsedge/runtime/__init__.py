"""Inference: one torch-free frame-model interface (:mod:`.base`) implemented over ONNX Runtime, OpenVINO, TensorRT
and PyTorch, one tiler (:mod:`.tile_plan`), and torch-tensor runners over them (:mod:`.runners`) for the drift report.
``drsedge stream`` and ``drsedge derain MODEL.onnx`` use the torch-free path.

Names are imported on first use, so ``drsedge.runtime.onnx_np`` does not pull in PyTorch.
"""

_NAMES = {"OrtRunner": "runners", "TorchRunner": "runners", "EngineRunner": "runners", "TensorRunner": "runners", "ort_session": "onnx_np", "pad_to_multiple": "tiling", "restore": "tiling",
          "tile_starts": "tiling", "tiled_forward": "tiling"}


def __getattr__(name: str):
    if name in _NAMES:
        import importlib

        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(f"module 'drsedge.runtime' has no attribute {name!r}")


__all__ = sorted(_NAMES)
