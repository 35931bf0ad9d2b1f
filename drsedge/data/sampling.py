"""Random training crops with flips/rotations, reproducible per (seed, step).

Every batch is a pure function of ``(seed, step)``: resuming at step N draws
exactly the batches an uninterrupted run would, with no RNG state to save.
Images are decoded once and kept in memory (the training sets here are small).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from drsedge.errors import DrsedgeError

from .folders import Pair
from .images import read_image, to_tensor


@dataclass
class Sample:
    """A training image: ``rainy`` ``[3, H, W]`` float32 in [0, 1]; ``clean`` the same or None (unlabeled)."""

    rainy: torch.Tensor
    clean: torch.Tensor | None
    name: str


def load_samples(pairs: list[Pair] = (), unlabeled: list[Path] = ()) -> list[Sample]:
    """Decode paired and unlabeled images into memory.

    Raises:
        DrsedgeError: a corrupt image, or a pair whose rainy and clean sizes differ.
    """
    out = []
    for p in pairs:
        r, c = to_tensor(read_image(p.rainy))[0], to_tensor(read_image(p.clean))[0]
        if r.shape != c.shape:
            raise DrsedgeError(f"{p.rainy}: size {tuple(r.shape[1:])} differs from {p.clean} {tuple(c.shape[1:])}")
        out.append(Sample(r, c, p.name))
    for f in unlabeled:
        out.append(Sample(to_tensor(read_image(f))[0], None, f.stem))
    return out


class CropSampler:
    """Draws ``[B, 3, P, P]`` crops with random flips and 90-degree rotations (BasicSR ``augment``).

    ``batch(step)`` returns ``(rainy, clean, has_gt)``: ``clean`` is zeros where
    ``has_gt`` (``[B]`` bool) is False.
    """

    def __init__(self, samples: list[Sample], patch: int, batch_size: int, seed: int = 0):
        if not samples:
            raise DrsedgeError("no training images: give at least one paired or unlabeled folder with images")
        smallest = min(min(s.rainy.shape[1:]) for s in samples)
        if patch > smallest:
            raise DrsedgeError(f"patch size {patch} is larger than the smallest training image side ({smallest} px); lower it")
        self.samples, self.patch, self.batch_size, self.seed = samples, patch, batch_size, seed

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return crop_batch(self.seed, step, self.patch, self.batch_size, len(self.samples),
                          lambda k: tuple(self.samples[k].rainy.shape[1:]), lambda k: (self.samples[k].rainy, self.samples[k].clean))


def crop_batch(seed: int, step: int, patch: int, batch_size: int, n: int, size_of, load):
    """The batch of ``step``: ``batch_size`` draws of (image, crop, hflip, vflip, transpose) from a generator seeded
    by ``(seed, step)``. ``size_of(k)`` gives image ``k``'s ``(H, W)``; ``load(k)`` its ``[3, H, W]`` rainy and clean
    tensors (clean None: unlabeled). Shared by the in-memory :class:`CropSampler` and the streaming
    :class:`drsedge.data.streaming.StepDataset`, so both draw identical batches."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    xs, ys, has = [], [], []
    p = patch
    for _ in range(batch_size):
        k = int(torch.randint(n, (1,), generator=g))
        h, w = size_of(k)
        i = int(torch.randint(h - p + 1, (1,), generator=g))
        j = int(torch.randint(w - p + 1, (1,), generator=g))
        hflip, vflip, rot = (torch.rand(3, generator=g) < 0.5).tolist()
        rainy, clean = load(k)
        pair = [t[:, i : i + p, j : j + p] for t in (rainy, clean if clean is not None else rainy)]
        if hflip:
            pair = [t.flip(2) for t in pair]
        if vflip:
            pair = [t.flip(1) for t in pair]
        if rot:
            pair = [t.transpose(1, 2) for t in pair]
        xs.append(pair[0])
        ys.append(pair[1] if clean is not None else torch.zeros_like(pair[1]))
        has.append(clean is not None)
    return torch.stack(xs).contiguous(), torch.stack(ys).contiguous(), torch.tensor(has)


def progressive_stage(step: int, steps: int, schedule: list) -> tuple[int, int] | None:
    """``(mini_batch, patch)`` of ``step`` under a progressive schedule ``[(fraction, mini_batch, patch), ...]``
    (Restormer ``train.py``: ``iters`` / ``mini_batch_sizes`` / ``gt_sizes``, here with ``iters`` as fractions of
    ``steps``); None when the schedule is empty."""
    if not schedule:
        return None
    end = 0.0
    for frac, b, p in schedule:
        end += frac * steps
        if step < round(end):
            return int(b), int(p)
    return int(schedule[-1][1]), int(schedule[-1][2])


def progressive_crop(batch: tuple, seed: int, step: int, mini_batch: int, patch: int) -> tuple:
    """Restormer's progressive learning on a drawn batch ``(rainy, clean, has_gt)`` of ``[B, 3, P, P]``: keep
    ``mini_batch`` random rows and one random ``patch x patch`` window shared by them (Restormer ``train.py``,
    ``progressive learning``). Random draws come from ``(seed, step)``, so resuming and any world size see the same
    batch."""
    x, y, has = batch
    g = torch.Generator().manual_seed(seed * 1_000_003 + step + 7_919)
    if mini_batch < x.shape[0]:
        idx = torch.randperm(x.shape[0], generator=g)[:mini_batch].sort().values
        x, y, has = x[idx], y[idx], has[idx]
    if patch < x.shape[-1]:
        i, j = (int(v) for v in torch.randint(x.shape[-1] - patch + 1, (2,), generator=g))
        x, y = x[..., i : i + patch, j : j + patch].contiguous(), y[..., i : i + patch, j : j + patch].contiguous()
    return x, y, has
