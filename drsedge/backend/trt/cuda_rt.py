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
