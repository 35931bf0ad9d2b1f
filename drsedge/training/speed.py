"""Speed and memory options of the training step: activation checkpointing, channels-last, ``torch.compile``.

None changes what is computed (checkpointing recomputes each TransformerBlock's forward in the backward pass,
``torch.utils.checkpoint`` with ``use_reentrant=False``, PyTorch docs; channels-last is a memory layout), only
how fast and in how much memory; ``benchmarks/bench_train.py`` measures each side by side.
"""

from __future__ import annotations

import contextlib
import functools

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


def _blocks(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if type(m).__name__ == "TransformerBlock"]


@contextlib.contextmanager
def activation_checkpointing(model: nn.Module, enabled: bool = True):
    """Within the block, every ``TransformerBlock`` of ``model`` keeps only its input for the backward pass and
    recomputes the rest (the full teacher at 128^2 x 8 holds its attention maps otherwise). The module tree and the
    state_dict are untouched (an instance-level ``forward``), so checkpoints and DDP see the same model. Yields
    the number of blocks wrapped."""
    blocks = _blocks(model) if enabled else []
    for b in blocks:
        b.forward = functools.partial(lambda fwd, x: checkpoint(fwd, x, use_reentrant=False), type(b).forward.__get__(b))
    try:
        yield len(blocks)
    finally:
        for b in blocks:
            del b.forward


def prepare(net: nn.Module, channels_last: bool = False, compile: bool = False) -> nn.Module:
    """``net`` in channels-last memory format and/or wrapped by ``torch.compile`` (default inductor backend)."""
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    if compile:
        net = torch.compile(net)
    return net


def to_input_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
