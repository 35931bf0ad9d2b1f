"""Training: the teacher (upstream recipe) and distillation, on CPU or CUDA, in fp32/bf16/fp16, single process or
torchrun DDP (:mod:`.distributed`)."""

from .loop import STATE_FILE, TrainConfig, cosine_restart_lr, train

__all__ = ["STATE_FILE", "TrainConfig", "cosine_restart_lr", "train"]
