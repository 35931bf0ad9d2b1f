"""Compression: teacher training, distillation into a student, INT8 post-training quantization."""

from .quantize import BACKENDS, count_qdq, quantize_onnx
from .train import TrainConfig, cosine_restart_lr, train

__all__ = ["BACKENDS", "TrainConfig", "cosine_restart_lr", "count_qdq", "quantize_onnx", "train"]
