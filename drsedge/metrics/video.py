"""Quality of a derained video against clean reference frames: per-frame PSNR-Y and temporal flicker.

Flicker is the mean absolute difference of consecutive frames in 8-bit levels, for the derained and the clean
stream; a derainer that flickers more than the clean video shows it as ``derained > clean``.
"""

from __future__ import annotations

import os
import statistics

import numpy as np

from drsedge.data.folders import list_images
from drsedge.data.images import read_uint8

from .psnr_ssim import psnr_y


class VideoReference:
    """Clean frames of ``folder`` matched to the derained frames by order (frame ``i`` <-> the ``i``-th image).

    Raises:
        DrsedgeError: a missing or empty folder (:func:`drsedge.data.folders.list_images`).
    """

    def __init__(self, folder: str | os.PathLike):
        self.frames = list_images(folder)
        self.psnr_y: dict[str, float] = {}
        self.mismatches = 0  # reference frames whose size differs from the output (no PSNR for them)
        self._prev: tuple[np.ndarray, np.ndarray] | None = None
        self._flicker: tuple[list[float], list[float]] = ([], [])

    def score(self, index: int, derained: np.ndarray) -> None:
        """Score frame ``index`` (``[H, W, 3]`` uint8 RGB): PSNR-Y (dB) and the flicker step from the previous frame."""
        if index >= len(self.frames):
            return
        clean = read_uint8(self.frames[index])
        if clean.shape != derained.shape:
            self.mismatches += 1
            return
        self.psnr_y[str(index)] = psnr_y(derained, clean)
        d, c = derained.astype(np.int16), clean.astype(np.int16)
        if self._prev is not None:
            self._flicker[0].append(float(np.abs(d - self._prev[0]).mean()))
            self._flicker[1].append(float(np.abs(c - self._prev[1]).mean()))
        self._prev = (d, c)

    def flicker(self) -> dict:
        """``{"derained": levels, "clean": levels}`` (mean |frame_t - frame_t-1|), or ``{}`` before two scored frames."""
        if not self._flicker[0]:
            return {}
        return {"derained": statistics.fmean(self._flicker[0]), "clean": statistics.fmean(self._flicker[1])}
