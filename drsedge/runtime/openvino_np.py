"""An ONNX image model run by OpenVINO on the CPU (``--provider openvino``), numpy in and out, no PyTorch.

OpenVINO reads the ONNX file directly (``openvino.Core.read_model``; a fused export's ``drsedge::TopKSparseSoftmax``
calls are inlined first, :func:`_read`) and turns Q/DQ pairs into its FakeQuantize, which its CPU plugin
runs with INT8 kernels (OpenVINO docs, "Low Precision Transformations") — the CPU runtime NNCF is written for.
``pip install openvino`` (or ``drsedge[openvino]``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from drsedge.errors import DrsedgeError, first_line

from .base import FrameModel
from .limits import ShapeLimits

MISSING = 'OpenVINO is not installed: pip install -e ".[openvino]" (or pip install openvino)'


def _why(e: BaseException) -> str:
    """The informative line of an OpenVINO error (its first lines name C++ source files)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.strip().startswith(("Exception from", "Check "))]
    return (lines[0] if lines else first_line(e))[:200]


def _read(core, path: Path):
    """``core.read_model``; a model with the fused op's model-local function (which OpenVINO's ONNX frontend
    rejects as an unknown ``drsedge`` op) is read from a copy with the functions inlined (needs the ``onnx``
    package, part of ``drsedge[full]``)."""
    try:
        return core.read_model(str(path))
    except Exception:
        try:
            import onnx
            from onnx import inliner
        except ImportError:
            raise
        from drsedge.onnx_io import load_onnx

        m = load_onnx(path)
        if not m.functions:
            raise
        import tempfile

        with tempfile.TemporaryDirectory(prefix="drsedge-ov-") as d:
            flat = Path(d) / "inlined.onnx"
            onnx.save(inliner.inline_local_functions(m), str(flat))
            return core.read_model(str(flat))


def _signed_activation_fq(model) -> bool:
    """Whether an activation (not a constant) is quantized to signed INT8: OpenVINO's ONNX frontend turns each Q/DQ
    pair into a ``FakeQuantize`` whose output range is the integer range, [-128, 127] for INT8."""
    for op in model.get_ops():
        if op.get_type_name() != "FakeQuantize" or op.input_value(0).get_node().get_type_name() == "Constant":
            continue
        lo = op.input_value(3).get_node()
        if lo.get_type_name() == "Constant" and float(np.min(lo.get_data())) < 0:
            return True
    return False


class OpenVinoModel(FrameModel):
    """``model(x [N, 3, H, W] float32) -> same shape`` compiled for OpenVINO's CPU plugin (latency hint, f32 inference
    precision).

    Refuses INT8 models with signed activation Q/DQ (NNCF's and ModelOpt's placement): OpenVINO 2026.4's CPU plugin
    computes them wrongly on DRSformer graphs (measured on the shipped student: 19-24 dB PSNR-Y against the FP32
    output, where ONNX Runtime runs the same files at 44-52 dB, and ONNX Runtime's own unsigned-activation Q/DQ runs
    correctly in OpenVINO, 44.7 dB).

    Raises:
        DrsedgeError: OpenVINO missing, a file it cannot read or compile, signed-INT8 activation Q/DQ, not one ``N x 3 x H x W`` input, a failed
            inference or a wrong output shape.
        NonFiniteError: NaN or Inf in the output.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        try:
            import openvino as ov
        except ImportError:
            raise DrsedgeError(MISSING) from None
        self.path = Path(path)
        if not self.path.is_file():
            raise DrsedgeError(f"{path}: ONNX file not found")
        core = ov.Core()
        try:
            model = _read(core, self.path)
        except Exception as e:  # OpenVINO raises RuntimeError subclasses with multi-line messages
            raise DrsedgeError(f"{path}: OpenVINO cannot read this model ({_why(e)})") from None
        if _signed_activation_fq(model):
            raise DrsedgeError(f"{path}: OpenVINO {ov.__version__.split('-')[0]} runs signed-INT8 activation Q/DQ (NNCF, ModelOpt) of this graph "
                               "wrongly (measured: 19-24 dB against the FP32 output where ONNX Runtime gives 44-52 dB); use "
                               "--provider cpu (ONNX Runtime), or quantize with --backend ort (unsigned activations) for OpenVINO")
        if len(model.inputs) != 1 or len(model.outputs) != 1 or model.inputs[0].get_partial_shape().rank.get_length() != 4:
            raise DrsedgeError(f"{path}: drsedge models take one N x 3 x H x W image and return one; export it with `drsedge export`")
        shape = model.inputs[0].get_partial_shape()
        h, w = shape[2], shape[3]
        static = h.is_static and w.is_static
        self.limits = ShapeLimits((h.get_length(), w.get_length()), (h.get_length(), w.get_length()),
                                  f"ONNX static input {h.get_length()}x{w.get_length()}") if static else ShapeLimits()
        # f32: OpenVINO's CPU plugin otherwise runs float ops in bf16 on CPUs that have it (measured here: 0.057 max
        # abs off ONNX Runtime FP32 on a rain200H frame); Q/DQ-quantized ops still run as INT8.
        cfg = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            cfg["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            self.compiled = core.compile_model(model, "CPU", cfg)
        except Exception as e:
            raise DrsedgeError(f"{path}: OpenVINO cannot compile this model for the CPU ({_why(e)})") from None
        self.request = self.compiled.create_infer_request()

    def _infer(self, x: np.ndarray) -> np.ndarray:
        try:
            return np.array(self.request.infer([x])[0], dtype=np.float32)  # a copy: the request reuses its output buffer
        except Exception as e:
            raise DrsedgeError(f"{self.path}: OpenVINO failed on a {tuple(x.shape)} input ({_why(e)})") from None

    def close(self) -> None:
        self.request = self.compiled = None
        super().close()
