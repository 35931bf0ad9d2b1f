"""ctypes harness for the CUDA kernel in ``native/topk_sparse_softmax`` (GPU checks and benchmarks).

``build_kernel()`` compiles ``libdrsedge_tkss_kernel.so`` with ``nvcc`` (no TensorRT
needed); ``KernelLib(path)(scores, weights, ks)`` runs it on CUDA tensors. Without a
GPU the library still compiles (CI does this); running needs one.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import torch

from drsedge.errors import DrsedgeError

NATIVE_ENV = "DRSEDGE_NATIVE_DIR"


def native_dir() -> Path:
    """``native/topk_sparse_softmax`` of the source checkout: ``$DRSEDGE_NATIVE_DIR``, else the first parent of
    this package that holds ``native/topk_sparse_softmax/CMakeLists.txt``.

    Raises:
        DrsedgeError: not found (an installed wheel ships no CUDA sources; point DRSEDGE_NATIVE_DIR at a checkout).
    """
    env = os.environ.get(NATIVE_ENV)
    if env:
        d = Path(env)
        if not (d / "CMakeLists.txt").is_file():
            raise DrsedgeError(f"{d}: ${NATIVE_ENV} has no CMakeLists.txt; point it at native/topk_sparse_softmax")
        return d
    for parent in Path(__file__).resolve().parents:
        d = parent / "native" / "topk_sparse_softmax"
        if (d / "CMakeLists.txt").is_file():
            return d
    raise DrsedgeError(f"native/topk_sparse_softmax not found above {Path(__file__).parent}; set ${NATIVE_ENV} to it")
_DTYPES = {torch.float32: 0, torch.float16: 1}


def build_kernel(out_dir: str | os.PathLike, archs: tuple[str, ...] = ("87",), nvcc: str | None = None) -> Path:
    """Compile the kernel into ``out_dir/libdrsedge_tkss_kernel.so`` for the given SM architectures.

    Raises:
        DrsedgeError: nvcc not found or the compile failed (its first error line is quoted).
    """
    nvcc = nvcc or shutil.which("nvcc")
    if not nvcc:
        raise DrsedgeError("nvcc not found: install the CUDA toolkit or put nvcc on PATH")
    native = native_dir()
    out = Path(out_dir) / "libdrsedge_tkss_kernel.so"
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [nvcc, "-std=c++17", "-O3", "--use_fast_math", "-Xcompiler", "-fPIC", "-shared", f"-I{native / 'include'}"]
    for a in archs:
        cmd += ["-gencode", f"arch=compute_{a},code=sm_{a}"]
    cmd += [str(native / "src" / "topk_sparse_softmax.cu"), "-o", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        first = next((ln for ln in r.stderr.splitlines() if "error" in ln), r.stderr.strip()[:200])
        raise DrsedgeError(f"nvcc failed on {native / 'src' / 'topk_sparse_softmax.cu'}: {first}")
    return out


class KernelLib:
    """The compiled kernel: ``lib(scores [..., C] cuda fp32/fp16, weights [n] cuda, ks) -> probs``."""

    def __init__(self, path: str | os.PathLike):
        self.lib = ctypes.CDLL(str(path))
        f = self.lib.drsedge_topk_sparse_softmax
        f.restype = ctypes.c_int
        f.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32,
                      ctypes.POINTER(ctypes.c_int32), ctypes.c_int32, ctypes.c_int32, ctypes.c_int32, ctypes.c_void_p]
        self.lib.drsedge_topk_sparse_softmax_last_error.restype = ctypes.c_char_p

    def __call__(self, scores: torch.Tensor, weights: torch.Tensor, ks) -> torch.Tensor:
        if scores.dtype not in _DTYPES or weights.dtype not in _DTYPES:
            raise TypeError(f"kernel supports float32/float16, got {scores.dtype}/{weights.dtype}")
        if not scores.is_cuda:
            raise ValueError("scores must be a CUDA tensor")
        scores, weights = scores.contiguous(), weights.contiguous()
        out = torch.empty_like(scores)
        ks_arr = (ctypes.c_int32 * len(ks))(*ks)
        c = scores.shape[-1]
        stream = torch.cuda.current_stream().cuda_stream
        err = self.lib.drsedge_topk_sparse_softmax(
            scores.data_ptr(), weights.data_ptr(), out.data_ptr(), scores.numel() // c, c, ks_arr, len(ks),
            _DTYPES[scores.dtype], _DTYPES[weights.dtype], stream,
        )
        if err != 0:
            raise ValueError(f"kernel refused the input: {self.lib.drsedge_topk_sparse_softmax_last_error().decode()} (cudaError {err})")
        return out
