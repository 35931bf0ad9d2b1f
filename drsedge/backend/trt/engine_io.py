"""Deserializing a drsedge-built engine and naming its one input and one output (shared by the torch runner
:class:`~drsedge.runtime.runners.EngineRunner` and the torch-free :class:`drsedge.runtime.engine_np.EngineModel`)."""

from __future__ import annotations

import os
from pathlib import Path

from drsedge.errors import DrsedgeError


def load_engine(trt, engine: str | os.PathLike, sidecar: dict, logger):  # pragma: no cover - needs TensorRT
    """``(ICudaEngine, IExecutionContext, input name, output name)`` of ``engine``; a version-compatible engine
    (sidecar flag) gets ``engine_host_code_allowed`` (NVIDIA TensorRT docs, "Version Compatibility").

    Raises:
        DrsedgeError: TensorRT cannot deserialize the file.
    """
    runtime = trt.Runtime(logger)
    if sidecar.get("flags", {}).get("version_compatible"):
        runtime.engine_host_code_allowed = True
    eng = runtime.deserialize_cuda_engine(Path(engine).read_bytes())
    if eng is None:
        raise DrsedgeError(f"{engine}: TensorRT could not deserialize it")
    names = [eng.get_tensor_name(i) for i in range(eng.num_io_tensors)]
    inp = next(n for n in names if eng.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
    out = next(n for n in names if eng.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
    return eng, eng.create_execution_context(), inp, out
