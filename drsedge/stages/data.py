"""The data a stage reads, built the same way for ``drsedge pipeline`` and the commands: paired folders, decoded
training samples, the calibration set (with the static-export size rule), the held-out guard, shipped weights.

Not a stage: the builders the stages' callers share, so the pipeline imports nothing but :mod:`drsedge.stages` (and
its run config, files and errors) and no rule lives next to one door only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from drsedge.data.heldout import guard_not_held_out, leave_out_copies

__all__ = ["calibration", "crop_sampler", "guard_not_held_out", "leave_out_copies", "pairs", "resolve_weights", "samples"]


def pairs(folder: str | os.PathLike, limit: int | None = None) -> list:
    """The ``input/`` + ``target/`` pairs of ``folder`` (:func:`drsedge.data.folders.find_pairs`)."""
    from drsedge.data.folders import find_pairs

    return find_pairs(folder, limit)


def samples(pair_dirs: Iterable[str | os.PathLike], unlabeled_dirs: Iterable[str | os.PathLike] = ()) -> list:
    """Decoded training images (:func:`drsedge.data.sampling.load_samples`): every pair of ``pair_dirs`` and every
    image of ``unlabeled_dirs`` (rainy only: teacher terms)."""
    from drsedge.data.folders import find_pairs, find_unlabeled
    from drsedge.data.sampling import load_samples

    return load_samples([p for d in pair_dirs for p in find_pairs(d)], [f for d in unlabeled_dirs for f in find_unlabeled(d)])


def crop_sampler(decoded: list) -> Callable:
    """``cfg -> CropSampler`` over ``decoded`` with ``cfg``'s patch, batch size and seed (a training stage's data)."""
    from drsedge.data.sampling import CropSampler

    return lambda cfg: CropSampler(decoded, cfg.patch, cfg.batch_size, cfg.seed)


def calibration(folders: list[str | os.PathLike], size: int | None, limit: int, onnx: str | os.PathLike | None = None):
    """Center crops of up to ``limit`` rainy images of ``folders`` (:func:`drsedge.calibration.calib.calibration_set`)
    for ``onnx``: a static export (UDR-S2Former, AST) takes crops of its own size only, whatever ``size`` says; any
    other model crops of ``size`` px (None: whole frames, cropped to multiples of 8). The one rule of ``drsedge
    quantize``, ``drsedge fp16-check`` and the pipeline.

    Raises:
        DrsedgeError: the errors of ``calibration_set`` (held-out folder, empty folder, corrupt image) and of reading
            ``onnx``.
    """
    from drsedge.calibration.calib import calibration_set
    from drsedge.export.onnx_export import static_square_side

    side = static_square_side(onnx) if onnx is not None and Path(onnx).is_file() else None
    return calibration_set(folders, size=side or size, limit=limit)


def resolve_weights(name: str) -> str:
    """A weights name (``shipped:teacher``) or path -> the file path (:func:`drsedge.weights.resolve`)."""
    from drsedge.weights import resolve

    return resolve(name)
