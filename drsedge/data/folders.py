"""Discovering paired (rainy, clean) and unlabeled image folders.

Supported paired layouts under a root folder:

* ``input/`` + ``target/`` with equal file stems (Restormer/DRSformer layout);
* ``rain/`` + ``norain/`` (also ``rainy/`` + ``gt/``) with equal stems;
* one flat folder of ``rain-N.*`` / ``norain-N.*`` files (PReNet layout);
* ``rainy_image/N_K.*`` + ``ground_truth/N.*``: DDN-Data as Fu et al. (CVPR 2017) and RCDNet ship it, 14 rain
  renderings ``K`` of each clean image ``N`` (many rainy to one clean);
* ``data/N_rain.*`` + ``gt/N_clean.*``: Qian et al.'s Raindrop set (CVPR 2018; "AGAN" in UDR-S2Former's
  ``dataloader_udr.py``);
* ``raindrop/rd-N.*``, ``rainstreak/rain-N.*``, ``rainstreak_raindrop/rd-rain-N.*`` + ``gt/norain-N.*``: RainDS
  (Quan et al., CVPR 2021; ``{train,test}/`` each), all three subsets, names prefixed by subset as UDR-S2Former
  trains; its ``test.py`` scores ``rainstreak_raindrop`` only (give that subfolder's parent a copy with only it).

Rain13K, Rain200H/L and DID-, DDN- and SPA-Data as DRSformer's README distributes them ("fully paired images") and
Restormer's ``Datasets/{train,test}/<set>/`` are ``input/`` + ``target/``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from drsedge.errors import DrsedgeError

from .heldout import is_left_out
from .images import IMAGE_SUFFIXES, _natural_key, image_files, is_image_file

PAIR_DIRS = (("input", "target"), ("rain", "norain"), ("rainy", "norain"), ("rainy", "gt"), ("input", "gt"))


@dataclass(frozen=True)
class Pair:
    """One rainy image and its clean ground truth; ``name`` is the shared stem."""

    name: str
    rainy: Path
    clean: Path


def list_images(folder: str | os.PathLike, leave_out: bool = True) -> list[Path]:
    """Image files directly in ``folder``, in natural order (2 before 10), without those the held-out guard left out
    (``leave_out``; the pair finders list everything and drop whole pairs).

    Raises:
        DrsedgeError: folder missing or with no image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DrsedgeError(f"{folder}: folder not found")
    files = image_files(folder)
    if not files:
        raise DrsedgeError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    kept = [f for f in files if not (leave_out and is_left_out(f))]  # copies of held-out images the guard left out (heldout.leave_out_copies)
    if not kept:
        raise DrsedgeError(f"{folder}: every image in this folder copies a held-out test image; nothing is left to use")
    return kept


def _pair_by_stem(root: Path, rainy_dir: Path, clean_dir: Path) -> list[Pair]:
    rainy = {p.stem: p for p in list_images(rainy_dir, leave_out=False)}
    clean = {p.stem: p for p in list_images(clean_dir, leave_out=False)}
    only_r, only_c = sorted(set(rainy) - set(clean)), sorted(set(clean) - set(rainy))
    if only_r or only_c:
        what = []
        if only_r:
            what.append(f"{len(only_r)} in {rainy_dir.name}/ only (first: {only_r[0]})")
        if only_c:
            what.append(f"{len(only_c)} in {clean_dir.name}/ only (first: {only_c[0]})")
        raise DrsedgeError(f"{root}: unpaired names: {'; '.join(what)}; every rainy image needs a clean one with the same name")
    return [Pair(s, rainy[s], clean[s]) for s in sorted(rainy, key=lambda s: _natural_key(Path(s)))]


def _pair_many_to_one(root: Path, rainy_dir: Path, clean_dir: Path) -> list[Pair]:
    """DDN-Data: ``rainy_image/N_K`` pairs with ``ground_truth/N``."""
    clean = {p.stem: p for p in list_images(clean_dir, leave_out=False)}
    pairs = []
    for f in list_images(rainy_dir, leave_out=False):
        base = f.stem.rsplit("_", 1)[0]
        if base not in clean:
            raise DrsedgeError(f"{f}: no ground truth {clean_dir.name}/{base}.* for it (DDN layout: rainy_image/N_K pairs with "
                               "ground_truth/N); add it or remove the rainy image")
        pairs.append(Pair(f.stem, f, clean[base]))
    return pairs


RAINDS_SUBSETS = (("raindrop", "rd-"), ("rainstreak", "rain-"), ("rainstreak_raindrop", "rd-rain-"))


