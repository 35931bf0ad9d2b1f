"""The iterative pruning driver used by ``drsedge prune`` and the pipeline's prune stage (one loop, one rule).

Each of ``iterations`` steps removes the same fraction of what is left, ``1 - (1 - ratio) ** (1 / iterations)``,
so the steps compound to ``ratio``; between steps an optional callback fine-tunes (distillation, as
``drsedge distill``) and, for Taylor importance, a callback fills the gradients first.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from drsedge.models.config import ModelConfig

from .prune import prune_model


def step_ratio(ratio: float, iterations: int) -> float:
    """Fraction removed per step so that ``iterations`` steps compound to ``ratio``."""
    return 1 - (1 - ratio) ** (1 / max(1, iterations))


def iterative_prune(
    model: nn.Module,
    config: ModelConfig,
    *,
    ratio: float,
    importance: str = "l2",
    scopes=("msfn",),
    iterations: int = 1,
    before_step: Callable[[nn.Module, int], None] | None = None,
    after_step: Callable[[nn.Module, ModelConfig, int], None] | None = None,
) -> tuple[nn.Module, ModelConfig]:
    """Prune ``model`` in ``iterations`` steps; ``before_step(model, i)`` runs before step ``i`` (1-based; e.g.
    Taylor gradients), ``after_step(model, config, i)`` after it (e.g. fine-tuning, a measurement).

    Raises:
        DrsedgeError: the errors of :func:`drsedge.compress.prune.prune_model`.
    """
    r = step_ratio(ratio, iterations)
    for it in range(1, max(1, iterations) + 1):
        if before_step is not None:
            before_step(model, it)
        model, config = prune_model(model, config, r, importance, scopes)
        if after_step is not None:
            after_step(model, config, it)
    return model, config
