"""Inference: padding/tiling as upstream test.py, runners over PyTorch and ONNX Runtime, and the torch-free
ONNX Runtime path (:mod:`.onnx_np`) that ``drsedge stream`` and ``drsedge derain MODEL.onnx`` use.

Names are imported on first use, so ``drsedge.runtime.onnx_np`` does not pull in PyTorch.
"""

_NAMES = {"OrtRunner": "runners", "TorchRunner": "runners", "ort_session": "runners", "pad_to_multiple": "tiling", "restore": "tiling",
          "tile_starts": "tiling", "tiled_forward": "tiling"}


def __getattr__(name: str):
    if name in _NAMES:
        import importlib

        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(f"module 'drsedge.runtime' has no attribute {name!r}")


__all__ = sorted(_NAMES)
