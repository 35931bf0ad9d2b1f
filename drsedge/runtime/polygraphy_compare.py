"""Polygraphy runners for drsedge: ONNX Runtime vs ONNX Runtime (CPU) or vs TensorRT (GPU), on real images.

One place builds the two Polygraphy runners that every comparison uses:

* reference: ``OnnxrtRunner`` on an ONNX file (CPU execution provider);
* test: ``OnnxrtRunner`` on a second ONNX file (e.g. the INT8 Q/DQ model), or ``TrtRunner`` on an
  engine Polygraphy builds from an ONNX file at ``trt_precision`` (``fp32``/``fp16``/``int8``; INT8
  from a Q/DQ ONNX, explicit quantization), with the TopKSparseSoftmax plugin library loaded when given.

``outputs`` marks extra tensors (by ONNX tensor name; TensorRT's parser keeps those names) so the
same run yields per-layer values: this is ``polygraphy run --onnxrt --trt --onnx-outputs ...
--trt-outputs ...`` as a library call. :func:`compare_outputs` checks the final output with
Polygraphy's simple compare function (``atol``, ``rtol``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from drsedge.errors import DrsedgeError

TRT_PRECISIONS = ("fp32", "fp16", "int8")
INPUT_NAME = "image"


def _onnx_runner(path: str | os.PathLike, outputs: list[str] | None, name: str):
    from polygraphy.backend.onnx import BytesFromOnnx, ModifyOutputs, OnnxFromPath
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx

    model = OnnxFromPath(str(path))
    if outputs:
        model = ModifyOutputs(model, outputs=outputs)
    return OnnxrtRunner(SessionFromOnnx(BytesFromOnnx(model), providers=["cpu"]), name=name)


def _trt_runner(path: str | os.PathLike, precision: str, outputs: list[str] | None, plugin: str | None, hw: tuple[int, int],
                name: str):  # pragma: no cover - needs TensorRT and a GPU
    from polygraphy.backend.trt import (
        CreateConfig,
        EngineFromNetwork,
        LoadPlugins,
        ModifyNetworkOutputs,
        NetworkFromOnnxPath,
        Profile,
        TrtRunner,
    )

    network = NetworkFromOnnxPath(LoadPlugins(plugins=[plugin], obj=str(path)) if plugin else str(path))
    if outputs:
        network = ModifyNetworkOutputs(network, outputs=outputs)
    shape = (1, 3, *hw)
    config = CreateConfig(fp16=precision in ("fp16", "int8"), int8=precision == "int8",
                          profiles=[Profile().add(INPUT_NAME, min=shape, opt=shape, max=shape)])
    return TrtRunner(EngineFromNetwork(network, config=config), name=name)


def _quiet() -> None:
    from polygraphy.logger import G_LOGGER

    G_LOGGER.module_severity = G_LOGGER.CRITICAL  # drsedge prints its own one-line summary


def _run(ref_onnx, inputs, test_onnx, trt_precision, plugin, outputs):
    from polygraphy.comparator import Comparator

    _quiet()
    if trt_precision is None and test_onnx is None:
        raise DrsedgeError("compare: give a test ONNX (ONNX Runtime) or a TensorRT precision")
    if trt_precision is not None and trt_precision not in TRT_PRECISIONS:
        raise DrsedgeError(f"TensorRT precision must be one of {TRT_PRECISIONS}, got {trt_precision!r}")
    if not inputs:
        raise DrsedgeError("compare needs at least one image")
    from .trt_engine import onnx_op_types

    for path in (ref_onnx, test_onnx):
        if path is not None:
            onnx_op_types(path)  # one-line DrsedgeError for a missing or unparsable file
    ref = _onnx_runner(ref_onnx, outputs, "onnxrt-ref")
    if trt_precision:
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            raise DrsedgeError("TensorRT is not installed: pip install 'drsedge[trt]' on a machine with an NVIDIA GPU") from None
        test = _trt_runner(test_onnx or ref_onnx, trt_precision, outputs, plugin, inputs[0].shape[2:], f"trt-{trt_precision}")
    else:
        test = _onnx_runner(test_onnx, outputs, "onnxrt-test")
    return Comparator.run([ref, test], data_loader=[{INPUT_NAME: x} for x in inputs])


def run_pair(
    ref_onnx: str | os.PathLike, inputs: list[np.ndarray], test_onnx: str | os.PathLike | None = None,
    trt_precision: str | None = None, plugin: str | None = None, outputs: list[str] | None = None,
) -> tuple[list[dict], list[dict]]:
    """Run reference and test on ``inputs`` (``[1, 3, H, W]`` float32, one size) with Polygraphy's ``Comparator``.

    The test side is ``test_onnx`` in ONNX Runtime, or (``trt_precision`` given) a TensorRT engine
    built from ``test_onnx or ref_onnx``. Returns per-image ``{tensor name: array}`` for each side.

    Raises:
        DrsedgeError: no test side, unknown precision, no input, or TensorRT missing.
    """
    results = _run(ref_onnx, inputs, test_onnx, trt_precision, plugin, outputs)
    ref, test = ([{k: np.asarray(v) for k, v in it.items()} for it in iters] for _, iters in results)
    return ref, test


@dataclass
class OutputComparison:
    """Final-output agreement: Polygraphy simple-compare verdict, max abs / mean abs error over the images."""

    passed: bool
    max_abs: float
    mean_abs: float
    atol: float
    rtol: float


def compare_outputs(
    ref_onnx: str | os.PathLike, inputs: list[np.ndarray], test_onnx: str | os.PathLike | None = None,
    trt_precision: str | None = None, plugin: str | None = None, atol: float = 1e-3, rtol: float = 1e-3,
) -> OutputComparison:
    """Does the test side agree with ONNX Runtime on the model output within ``atol``/``rtol`` (elementwise)?"""
    from polygraphy.comparator import Comparator

    try:
        from polygraphy.comparator import SimpleCompareFunc as simple  # Polygraphy >= 0.50
    except ImportError:  # pragma: no cover - older Polygraphy
        from polygraphy.comparator import CompareFunc

        simple = CompareFunc.simple
    results = _run(ref_onnx, inputs, test_onnx, trt_precision, plugin, None)
    verdict = Comparator.compare_accuracy(results, compare_func=simple(atol=atol, rtol=rtol))
    (_, ref), (_, test) = results
    errs = [np.abs(np.asarray(r[k], np.float64) - np.asarray(t[k])) for r, t in zip(ref, test) for k in r.keys() if k in t]
    return OutputComparison(bool(verdict), float(max(e.max() for e in errs)), float(np.mean([e.mean() for e in errs])), atol, rtol)
