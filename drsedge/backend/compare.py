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

from drsedge.errors import DrsedgeError, NonFiniteError

TRT_PRECISIONS = ("fp32", "fp16", "int8")


def _onnx_runner(path: str | os.PathLike, outputs: list[str] | None, name: str):
    from polygraphy.backend.onnx import BytesFromOnnx, ModifyOutputs, OnnxFromPath
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx

    model = OnnxFromPath(str(path))
    if outputs:
        model = ModifyOutputs(model, outputs=outputs)
    return OnnxrtRunner(SessionFromOnnx(BytesFromOnnx(model), providers=["cpu"]), name=name)


def _trt_runner(path: str | os.PathLike, precision: str, outputs: list[str] | None, plugin: str | None, hw: tuple[int, int],
                name: str):  # pragma: no cover - needs TensorRT and a GPU
    """Polygraphy ``TrtRunner`` on an engine built on the installed TensorRT's path (drsedge.backend.trt)."""
    from polygraphy.backend.trt import EngineFromNetwork, ModifyNetworkOutputs, TrtRunner

    from drsedge.backend.trt import BuildOptions, Profile, build_path
    from drsedge.backend.trt._import import import_tensorrt, installed_version
    from drsedge.backend.trt.loader import create_config, parse_network, plugin_layer_names
    from drsedge.backend.trt.onnx_prep import strip_fused_functions
    from drsedge.onnx_io import load_onnx

    trt = import_tensorrt()
    bp = build_path(installed_version(trt))
    shape = (1, 3, *hw)
    o = BuildOptions(onnx=str(path), engine=os.devnull + ".engine", precision=precision, plugin=plugin, profile=Profile(shape, shape, shape))
    info = o.validate(bp)
    parse_from = str(path)
    if bp.strip_local_functions and info["fused_nodes"]:
        import tempfile

        import onnx

        parse_from = os.path.join(tempfile.mkdtemp(prefix="drsedge-trt-"), "plugin_only.onnx")
        onnx.save(strip_fused_functions(load_onnx(path)), parse_from)
    builder, network, parser = parse_network(parse_from, bp, plugin)
    from drsedge.backend.trt import verify_plugin_layers

    verify_plugin_layers(info["fused_nodes"], plugin_layer_names(network, trt), str(path))
    config = create_config(o, bp, trt, network)
    net = (builder, network, parser)
    if outputs:
        net = ModifyNetworkOutputs(net, outputs=outputs)
    return TrtRunner(EngineFromNetwork(net, config=config), name=name)


def _run(ref_onnx, inputs, test_onnx, trt_precision, plugin, outputs):
    from polygraphy.comparator import Comparator
    from polygraphy.logger import G_LOGGER

    if trt_precision is None and test_onnx is None:
        raise DrsedgeError("compare: give a test ONNX (ONNX Runtime) or a TensorRT precision")
    if trt_precision is not None and trt_precision not in TRT_PRECISIONS:
        raise DrsedgeError(f"TensorRT precision must be one of {TRT_PRECISIONS}, got {trt_precision!r}")
    if not inputs:
        raise DrsedgeError("compare needs at least one image")
    from drsedge.onnx_io import image_input, load_onnx

    for path in (ref_onnx, test_onnx):
        if path is not None:  # one-line DrsedgeError for a missing or unparsable file, or not one N x 3 x H x W image input
            image_input(load_onnx(path, external_data=False), str(path))
    ref = _onnx_runner(ref_onnx, outputs, "onnxrt-ref")
    if trt_precision:
        from drsedge.backend.trt._import import import_tensorrt

        import_tensorrt()
        test = _trt_runner(test_onnx or ref_onnx, trt_precision, outputs, plugin, inputs[0].shape[2:], f"trt-{trt_precision}")
    else:
        test = _onnx_runner(test_onnx, outputs, "onnxrt-test")
    name, _ = image_input(load_onnx(ref_onnx, external_data=False), str(ref_onnx))
    with G_LOGGER.verbosity(G_LOGGER.CRITICAL):  # drsedge prints its own one-line summary; the caller's level comes back
        return Comparator.run([ref, test], data_loader=[{name: x} for x in inputs])


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
    test_name = str(test_onnx or ref_onnx)
    errs = []
    for i, (r, t) in enumerate(zip(ref, test)):  # drsedge models have one output: paired by position, whatever its name
        a, b = np.asarray(next(iter(r.values())), np.float64), np.asarray(next(iter(t.values())), np.float64)
        if a.shape != b.shape:
            raise DrsedgeError(f"{test_name}: output shape {b.shape} differs from the reference's {a.shape} ({ref_onnx}); "
                               "compare two exports of one model (N x 3 x H x W in and out)")
        for path, y in ((ref_onnx, a), (test_name, b)):
            if not np.isfinite(y).all():
                raise NonFiniteError(f"{path}: output holds NaN or Inf on image {i}; this model is broken (re-export or "
                                     "re-quantize it), there is nothing to compare")
        errs.append(np.abs(a - b))
    return OutputComparison(bool(verdict), float(max(e.max() for e in errs)), float(np.mean([e.mean() for e in errs])), atol, rtol)
