"""Compression: structural pruning, INT8 post-training quantization and its keep-float search."""

from .keep_float import search_keep_float
from .prune import SCOPES, prune_attention, prune_heads, prune_model, prune_msfn, ratio_for_macs, taylor_gradients
from .prune_common import IMPORTANCES
from .prune_streams import prune_streams
from .quantize import BACKENDS, count_qdq, quantize_onnx

__all__ = [
    "BACKENDS",
    "IMPORTANCES",
    "SCOPES",
    "count_qdq",
    "prune_attention",
    "prune_heads",
    "prune_model",
    "prune_msfn",
    "prune_streams",
    "quantize_onnx",
    "ratio_for_macs",
    "search_keep_float",
    "taylor_gradients",
]
