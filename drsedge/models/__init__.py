"""DRSformer teacher, DRSformer-family students, UDR-S2Former, attention forms and checkpoint I/O."""

from .attention import assa_probs, topk_sizes, topk_sparse_probs
from .checkpoint import config_from_state_dict, load_any, load_checkpoint, load_model, read_config, save_model
from .config import ModelConfig, student_config, teacher_config
from .drsformer import DRSformer, set_attention_impl, set_fp16_safe, set_topk_mode
from .info import model_info
from .udr_config import UDRConfig, udr_small_config
from .udr_s2former import UDRS2Former

__all__ = [
    "DRSformer",
    "ModelConfig",
    "UDRConfig",
    "UDRS2Former",
    "assa_probs",
    "config_from_state_dict",
    "load_any",
    "load_checkpoint",
    "load_model",
    "model_info",
    "read_config",
    "save_model",
    "set_attention_impl",
    "set_fp16_safe",
    "set_topk_mode",
    "student_config",
    "teacher_config",
    "topk_sizes",
    "topk_sparse_probs",
    "udr_small_config",
]
