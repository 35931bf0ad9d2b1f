"""UDR-S2Former's training loss (upstream ``train.py: training_step`` and ``loss/CL1.py``, Owen718/UDR-S2Former_deraining
@ 93c50a8; paper Sec. 3.4): a PSNR loss on the five outputs, the uncertainty term, and an optional perceptual term.

    L = L_f + 0.2 L_per + L_u
    L_f = 0.5 (P(y, out0) + P(y1, out1) + P(y2, out2) + P(y3, out3)) / 4 + P(y, out_final)
    P(p, t) = 10 / ln 10 * mean_b log(MSE_b(p, t) + 1e-8)            (= -PSNR for peak 1, per image)
    L_u = mean over the 5 (pred, var, gt) pairs of  L1(pred * e^-var, gt * e^-var) + 2 mean(var)

``y1, y2, y3`` are ``y`` bicubic-downscaled by 1/2, 1/4, 1/8. ``L_per`` is upstream's ``PerceptualLoss2`` on an
ImageNet VGG19 (conv1_1 and conv1_2, no input normalisation); its weights cannot be downloaded here, so without a
``perceptual`` callable the term is 0 and the loss is ``L_f + L_u`` (said in the returned parts).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F


def psnr_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``10 / ln 10 * mean_b log(mean_{c,h,w} (pred - target)^2 + 1e-8)`` for ``[B, C, H, W]``: minus the PSNR (dB, peak 1)."""
    return (10 / math.log(10)) * torch.log(((pred - target) ** 2).mean(dim=(1, 2, 3)) + 1e-8).mean()


def udr_loss(outs: list[torch.Tensor], var: list[torch.Tensor], y: torch.Tensor,
             perceptual: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> tuple[torch.Tensor, dict]:
    """The upstream loss of ``UDRS2Former.forward_all`` outputs against the clean ``y`` ``[B, 3, H, W]`` in [0, 1].

    Args:
        outs: ``[out_final, out0, out1, out2, out3]`` at H, H, H/2, H/4, H/8.
        var: the five uncertainty maps at the same scales.
        perceptual: ``f(y, out_final)`` (upstream: VGG19 conv1_1 + conv1_2 L1), weighted 0.2; None drops the term.

    Returns:
        ``(loss, parts)``; ``parts`` holds ``psnr``, ``uncertainty``, ``perceptual`` (None when dropped) as floats.
    """
    y1, y2, y3 = (F.interpolate(y, scale_factor=s, mode="bicubic") for s in (0.5, 0.25, 0.125))
    lf = psnr_loss(outs[1], y) + psnr_loss(outs[2], y1) + psnr_loss(outs[3], y2) + psnr_loss(outs[4], y3)
    lf = 0.5 * (lf / 4.0) + psnr_loss(outs[0], y)
    lu = y.new_zeros(())
    for pred, v, gt in zip(outs, var, (y, y, y1, y2, y3)):
        s = torch.exp(-v)
        lu = lu + F.l1_loss(pred * s, gt * s) + 2 * torch.mean(v)
    lu = lu / 5.0
    lp = perceptual(y, outs[0]) if perceptual is not None else None
    loss = lf + lu + (0.2 * lp if lp is not None else 0.0)
    return loss, {"psnr": float(lf.detach()), "uncertainty": float(lu.detach()),
                  "perceptual": None if lp is None else float(lp.detach())}
