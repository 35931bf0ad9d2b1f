"""``EngineRunner``: a drsedge-built TensorRT engine with the runner API of :class:`drsedge.runtime.OrtRunner`.

(Polygraphy's own ``TrtRunner`` is what ``drsedge compare/localize --trt`` use; this one serves the drift
report and the camera runtime: checked sidecar, CUDA-event latency.)
"""

from __future__ import annotations

import os
from pathlib import Path

from drsedge.errors import DrsedgeError

from ._import import import_tensorrt, installed_version
from .engine_io import load_engine
from .plugins import load_plugin
from .provenance import check_sidecar, read_sidecar
from .version import build_path


class EngineRunner:  # pragma: no cover - needs a GPU and TensorRT
    """``runner(x [B, 3, H, W] float32)`` returns a CPU float32 tensor; ``latency_ms`` times with CUDA events.

    Raises:
        DrsedgeError: no GPU / TensorRT, a sidecar that does not match this TensorRT or GPU, or a plugin
            library that is missing or differs from the one the engine was built with.
    """

    def __init__(self, engine: str | os.PathLike, name: str = "trt", plugin: str | None = None):
        import torch

        if not torch.cuda.is_available():
            raise DrsedgeError(f"{engine}: running a TensorRT engine needs a CUDA GPU")
        trt = import_tensorrt()
        side = read_sidecar(engine)
        props = torch.cuda.get_device_properties(0)
        version = installed_version(trt)
        check_sidecar(side, version, f"{props.major}.{props.minor}", plugin, str(engine))
        self.logger = trt.Logger(trt.Logger.WARNING)
        if plugin:
            load_plugin(trt, plugin, build_path(version), bool(side.get("flags", {}).get("version_compatible")))
        self.engine, self.context, self.input, self.output = load_engine(trt, engine, side, self.logger)
        self.name, self.path, self.sidecar = name, Path(engine), side
        self._torch, self._trt = torch, trt

    def _dtype(self, tensor_name):
        t = self.engine.get_tensor_dtype(tensor_name)
        return self._torch.float16 if t == self._trt.float16 else self._torch.float32

    def run_cuda(self, x):
        torch = self._torch
        x = x.to(device="cuda", dtype=self._dtype(self.input)).contiguous()
        self.context.set_input_shape(self.input, tuple(x.shape))
        out = torch.empty(tuple(self.context.get_tensor_shape(self.output)), dtype=self._dtype(self.output), device="cuda")
        self.context.set_tensor_address(self.input, x.data_ptr())
        self.context.set_tensor_address(self.output, out.data_ptr())
        if not self.context.execute_async_v3(torch.cuda.current_stream().cuda_stream):
            raise DrsedgeError(f"{self.path}: TensorRT execution failed")
        return out

    def __call__(self, x):
        from drsedge.runtime.runners import checked_output

        return checked_output(self.run_cuda(x).float().cpu(), x, str(self.path))

    def latency_ms(self, height: int = 256, width: int = 256, runs: int = 50, warmup: int = 10) -> dict:
        """Median / p95 GPU time (CUDA events) of one ``[1, 3, height, width]`` inference, input already on the GPU."""
        torch = self._torch
        x = torch.rand(1, 3, height, width, device="cuda")
        for _ in range(warmup):
            self.run_cuda(x)
        times = []
        for _ in range(runs):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            self.run_cuda(x)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        times.sort()
        return {"height": height, "width": width, "runs": runs, "median_ms": times[len(times) // 2],
                "p95_ms": times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]}