def _pair_renamed(root: Path, sources, clean_dir: Path, suffix: bool) -> list[Pair]:
    """Rainy files whose clean partner's stem is the rainy stem with ``old`` replaced by ``new`` (a suffix when
    ``suffix``: Qian's ``N_rain`` -> ``N_clean``; else a prefix: RainDS ``rd-N`` -> ``norain-N``)."""
    clean = {p.stem: p for p in list_images(clean_dir, leave_out=False)}
    pairs = []
    for rainy_dir, old, new, tag in sources:
        for f in list_images(rainy_dir, leave_out=False):
            if suffix and f.stem.endswith(old):
                want = f.stem[: -len(old)] + new
            elif not suffix and f.stem.startswith(old):
                want = new + f.stem[len(old):]
            else:
                raise DrsedgeError(f"{f}: expected a name like {'N' + old if suffix else old + 'N'} in {rainy_dir.name}/ "
                                   f"({'Qian Raindrop' if suffix else 'RainDS'} layout); rename or remove it")
            if want not in clean:
                raise DrsedgeError(f"{f}: no ground truth {clean_dir.name}/{want}.* for it; add it or remove the rainy image")
            pairs.append(Pair(tag + f.stem, f, clean[want]))
    return pairs


def find_pairs(root: str | os.PathLike, limit: int | None = None) -> list[Pair]:
    """All (rainy, clean) pairs under ``root`` in natural order, optionally the first ``limit``; a pair whose rainy or
    clean file the held-out guard left out (:func:`drsedge.data.heldout.leave_out_copies`) is skipped.

    Raises:
        DrsedgeError: no supported layout, empty folders, names that do not pair, or no pair left.
    """
    pairs = [p for p in _find_pairs(root) if not (is_left_out(p.rainy) or is_left_out(p.clean))]
    if not pairs:
        raise DrsedgeError(f"{root}: every pair in this folder copies a held-out test image; nothing is left to use")
    return pairs[:limit] if limit else pairs


def _find_pairs(root: str | os.PathLike, limit: int | None = None) -> list[Pair]:
    root = Path(root)
    if not root.is_dir():
        raise DrsedgeError(f"{root}: folder not found")
    if (root / "data").is_dir() and (root / "gt").is_dir():
        pairs = _pair_renamed(root, [(root / "data", "_rain", "_clean", "")], root / "gt", suffix=True)
        return pairs[:limit] if limit else pairs
    if (root / "gt").is_dir() and any((root / d).is_dir() for d, _ in RAINDS_SUBSETS):
        subsets = [(root / d, prefix, "norain-", d + "-") for d, prefix in RAINDS_SUBSETS if (root / d).is_dir()]
        pairs = _pair_renamed(root, subsets, root / "gt", suffix=False)
        return pairs[:limit] if limit else pairs
    for r, c in PAIR_DIRS:
        if (root / r).is_dir() and (root / c).is_dir():
            pairs = _pair_by_stem(root, root / r, root / c)
            break
    else:
        if (root / "rainy_image").is_dir() and (root / "ground_truth").is_dir():
            pairs = _pair_many_to_one(root, root / "rainy_image", root / "ground_truth")
            return pairs[:limit] if limit else pairs
        files = [p for p in root.iterdir() if is_image_file(p)]
        rain = {p.stem[5:]: p for p in files if p.stem.startswith("rain-")}
        norain = {p.stem[7:]: p for p in files if p.stem.startswith("norain-")}
        if not rain and not norain:
            raise DrsedgeError(
                f"{root}: no paired layout found; expected input/+target/, rain/+norain/, rainy_image/+ground_truth/, data/+gt/ "
                "(Qian Raindrop), raindrop/+gt/ (RainDS) or rain-N/norain-N files"
            )
        missing = sorted(set(rain) ^ set(norain))
        if missing:
            raise DrsedgeError(f"{root}: unpaired names: rain-/norain- {missing[0]} has no partner")
        pairs = [Pair(s, rain[s], norain[s]) for s in sorted(rain, key=lambda s: _natural_key(Path(s)))]
    return pairs[:limit] if limit else pairs


def unlabeled_dir(folder: str | os.PathLike) -> Path:
    """The folder :func:`find_unlabeled` reads: ``folder``'s ``input/`` / ``rain/`` / ``rainy/`` subfolder, else ``folder``."""
    folder = Path(folder)
    return next((folder / sub for sub in ("input", "rain", "rainy") if (folder / sub).is_dir()), folder)


def find_unlabeled(folder: str | os.PathLike) -> list[Path]:
    """Rainy images without ground truth: the images in ``folder``, or in its ``input/`` / ``rain/`` subfolder."""
    return list_images(unlabeled_dir(folder))
