"""Calibration inputs for INT8 post-training quantization.

Calibration uses real rainy images from a user folder (never the held-out test
set): each image is decoded, center-cropped to a fixed size (a multiple of 8,
so the model sees the shapes it will run at) and kept as ``[1, 3, S, S]``
float32 in [0, 1]. Deterministic: the same folder gives the same tensors.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from drsedge.data.folders import find_unlabeled, unlabeled_dir
from drsedge.data.images import read_image
from drsedge.errors import DrsedgeError


@dataclass
class CalibrationSet:
    """``inputs``: list of ``[1, 3, S, S]`` float32 arrays; ``files``: their sources; ``digest``: sha256 over the pixels."""

    inputs: list[np.ndarray]
    files: list[Path]
    digest: str


def calibration_set(folders: list[str | os.PathLike], size: int | None = 128, limit: int = 32) -> CalibrationSet:
    """Center crops of up to ``limit`` rainy images from ``folders`` (each folder: images, or an ``input/`` subfolder).

    ``size``: square crop side (a multiple of 8); ``None`` keeps each whole frame, cropped to multiples of 8.

    Raises:
        DrsedgeError: no folder given, empty folder, corrupt image, ``size`` not a multiple of 8,
            or a folder named like the held-out test set (rain100L).
    """
    if size is not None and size % 8:
        raise DrsedgeError(f"calibration size {size} must be a multiple of 8")
    if not folders:
        raise DrsedgeError("no calibration folder given: pass a folder of real rainy images (not the test set)")
    from drsedge.data.heldout import guard_not_held_out

    guard_not_held_out([unlabeled_dir(f) for f in folders], "calibration")  # the images read, not a pair folder's targets
    files: list[Path] = []
    for f in folders:
        files.extend(find_unlabeled(f))
    files = files[:limit]
    inputs, h = [], hashlib.sha256()
    for path in files:
        img = read_image(path)
        sh, sw = img.shape[0] // 8 * 8, img.shape[1] // 8 * 8
        if size is not None:
            sh = sw = min(size, sh, sw)
        i, j = (img.shape[0] - sh) // 2, (img.shape[1] - sw) // 2
        x = np.ascontiguousarray(img[i : i + sh, j : j + sw].transpose(2, 0, 1)[None])
        h.update(x.tobytes())
        inputs.append(x)
    return CalibrationSet(inputs, files, h.hexdigest())
