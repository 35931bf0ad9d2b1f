"""Training crops decoded from disk in ``DataLoader`` workers, for sets too large to hold in memory (Rain13K).

:class:`StepDataset` item ``step`` is the whole global batch of that step, drawn exactly as
:class:`drsedge.data.sampling.CropSampler` draws it (same ``torch.Generator`` seed per step, same picks,
crops, flips and transposes), but each image is decoded from its file when the batch is built. A batch is
therefore a pure function of ``(seed, step)`` whatever the number of workers, and a ``CropSampler`` over the
same files gives the same tensors (tested). Before step 0, :func:`scan_headers` opens every file's header,
so a broken image in a 13k-pair folder stops the run in one line naming it, not hours later.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from drsedge.errors import DrsedgeError

from .folders import Pair
from .images import MAX_PIXELS, MIN_SIDE, read_image, to_tensor
from .sampling import crop_batch


@dataclass(frozen=True)
class Item:
    """One training image on disk: ``clean`` None for unlabeled rainy photos; ``size`` ``(H, W)`` from the header."""

    rainy: Path
    clean: Path | None
    name: str
    size: tuple[int, int]


def scan_headers(pairs: list[Pair] = (), unlabeled: list[Path] = ()) -> list[Item]:
    """Header check of every training file (size, rainy/clean sizes equal), no pixel decoded.

    Raises:
        DrsedgeError: an unreadable file, a side < 8 px, more than 64 MP, or a pair whose sizes differ.
    """
    def size(p: Path) -> tuple[int, int]:
        try:
            with Image.open(p) as im:
                w, h = im.size
        except Exception as e:  # Pillow raises several types for broken files
            raise DrsedgeError(f"{p}: cannot read the image header ({type(e).__name__}); replace or remove the file") from None
        if min(w, h) < MIN_SIDE or w * h > MAX_PIXELS:
            raise DrsedgeError(f"{p}: image is {w}x{h}; training images need sides >= {MIN_SIDE} px and at most 64 MP")
        return h, w

    items = []
    for p in pairs:
        r, c = size(p.rainy), size(p.clean)
        if r != c:
            raise DrsedgeError(f"{p.rainy}: size {r} differs from {p.clean} {c}")
        items.append(Item(p.rainy, p.clean, p.name, r))
    items += [Item(f, None, f.stem, size(f)) for f in unlabeled]
    if not items:
        raise DrsedgeError("no training images: give at least one paired or unlabeled folder with images")
    return items


class StepDataset(torch.utils.data.Dataset):
    """``dataset[step]`` -> ``(rainy [B, 3, P, P], clean [B, 3, P, P], has_gt [B])`` (clean zeros where ``has_gt`` is False)."""

    def __init__(self, items: list[Item], patch: int, batch_size: int, seed: int = 0, steps: int = 10**9):
        smallest = min(min(i.size) for i in items)
        if patch > smallest:
            raise DrsedgeError(f"patch size {patch} is larger than the smallest training image side ({smallest} px); lower it")
        self.items, self.patch, self.batch_size, self.seed, self.steps = items, patch, batch_size, seed, steps
        self.samples = items  # the run key of drsedge.training hashes names and sizes (see fingerprint)

    def __len__(self) -> int:
        return self.steps

    def fingerprint(self) -> list:
        """Names and sizes of the files (what a resume file is keyed to, instead of pixel sums)."""
        return [(i.name, list(i.size), str(i.rainy), None if i.clean is None else str(i.clean)) for i in self.items]

    def __getitem__(self, step: int):
        def load(k):
            it = self.items[k]
            rainy = to_tensor(read_image(it.rainy))[0]
            return rainy, (to_tensor(read_image(it.clean))[0] if it.clean is not None else None)

        return crop_batch(self.seed, step, self.patch, self.batch_size, len(self.items), lambda k: self.items[k].size, load)

    def batch(self, step: int):
        """The CropSampler interface (decoded in this process)."""
        return self[step]


def batches(dataset: StepDataset, start: int, stop: int, workers: int = 0):
    """Batches ``start .. stop - 1`` in order, decoded in ``workers`` DataLoader processes (0: in this process)."""
    if workers <= 0:
        for s in range(start, stop):
            yield dataset[s]
        return
    loader = torch.utils.data.DataLoader(dataset, sampler=range(start, stop), batch_size=None, num_workers=workers,
                                         prefetch_factor=2, persistent_workers=False)
    yield from loader
