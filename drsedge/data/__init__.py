"""Image I/O, paired/unlabeled folder discovery and training crops."""

from .folders import Pair, find_pairs, find_unlabeled, list_images
from .images import read_image, read_uint8, to_tensor, to_uint8, write_image
from .sampling import CropSampler, Sample, load_samples

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
