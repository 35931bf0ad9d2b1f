"""Image I/O, paired/unlabeled folder discovery, synthetic rain and training crops.

The training-crop names (``CropSampler``, ``Sample``, ``load_samples``) import PyTorch on first use, so the
image and folder helpers serve the torch-free runtime (``drsedge[runtime]``).
"""

from .folders import Pair, find_pairs, find_unlabeled, list_images
from .images import read_image, read_uint8, to_tensor, to_uint8, write_image

_LAZY = {"CropSampler", "Sample", "load_samples"}


def __getattr__(name: str):
    if name in _LAZY:
        from . import sampling

        return getattr(sampling, name)
    raise AttributeError(f"module 'drsedge.data' has no attribute {name!r}")


__all__ = [
    "CropSampler",
    "Pair",
    "Sample",
    "find_pairs",
    "find_unlabeled",
    "list_images",
    "load_samples",
    "read_image",
    "read_uint8",
    "to_tensor",
    "to_uint8",
    "write_image",
]
