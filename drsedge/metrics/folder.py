"""Score a folder of predictions against a folder of targets (matched by file stem)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from drsedge.data.folders import list_images
from drsedge.data.images import read_uint8
from drsedge.errors import DrsedgeError

from .psnr_ssim import psnr_y, ssim_y


@dataclass
class FolderMetrics:
    """Per-image and mean PSNR-Y (dB) and SSIM-Y over matched files."""

    convention: str
    per_image: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def psnr(self) -> float:
        return sum(v["psnr"] for v in self.per_image.values()) / len(self.per_image)

    @property
    def ssim(self) -> float:
        return sum(v["ssim"] for v in self.per_image.values()) / len(self.per_image)

    def to_dict(self) -> dict:
        return {"convention": self.convention, "psnr": self.psnr, "ssim": self.ssim, "n": len(self.per_image), "per_image": self.per_image}


def evaluate_folders(pred_dir: str | os.PathLike, target_dir: str | os.PathLike, convention: str = "matlab") -> FolderMetrics:
    """PSNR-Y/SSIM-Y of every prediction against the target with the same stem.

    Raises:
        DrsedgeError: empty folders, names that do not match, two files with one stem in a folder
            (``a.png`` and ``a.jpg``: which one to score is ambiguous), or size mismatch.
    """
    preds, targets = _by_stem(pred_dir), _by_stem(target_dir)
    missing = sorted(set(preds) - set(targets))
    if missing:
        raise DrsedgeError(f"{Path(pred_dir) / missing[0]}: no target with this name in {target_dir}")
    out = FolderMetrics(convention)
    for stem, path in preds.items():
        a, b = read_uint8(path), read_uint8(targets[stem])
        if a.shape != b.shape:
            raise DrsedgeError(f"{path}: size {a.shape[1]}x{a.shape[0]} differs from its target {b.shape[1]}x{b.shape[0]}")
        out.per_image[stem] = {"psnr": psnr_y(a, b, convention), "ssim": ssim_y(a, b, convention)}
    return out


def _by_stem(folder) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in list_images(folder):
        if p.stem in out:
            raise DrsedgeError(f"{p}: {out[p.stem].name} has the same name in {folder}; keep one of them (files are matched by name)")
        out[p.stem] = p
    return out
