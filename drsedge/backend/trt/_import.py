"""The one lazy TensorRT import (and its one message when TensorRT is absent)."""

from __future__ import annotations

from drsedge.errors import TensorRTMissingError

MISSING = ("TensorRT Python bindings are not installed (or cannot load): on a machine with an NVIDIA GPU, "
           "pip install --extra-index-url https://pypi.nvidia.com -e '.[trt]'")


def import_tensorrt():
    """``import tensorrt`` or raise :class:`TensorRTMissingError` with one line saying how to install it."""
    try:
        import tensorrt as trt
    except (ImportError, OSError):
        raise TensorRTMissingError(MISSING) from None
    return trt


def installed_version(trt) -> str:
    """``tensorrt.__version__``, or the installed distribution's version (8.6 pip front-ends may not re-export it)."""
    v = getattr(trt, "__version__", None)
    if v:
        return str(v)
    from importlib import metadata

    for dist in ("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt_bindings"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    raise TensorRTMissingError("cannot tell the TensorRT version (no tensorrt.__version__ and no tensorrt distribution)")
