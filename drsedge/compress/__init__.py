"""Compression: teacher training, distillation, MSFN structural pruning, INT8 post-training quantization."""

from .prune import IMPORTANCES, SCOPES, prune_attention, prune_model, prune_msfn, ratio_for_macs, taylor_gradients
from .quantize import BACKENDS, count_qdq, quantize_onnx
from .train import TrainConfig, cosine_restart_lr, train

__all__ = [
    "BACKENDS",
    "IMPORTANCES",
    "SCOPES",
    "TrainConfig",
    "cosine_restart_lr",
    "count_qdq",
    "prune_attention",
    "prune_model",
    "prune_msfn",
    "quantize_onnx",
    "ratio_for_macs",
    "taylor_gradients",
    "train",
]
