"""Inference: padding/tiling as upstream test.py, and runners over PyTorch and ONNX Runtime."""

from .runners import OrtRunner, TorchRunner, ort_session
from .tiling import pad_to_multiple, restore, tile_starts, tiled_forward

__all__ = ["OrtRunner", "TorchRunner", "ort_session", "pad_to_multiple", "restore", "tile_starts", "tiled_forward"]
