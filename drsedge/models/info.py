"""Parameter and MAC counts (torch.utils.flop_counter) of a model at a resolution."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode


@dataclass
class ModelInfo:
    """``params``: trainable parameters; ``macs``: multiply-accumulates for one ``[1, 3, H, W]`` forward
    (FlopCounterMode FLOPs / 2; counts conv and matmul, not elementwise ops); ``height``/``width`` in px."""

    params: int
    macs: int
    height: int
    width: int

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9


def model_info(model: torch.nn.Module, height: int = 256, width: int = 256) -> ModelInfo:
    """Count params and MACs of ``model`` for a ``[1, 3, height, width]`` input (multiples of 8)."""
    from drsedge.data.images import check_frame_size

    check_frame_size(height, width, "model_info size")
    params = sum(p.numel() for p in model.parameters())
    was_training = model.training
    model.eval()
    x = torch.rand(1, 3, height, width)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return ModelInfo(params=params, macs=counter.get_total_flops() // 2, height=height, width=width)
