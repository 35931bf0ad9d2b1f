"""cuda-python's CUDA runtime module, imported once (``drsedge[trt]``; no PyTorch needed)."""

from __future__ import annotations

from drsedge.errors import DrsedgeError

CUDA_PYTHON_MISSING = ("cuda-python is not installed: on a machine with an NVIDIA GPU, "
                       "pip install --extra-index-url https://pypi.nvidia.com -e '.[runtime,trt]'")


def cudart():
    """``cuda.bindings.runtime`` (cuda-python >= 12.8) or ``cuda.cudart`` (older).

    Raises:
        DrsedgeError: cuda-python is not installed.
    """
    try:
        from cuda.bindings import runtime as rt  # cuda-python >= 12.8
    except ImportError:
        try:
            from cuda import cudart as rt  # older cuda-python
        except ImportError:
            raise DrsedgeError(CUDA_PYTHON_MISSING) from None
    return rt


def cuda_python_version() -> str:
    """The installed cuda-python (or cuda-bindings) version, ``"?"`` when unknown."""
    from importlib import metadata

    for dist in ("cuda-python", "cuda-bindings"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "?"


def no_gpu_message(err, what: str) -> str:
    """One line for a failed ``cudaGetDevice``; names the fix when the driver is too old for cuda-python.

    cuda-bindings 13 needs driver >= 580.65.06 ("Driver: Linux (580.65.06 or later)", cuda-python install docs);
    JetPack 6 ships driver 540.x / CUDA 12.6, where it answers ``cudaErrorInsufficientDriver`` (review-2 N1).
    """
    text = str(err)
    if "InsufficientDriver" in text or "cudaErrorInsufficientDriver" in text or getattr(err, "value", None) == 35:
        return (f"{what}: the NVIDIA driver is older than cuda-python {cuda_python_version()} needs ({text}); cuda-python 13 needs "
                "driver >= 580: on JetPack 6 or a CUDA 12 driver, pip install 'cuda-python>=12,<13' (the [trt] extra's range)")
    return f"{what}: no CUDA GPU visible ({text})"
