"""INT8 post-training quantization of the FP32 ONNX model into a Q/DQ ONNX model.

Two backends, both calibrated on real rainy images
(:func:`drsedge.calibration.calibration_set`):

* ``"nncf"``: ``nncf.quantize`` on the ONNX model with ``model_type=TRANSFORMER``. Activations are
  quantized per tensor: NNCF's per-channel activation quantizers on depthwise convs make ONNX Runtime
  fail (``QLinearConv: input zero point must be a scalar``). ``TRANSFORMER`` keeps NNCF from quantizing
  the elementwise residual adds, LayerNorm internals and the q/k normalisation (its transformer patterns):
  measured on a dim-16 DRSformer teacher (step 400 of the shipped teacher's run), 4 whole frames
  (rain200H/test 1-2, real/1-2), PSNR of the INT8 output vs the FP32 output: 43.0-47.2 dB with NNCF's
  default model type (609 QuantizeLinear) vs 53.8-63.8 dB with ``TRANSFORMER`` (110 QuantizeLinear);
  the MIXED preset changed nothing (43.0-47.2 dB).
* ``"ort"``: ONNX Runtime's ``quantize_static`` (QDQ format, per-channel
  weights, MinMax calibration).
* ``"modelopt"``: NVIDIA ModelOpt's ONNX PTQ, TensorRT's own Q/DQ placement
  (:mod:`drsedge.compress.quantize_modelopt`; ``pip install -e ".[modelopt]"``).

Which one ONNX Runtime's CPU provider fuses: only the ``ort`` placement. ONNX Runtime's CPU QDQ fusion
needs a whole node unit, DequantizeLinear -> op -> QuantizeLinear, to form ``QLinearConv``/``QLinearAdd``/
``QLinearMatMul``; NNCF and ModelOpt put Q/DQ only on the inputs of weighted ops (the TensorRT / OpenVINO
convention, where the runtime fuses that), so ORT keeps float convs between DequantizeLinear nodes. Measured on
the demo student architecture (:func:`fused_kernel_counts`): NNCF 2 ``QLinearConv`` of 118 convs; ``ort`` 82
``QLinearConv`` + 109 ``QLinearAdd``. Fused or not, no INT8 model is faster than FP32 on this CPU
(``benchmarks/bench_int8.py``: ORT's ``QLinearConv`` at 24-128 channels is slower than its NCHWc float convs), so
pick the backend by fidelity and target: ``modelopt`` / ``nncf`` for TensorRT, see README "INT8".

Depthwise convolutions stay in float by default (``quantize_depthwise=False``): on
this CPU (AVX-512 VNNI) their Q/DQ overhead outweighs the INT8 gain.

In all, the top-k / -inf mask / softmax part of TKSA stays in floating point
(TopK, Softmax, Where, the q/k normalisation and the score/prob matmuls are
excluded): INT8 scores would create ties at the top-k threshold, and
TensorRT cannot fuse Q/DQ into a plugin.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import onnx

from drsedge import onnx_io
from drsedge.calibration.calib import CalibrationSet
from drsedge.choices import QUANT_BACKENDS
from drsedge.errors import DrsedgeError
from drsedge.fileio import atomic_write
from drsedge.logs import quiet_logger
from drsedge.onnx_graph import activation_matmuls, adds_of, depthwise_convs, nodes_of_modules

BACKENDS = QUANT_BACKENDS
# Op types kept in float: the attention score/probability path.
FLOAT_OP_TYPES = ["TopK", "Softmax", "Where", "TopKSparseSoftmax", "Less", "GreaterOrEqual"]


def family_float_nodes(model: onnx.ModelProto) -> list[str]:
    """Nodes of a static-family export (metadata ``drsedge.family``) that INT8 leaves in float: the modules its registry
    entry names (:attr:`drsedge.models.family.Family.int8_float_modules`; UDR-S2Former its rank and sampling path, AST
    its ASSA attention)."""
    from drsedge.models.family import family_of_onnx
    from drsedge.onnx_graph import module_path

    fam = family_of_onnx(model)
    if fam is None or not fam.int8_float_modules:
        return []
    return [n.name for n in model.graph.node if n.name and any(m in module_path(n.name) for m in fam.int8_float_modules)]


def quantize_onnx(
    src: str | os.PathLike, dst: str | os.PathLike, calib: CalibrationSet, backend: str = "nncf", quantize_depthwise: bool = False,
    keep_float: list[str] | None = None, high_precision: str = "fp32",
) -> Path:
    """Write an INT8 Q/DQ copy of ``src`` to ``dst`` (atomic).

    ``keep_float``: PyTorch module paths whose nodes stay in float (e.g. the modules
    ``drsedge localize`` names); NNCF ignored scope / ORT and ModelOpt ``nodes_to_exclude``.
    ``high_precision`` (ModelOpt only): the float type of what stays unquantized, ``fp32`` for CPU targets,
    ``fp16`` for TensorRT targets.

    Raises:
        DrsedgeError: unknown backend, ``high_precision`` other than fp32 for a backend other than modelopt, unparsable ``src``, empty calibration set, an FP32 model whose output on the
            first calibration image is NaN/Inf (calibration would be meaningless), or a result without any Q/DQ
            node (nothing was quantized; nothing is written).
    """
    if backend not in BACKENDS:
        raise DrsedgeError(f"unknown quantization backend {backend!r}; use one of {BACKENDS}")
    if high_precision != "fp32" and backend != "modelopt":
        raise DrsedgeError(f"high_precision {high_precision!r} is a modelopt option; the {backend} backend keeps the unquantized "
                           "part in FP32: drop it, or use backend modelopt")
    if not calib.inputs:
        raise DrsedgeError("calibration set is empty: give a folder of real rainy images")
    _check_finite_output(src, calib)
    out = _quantize_onnx(src, dst, calib, backend, quantize_depthwise, keep_float, high_precision)
    if sum(count_qdq(out).values()) == 0:
        Path(out).unlink(missing_ok=True)
        raise DrsedgeError(f"{src}: the {backend} backend quantized nothing (0 Q/DQ nodes); no INT8 model written "
                           "(check the calibration images and the keep-float list)")
    return out


def _check_finite_output(src, calib: CalibrationSet) -> None:
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])
        y = sess.run(None, {sess.get_inputs()[0].name: calib.inputs[0]})[0]
    except Exception as e:  # ORT raises its own exception types
        from drsedge.onnx_io import ort_load_error

        raise ort_load_error(src, e, "cannot run it on the calibration images") from None
    if not np.isfinite(y).all():
        raise DrsedgeError(f"{src}: its FP32 output on the first calibration image holds NaN or Inf, so there is nothing "
                           "to calibrate against; fix or re-export the model")


def _quantize_onnx(src, dst, calib, backend, quantize_depthwise, keep_float, high_precision) -> Path:
    from .fused_qdq import INLINED, fp32_fused_io, refuse, unfuse

    fused_model = onnx_io.load_onnx(src, check=True)
    model, calls = unfuse(fused_model)  # fused top-k calls inlined, quantized around, then put back (see fused_qdq)
    float_convs = [] if quantize_depthwise else depthwise_convs(model)
    skip_nodes = activation_matmuls(model) + float_convs + adds_of(model, float_convs)
    skip_nodes += nodes_of_modules(model, keep_float or [])
    skip_nodes += family_float_nodes(model)
    skip_nodes += [n.name for n in model.graph.node if INLINED in n.name]
    skip_types = [t for t in FLOAT_OP_TYPES if any(n.op_type == t for n in model.graph.node)]
    if calls:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="drsedge-unfused-") as d:
            unfused = Path(d) / "unfused.onnx"
            onnx.save(model, str(unfused))
            tmp_q = _quantize(unfused, Path(d) / "int8.onnx", model, calib, backend, skip_nodes, skip_types, high_precision)
            q = refuse(onnx_io.load_onnx(tmp_q), calls, fused_model)
            if high_precision == "fp16":
                q, _ = fp32_fused_io(q)  # the plugin is FP32-only; strongly typed TensorRT cannot cast for it (review-2 N3)
            return atomic_write(dst, lambda tmp: onnx.save(q, tmp))
    return _quantize(src, dst, model, calib, backend, skip_nodes, skip_types, high_precision)


def _quantize(src, dst, model, calib, backend, skip_nodes, skip_types, high_precision) -> Path:
    """One backend on ``model`` (loaded from ``src``, no fused calls), written atomically to ``dst``."""
    input_name = model.graph.input[0].name
    if backend == "modelopt":
        from .quantize_modelopt import modelopt_quantize

        return atomic_write(dst, lambda tmp: modelopt_quantize(model, tmp, calib.inputs, skip_nodes, skip_types, high_precision))
    if backend == "nncf":
        import nncf
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, QuantizationParameters

        with warnings.catch_warnings(), quiet_logger("nncf"):
            warnings.simplefilter("ignore")
            q = nncf.quantize(
                model,
                nncf.Dataset(calib.inputs, lambda x: {input_name: x}),
                subset_size=len(calib.inputs),
                fast_bias_correction=True,
                model_type=nncf.ModelType.TRANSFORMER,
                ignored_scope=nncf.IgnoredScope(names=skip_nodes, types=skip_types, validate=False),
                advanced_parameters=AdvancedQuantizationParameters(
                    activations_quantization_params=QuantizationParameters(per_channel=False)
                ),
            )
        return atomic_write(dst, lambda tmp: onnx.save(q, tmp))

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(calib.inputs)

        def get_next(self):
            x = next(self._it, None)
            return None if x is None else {input_name: x}

    def write(tmp: str) -> None:
        # ORT computes scale/zero point for every calibrated tensor, also the top-k threshold form's Where output, whose
        # range starts at -inf (masked scores): inf/inf in compute_scale_zp ("invalid value encountered in divide", then "in cast"). That
        # tensor stays float (Where/Softmax/TopK are excluded, no Q/DQ is placed on it; tests/compress/test_quantize.py
        # checks every Q/DQ scale is finite and > 0), so the NaN is never used and the warning is noise.
        pre = tmp + ".pre.onnx"
        try:
            quant_pre_process(str(src), pre, skip_symbolic_shape=True)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="invalid value encountered in (divide|cast)", category=RuntimeWarning,
                                        module="onnxruntime.quantization.quant_utils")
                quantize_static(
                    pre, tmp, Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=None,
                    nodes_to_exclude=skip_nodes + [n.name for n in model.graph.node if n.op_type in skip_types],
                )
        finally:
            if os.path.exists(pre):
                os.unlink(pre)

    return atomic_write(dst, write)


def count_qdq(path: str | os.PathLike) -> dict[str, int]:
    """Number of QuantizeLinear / DequantizeLinear nodes in an ONNX file (0 means nothing was quantized)."""
    from drsedge.onnx_io import load_onnx

    model = load_onnx(path)
    ops = [n.op_type for n in model.graph.node]
    return {"QuantizeLinear": ops.count("QuantizeLinear"), "DequantizeLinear": ops.count("DequantizeLinear")}




def fused_kernel_counts(path: str | os.PathLike) -> dict[str, int]:
    """Op counts of ONNX Runtime's optimized CPU graph of ``path`` (what actually runs): integer kernels
    (``QLinearConv``, ``QLinearMatMul``, ``QLinearAdd``, ``MatMulInteger``, ``ConvInteger``) vs float ``Conv``/``MatMul``
    and leftover Q/DQ nodes."""
    import tempfile

    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="drsedge-ortopt-") as d:
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        so.optimized_model_filepath = os.path.join(d, "opt.onnx")
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        ops = [n.op_type for n in onnx_io.load_onnx(so.optimized_model_filepath).graph.node]
    keys = ("QLinearConv", "QLinearMatMul", "QLinearAdd", "MatMulInteger", "ConvInteger", "Conv", "MatMul", "QuantizeLinear",
            "DequantizeLinear")
    return {k: ops.count(k) for k in keys}
