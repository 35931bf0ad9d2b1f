"""FP16-safe forms of DRSformer's two reductions: LayerNorm statistics and the q/k L2-normalisation.

In an FP16 engine every layer output is stored in half precision (max 65504). DRSformer's
reductions overflow there although their inputs are small:

* ``F.normalize(q, dim=-1)`` over ``H*W`` pixels (TKSA, paper Sec. 3.2; upstream
  ``DRSformer_arch.py`` ``Attention.forward``) exports as ``ReduceL2``, whose sum of squares
  is ``H*W * E[q^2]``: on a trained student at 328x488 it reaches 3.2e5 (measured,
  ``drsedge fp16-check``), and it grows with the frame size.
* LayerNorm's ``(x - mu)^2`` overflows once one channel is 256 away from the mean.

Both functions here first divide by the row's max-abs ``s`` so that every squared term is in
[0, 1] and take a *mean* (not a sum), so every intermediate is bounded by 1 (or by sqrt of the
row length) whatever the resolution. In FP32 they are the same arithmetic up to rounding
(tests: max abs difference <= 1e-6 on the full model); they cost one extra ReduceMax and a few
element-wise ops per call (``benchmarks/bench_fp16_safe.py``).
"""

from __future__ import annotations

import torch

# clamp for the mean of squares of a max-normalised row: >= 1/n for any non-zero row of
# n <= 1e7 elements, so it only acts on all-zero rows (and stays representable in FP16).
_MEAN_FLOOR = 1e-7
_TINY = 1e-4  # floor of the max-abs scale; any positive value gives the same FP32 result


def _rsqrt_size(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``1 / sqrt(x.shape[dim])`` as a 0-d tensor of ``x.dtype``, symbolic in both ONNX exporters.

    One dimension at a time so that the size itself (an image side, <= 65504) fits in FP16.
    """
    if torch.jit.is_tracing():  # TorchScript exporter: Shape -> Gather -> Cast
        from torch.onnx.operators import shape_as_tensor

        return torch.rsqrt(shape_as_tensor(x)[dim].to(x.dtype))
    return torch.rsqrt(torch.full((), x.shape[dim], dtype=x.dtype, device=x.device))  # eager, torch.export (SymInt)


def l2_normalize(x: torch.Tensor, dims: tuple[int, ...] = (-1,)) -> torch.Tensor:
    """``F.normalize`` over the flattened ``dims`` of ``x``, with every intermediate bounded (FP16-safe).

    ``y = (x / s) * rsqrt(mean((x / s)^2)) * prod_d rsqrt(x.shape[d])`` with ``s = max|x|`` over
    ``dims``. TKSA normalises q/k over the pixels: pass ``[B, heads, C, H, W]`` and ``dims=(-2, -1)``
    so that no factor exceeds one image side. Returns the same shape and dtype, each row of unit
    L2 norm. All-zero rows give zeros (as ``F.normalize``); rows with norm below 1e-12, which
    ``F.normalize`` leaves unnormalised, come out with unit norm.
    """
    s = x.abs().amax(dims, keepdim=True).clamp_min(_TINY)
    xs = x / s
    y = xs * torch.rsqrt(xs.square().mean(dims, keepdim=True).clamp_min(_MEAN_FLOOR))
    for d in dims:
        y = y * _rsqrt_size(x, d)
    return y


def _scaled_stats(xc: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(s, rsqrt(var/s^2 + eps/s^2))`` of centred ``[B, C, H, W]`` over channels; ``s >= sqrt(eps)``."""
    s = xc.abs().amax(1, keepdim=True).clamp_min(eps**0.5)
    ms = (xc / s).square().mean(1, keepdim=True)
    return s, torch.rsqrt(ms + (eps**0.5 / s).square())


def layer_norm_with_bias(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float = 1e-5) -> torch.Tensor:
    """FP16-safe ``WithBias_LayerNorm`` over channels of ``[B, C, H, W]``.

    ``(x - mu) / sqrt(var + eps) * w + b`` computed as ``(xc / s) * rsqrt(mean((xc/s)^2) + (sqrt(eps)/s)^2)``
    with ``s = max(max_c |xc|, sqrt(eps))``, so every squared term and the added epsilon are <= 1.
    ``weight``/``bias``: ``[C]``, or both None for the affine-free form (deploy graphs fold them into the next conv).
    Same shape and dtype as ``x``.
    """
    xc = x - x.mean(1, keepdim=True)
    s, r = _scaled_stats(xc, eps)
    y = (xc / s) * r
    return y if weight is None else y * weight[:, None, None] + bias[:, None, None]


def layer_norm_bias_free(x: torch.Tensor, weight: torch.Tensor | None, eps: float = 1e-5) -> torch.Tensor:
    """FP16-safe ``BiasFree_LayerNorm``: ``x / sqrt(var + eps) * w`` (the mean is not removed from the output;
    ``weight`` None: no scale)."""
    s, r = _scaled_stats(x - x.mean(1, keepdim=True), eps)
    y = (x / s) * r
    return y if weight is None else y * weight[:, None, None]
