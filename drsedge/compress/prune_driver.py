"""The iterative pruning driver used by ``drsedge prune`` and the pipeline's prune stage (one loop, one rule).

Each of ``iterations`` steps removes the same fraction of what is left, ``1 - (1 - ratio) ** (1 / iterations)``,
so the steps compound to ``ratio``; between steps an optional callback fine-tunes (distillation, as
``drsedge distill``) and, for Taylor importance, a callback fills the gradients first.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from drsedge.choices import DRSFORMER_PRUNE_SCOPES
from drsedge.errors import DrsedgeError
from drsedge.models.config import ModelConfig

DRSFORMER_SCOPES = DRSFORMER_PRUNE_SCOPES


def family_scopes(config, scopes=None) -> list[str]:
    """The scopes to prune: ``scopes``, or the family's default (DRSformer ``msfn``; UDR-S2Former ``mlp`` + ``mffn``).

    Raises:
        DrsedgeError: a scope the model's family does not have.
    """
    from drsedge.models.family import family_of_config

    fam = family_of_config(config)
    if not fam.prune_scopes:
        raise DrsedgeError(f"{fam.label} has no structural pruning in drsedge yet; disable the prune stage (prune.enabled: false)")
    scopes = list(scopes or fam.default_prune_scopes)
    if set(scopes) - set(fam.prune_scopes):
        raise DrsedgeError(f"scope {' '.join(scopes)}: a {fam.label} prunes --scope {' '.join(fam.prune_scopes)} "
                           "(prune.scope in a run config)")
    return scopes


def step_ratio(ratio: float, iterations: int) -> float:
    """Fraction removed per step so that ``iterations`` steps compound to ``ratio``."""
    return 1 - (1 - ratio) ** (1 / max(1, iterations))


def iterative_prune(
    model: nn.Module,
    config,
    *,
    ratio: float,
    importance: str = "l2",
    scopes=("msfn",),
    iterations: int = 1,
    before_step: Callable[[nn.Module, int], None] | None = None,
    after_step: Callable[[nn.Module, ModelConfig, int], None] | None = None,
    probe=None,
) -> tuple[nn.Module, ModelConfig]:
    """Prune ``model`` in ``iterations`` steps; ``before_step(model, i)`` runs before step ``i`` (1-based; e.g.
    Taylor gradients), ``after_step(model, config, i)`` after it (e.g. fine-tuning, a measurement).

    Both families: DRSformer (``config`` a ModelConfig, :func:`drsedge.compress.prune.prune_model`) and UDR-S2Former
    (:func:`drsedge.compress.prune_udr.prune_udr`).

    Raises:
        DrsedgeError: a scope of the other family; the errors of the family's prune function.
    """
    scopes = family_scopes(config, scopes)
    from drsedge.models.family import family_of_config

    prune = family_of_config(config).prune_function()
    r = step_ratio(ratio, iterations)
    for it in range(1, max(1, iterations) + 1):
        if before_step is not None:
            before_step(model, it)
        model, config = prune(model, config, r, importance, scopes, probe) if probe is not None else prune(model, config, r, importance, scopes)
        model.zero_grad(set_to_none=True)  # Taylor gradients of this step do not leak into the next
        if after_step is not None:
            after_step(model, config, it)
    return model, config
