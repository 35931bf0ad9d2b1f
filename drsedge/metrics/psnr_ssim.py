"""PSNR and SSIM on the luma (Y) channel, as deraining papers report them.

Two conventions:

* ``"matlab"`` (default): the DRSformer/Restormer MATLAB evaluation script
  (``evaluate_PSNR_SSIM.m``): ``rgb2ycbcr`` on uint8 images returns uint8, so
  ``Y = round(16 + (65.481 R + 128.553 G + 24.966 B) / 255)`` with R, G, B in
  0..255; PSNR with peak 255; SSIM of Wang et al. 2004 (11x11 Gaussian window,
  sigma 1.5, K = (0.01, 0.03), L = 255, mean over the valid region).
* ``"basicsr"``: BasicSR's ``calculate_psnr/ssim(test_y_channel=True)``: the same
  Y formula without rounding (float64), same SSIM.

* ``"udr"``: UDR-S2Former's ``test.py`` (Owen718/UDR-S2Former_deraining @ 93c50a8): BasicSR's float Y, but its
  ``bgr2ycbcr`` is fed RGB tensors, so the R and B weights are swapped (``Y = 16 + (24.966 R + 128.553 G + 65.481 B)
  / 255``). Use it only to compare with that paper's numbers (on the 4 Qian raindrop pairs it moves the rainy input's
  PSNR by -0.05 to -0.40 dB; ../shared/notes/udr-s2former.md §2); report the standard Y beside it.

SSIM is scikit-image's ``structural_similarity`` with ``gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=255``: its 11-tap Gaussian
(truncate 3.5) and border crop give exactly the valid-region mean.
"""

from __future__ import annotations

import math

import numpy as np
from skimage.metrics import structural_similarity

CONVENTIONS = ("matlab", "basicsr", "udr")
_Y_MILLI = (65481, 128553, 24966)  # rgb2ycbcr's Y row x 1000: exact integers
_Y_SCALE, _Y_OFFSET = 255_000, 16 * 255_000


def rgb_to_y(img: np.ndarray, convention: str = "matlab") -> np.ndarray:
    """``[H, W, 3]`` uint8 RGB -> ``[H, W]`` float64 Y in [16, 235] (rounded for ``"matlab"``).

    Raises:
        ValueError: non-uint8 input or unknown convention.
    """
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected [H, W, 3] uint8, got {img.dtype} {img.shape}")
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    # Exact integer arithmetic, so every CPU gives the same Y: 255000*Y = 16*255000 + 65481 R + 128553 G + 24966 B.
    # (A float matmul goes through BLAS, whose summation order differs between kernels: Y of (5, 65, 25) came out
    # 52.49999999999999 on one machine and 52.5 on another, and the MATLAB rounding of that half differed.)
    c = img.astype(np.int64)
    if convention == "udr":
        c = c[..., ::-1]  # upstream UDR-S2Former feeds RGB to a BGR formula; then BasicSR's float Y
    s = _Y_OFFSET + _Y_MILLI[0] * c[..., 0] + _Y_MILLI[1] * c[..., 1] + _Y_MILLI[2] * c[..., 2]
    if convention == "matlab":
        # MATLAB's uint8 cast rounds .5 away from zero (np.round would round half to even); Y > 0 here
        return ((s + _Y_SCALE // 2) // _Y_SCALE).astype(np.float64)
    return s / _Y_SCALE  # one correctly rounded division per pixel


def psnr_y(pred: np.ndarray, target: np.ndarray, convention: str = "matlab") -> float:
    """PSNR in dB on Y between two ``[H, W, 3]`` uint8 images (``inf`` when identical)."""
    _check_pair(pred, target)
    d = rgb_to_y(pred, convention) - rgb_to_y(target, convention)
    mse = float(np.mean(d * d))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def ssim_y(pred: np.ndarray, target: np.ndarray, convention: str = "matlab") -> float:
    """SSIM (unitless, <= 1) on Y between two ``[H, W, 3]`` uint8 images, 11x11 Gaussian sigma 1.5, valid region."""
    _check_pair(pred, target)
    return float(
        structural_similarity(
            rgb_to_y(pred, convention),
            rgb_to_y(target, convention),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255.0,
            K1=0.01,
            K2=0.03,
        )
    )


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"image sizes differ: {a.shape} vs {b.shape}")
