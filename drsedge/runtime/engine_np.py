"""A drsedge-built TensorRT engine run with TensorRT + cuda-python and numpy: no PyTorch (``drsedge[runtime,trt]``).

The buffer handling follows NVIDIA's ``samples/python/common_runtime.py`` (TensorRT 10): ``cudaMalloc`` per I/O
tensor, ``cudaMemcpy`` host <-> device, ``IExecutionContext.set_input_shape`` / ``set_tensor_address`` /
``execute_async_v3`` on a CUDA stream, then ``cudaStreamSynchronize``. Engines carry their sidecar
(:mod:`drsedge.backend.trt.provenance`): it is checked against this TensorRT and GPU before deserializing, and its
optimization profile gives the largest frame the engine takes (:attr:`EngineModel.limits`; larger frames are
tiled by :func:`drsedge.runtime.limits.plan_tiles`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from drsedge.backend.trt._import import import_tensorrt, installed_version
from drsedge.backend.trt.cuda_rt import cudart as _cudart
from drsedge.backend.trt.engine_io import load_engine
from drsedge.backend.trt.plugins import load_plugin
from drsedge.backend.trt.provenance import check_sidecar, read_sidecar
from drsedge.backend.trt.version import build_path
from drsedge.errors import DrsedgeError

from .base import FrameModel, latency_summary
from .limits import ShapeLimits


def limits_from_sidecar(side: dict, engine: str) -> ShapeLimits:
    """The frame sizes an engine accepts, from its sidecar's optimization profile ``[N, 3, H, W]`` min/max.

    Raises:
        DrsedgeError: the sidecar has no usable profile.
    """
    prof = side.get("profile") or {}
    try:
        lo, hi = [int(v) for v in prof["min"]], [int(v) for v in prof["max"]]
        assert len(lo) == len(hi) == 4
    except (KeyError, TypeError, ValueError, AssertionError):
        raise DrsedgeError(f"{engine}.json: no [N, 3, H, W] optimization profile in the sidecar; rebuild with `drsedge build-engine`") from None
    return ShapeLimits(min_hw=(lo[2], lo[3]), max_hw=(hi[2], hi[3]), source=f"engine profile max {hi[2]}x{hi[3]}")


class EngineModel(FrameModel):  # pragma: no cover - needs an NVIDIA GPU, TensorRT and cuda-python
    """``model(x [1, 3, H, W] float32) -> [1, 3, H, W] float32`` on a TensorRT engine, numpy in and out.

    Raises:
        DrsedgeError: no TensorRT / cuda-python / GPU, a sidecar that does not match this TensorRT or GPU,
            a plugin library that differs from the build's, or a failed execution.
        NonFiniteError: NaN or Inf in an output.
    """

    def __init__(self, engine: str | os.PathLike, plugin: str | None = None):
        self.path = Path(engine)
        if not self.path.is_file():
            raise DrsedgeError(f"{engine}: engine file not found")
        side = read_sidecar(engine)  # before TensorRT: a foreign file fails in one line on any machine
        self.limits = limits_from_sidecar(side, str(engine))
        trt = import_tensorrt()
        cudart = _cudart()
        err, dev = cudart.cudaGetDevice()
        if int(err) != 0:
            from drsedge.backend.trt.cuda_rt import no_gpu_message

            raise DrsedgeError(no_gpu_message(err, f"{engine}: TensorRT engines run on NVIDIA GPUs"))
        _, props = cudart.cudaGetDeviceProperties(dev)
        version = installed_version(trt)
        check_sidecar(side, version, f"{props.major}.{props.minor}", plugin, str(engine))
        if plugin:
            load_plugin(trt, plugin, build_path(version), bool(side.get("flags", {}).get("version_compatible")))
        self._trt, self._cudart = trt, cudart
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.engine, self.context, self.input, self.output = load_engine(trt, self.path, side, self.logger)
        self.in_dtype = np.float16 if self.engine.get_tensor_dtype(self.input) == trt.float16 else np.float32
        self.out_dtype = np.float16 if self.engine.get_tensor_dtype(self.output) == trt.float16 else np.float32
        self.stream = self._check(cudart.cudaStreamCreate())
        self._bufs: dict[str, tuple[int, int]] = {}  # tensor name -> (device pointer, bytes)

    def _check(self, result):
        err, *rest = result
        if int(err) != 0:
            raise DrsedgeError(f"{self.path}: CUDA runtime error {err}")
        return rest[0] if len(rest) == 1 else rest

    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, size = self._bufs.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                self._check((self._cudart.cudaFree(ptr)[0], None))
            ptr = self._check(self._cudart.cudaMalloc(nbytes))
            self._bufs[name] = (ptr, nbytes)
        return ptr

    fix = "rebuild the engine"

    def _infer(self, x: np.ndarray) -> np.ndarray:
        cudart = self._cudart
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        xin = np.ascontiguousarray(x, dtype=self.in_dtype)
        if not self.context.set_input_shape(self.input, xin.shape):
            raise DrsedgeError(f"{self.path}: input {xin.shape} is outside the engine's optimization profile ({self.limits.source})")
        out_shape = tuple(self.context.get_tensor_shape(self.output))
        y = np.empty(out_shape, dtype=self.out_dtype)
        din, dout = self._buffer(self.input, xin.nbytes), self._buffer(self.output, y.nbytes)
        self._check((cudart.cudaMemcpyAsync(din, xin.ctypes.data, xin.nbytes, h2d, self.stream)[0], None))
        self.context.set_tensor_address(self.input, din)
        self.context.set_tensor_address(self.output, dout)
        if not self.context.execute_async_v3(self.stream):
            raise DrsedgeError(f"{self.path}: TensorRT execution failed")
        self._check((cudart.cudaMemcpyAsync(y.ctypes.data, dout, y.nbytes, d2h, self.stream)[0], None))
        self._check((cudart.cudaStreamSynchronize(self.stream)[0], None))
        return y

    def latency_ms(self, height: int = 256, width: int = 256, runs: int = 50, warmup: int = 10) -> dict:
        """Median / p95 GPU time in ms (CUDA events around ``execute_async_v3``) of one ``[1, 3, height, width]``
        inference with the input already on the GPU (no host copies), as ``trtexec`` reports GPU compute time."""
        cudart = self._cudart
        x = np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32).astype(self.in_dtype)
        if not self.context.set_input_shape(self.input, x.shape):
            raise DrsedgeError(f"{self.path}: latency size {height}x{width} is outside the optimization profile ({self.limits.source})")
        n_out = int(np.prod(self.context.get_tensor_shape(self.output))) * np.dtype(self.out_dtype).itemsize
        din, dout = self._buffer(self.input, x.nbytes), self._buffer(self.output, n_out)
        self._check((cudart.cudaMemcpy(din, x.ctypes.data, x.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice)[0], None))
        self.context.set_tensor_address(self.input, din)
        self.context.set_tensor_address(self.output, dout)
        start, end = self._check(cudart.cudaEventCreate()), self._check(cudart.cudaEventCreate())
        times = []
        try:
            for i in range(warmup + runs):
                self._check((cudart.cudaEventRecord(start, self.stream)[0], None))
                if not self.context.execute_async_v3(self.stream):
                    raise DrsedgeError(f"{self.path}: TensorRT execution failed")
                self._check((cudart.cudaEventRecord(end, self.stream)[0], None))
                self._check((cudart.cudaEventSynchronize(end)[0], None))
                if i >= warmup:
                    times.append(float(self._check(cudart.cudaEventElapsedTime(start, end))))
        finally:
            cudart.cudaEventDestroy(start)
            cudart.cudaEventDestroy(end)
        return latency_summary(times, height, width)

    def close(self) -> None:
        """Free the device buffers and destroy the CUDA stream (idempotent; also on garbage collection)."""
        for ptr, _ in getattr(self, "_bufs", {}).values():
            self._cudart.cudaFree(ptr)
        self._bufs = {}
        stream = getattr(self, "stream", None)
        if stream is not None:
            self._cudart.cudaStreamDestroy(stream)
            self.stream = None
        super().close()

    def __del__(self):
        self.close()
