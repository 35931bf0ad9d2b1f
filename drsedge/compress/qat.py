"""Quantization-aware fine-tuning: when post-training INT8 is not enough, train through the quantizers.

1. ``nncf.quantize`` on the PyTorch student (``model_type=TRANSFORMER``, calibrated on real rainy crops) inserts
   NNCF's fake quantizers around its convolutions; the attention score path (top-k, softmax, the score and
   probability matmuls) and depthwise convs stay float, as in the PTQ backends (:mod:`drsedge.compress.quantize`).
2. :func:`drsedge.training.loop.train` fine-tunes it, distilled from the FP32 student (or a teacher): gradients pass
   the quantizers straight through, and NNCF learns their ranges.
3. :func:`export_qat_onnx` exports it with the TorchScript exporter, which writes NNCF's quantizers as OpenVINO's
   ``org.openvinotoolkit::FakeQuantize``; :func:`fake_quantize_to_qdq` rewrites each into the standard
   ``QuantizeLinear`` -> ``DequantizeLinear`` pair (what NNCF's own ONNX export did before its ``strip`` needed
   torchao), so ONNX Runtime and TensorRT run it. ``FakeQuantize`` semantics: OpenVINO opset1 spec,
   ``round((clip(x, il, ih) - il) / (ih - il) * (levels - 1)) / (levels - 1) * (oh - ol) + ol``; with
   ``scale = (ih - il) / (levels - 1)`` and ``zero_point = -il / scale`` (integral for NNCF's quantizers) that is
   ``DequantizeLinear(QuantizeLinear(x))``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from drsedge.deploy_defaults import OPSET
from drsedge.errors import DrsedgeError
from drsedge.fileio import atomic_write
from drsedge.logs import quiet_logger

# NNCF (torch) ignored-scope patterns: the float policy of the PTQ backends, by traced node name.
# LayerNorm internals too: NNCF's transformer patterns do not recognise DRSformer's hand-written LayerNorm, and a
# quantizer on ``var + eps`` rounds small variances to 0, whose sqrt has an infinite gradient (NaN after one step).
FLOAT_PATTERNS = [".*/norm\\d*/body/.*", ".*dwconv.*", ".*attn/matmul.*", ".*attn/topk.*", ".*attn/softmax.*", ".*attn/scatter.*", ".*attn/where.*",
                  ".*attn/normalize.*", ".*TopKSparseSoftmax.*"]


def insert_quantizers(model, calib_inputs: list[np.ndarray]):
    """``model`` (a drsedge PyTorch model) with NNCF fake quantizers, calibrated on ``[1, 3, S, S]`` crops in [0, 1].

    Raises:
        DrsedgeError: no calibration crops.
    """
    import warnings

    import nncf
    import torch

    if not calib_inputs:
        raise DrsedgeError("QAT needs calibration images: give a folder of real rainy images (not the test set)")
    data = [torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) for x in calib_inputs]
    with warnings.catch_warnings(), quiet_logger("nncf"):
        warnings.simplefilter("ignore")
        return nncf.quantize(model.eval(), nncf.Dataset(data), subset_size=len(data), model_type=nncf.ModelType.TRANSFORMER,
                             preset=nncf.QuantizationPreset.PERFORMANCE,
                             ignored_scope=nncf.IgnoredScope(patterns=FLOAT_PATTERNS, validate=False))


def _const_values(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    vals = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            vals[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return vals


def fake_quantize_to_qdq(model: onnx.ModelProto) -> onnx.ModelProto:
    """Rewrite every ``org.openvinotoolkit::FakeQuantize`` (256 or 255 levels, ranges from constants) into
    ``QuantizeLinear`` -> ``DequantizeLinear``: signed INT8 where the range goes below 0 (zero point 0 for symmetric
    ranges), UINT8 otherwise; per-channel ranges become per-axis scales.

    Raises:
        DrsedgeError: a FakeQuantize whose ranges are not constants, or whose output range differs from its input range.
    """
    vals = _const_values(model)
    nodes, inits = [], []
    for n in model.graph.node:
        if n.op_type != "FakeQuantize":
            nodes.append(n)
            continue
        try:
            il, ih, ol, oh = (vals[i].astype(np.float64) for i in n.input[1:5])
        except KeyError:
            raise DrsedgeError(f"{n.name}: FakeQuantize ranges are not constants; cannot write Q/DQ") from None
        if not (np.allclose(il, ol) and np.allclose(ih, oh)):
            raise DrsedgeError(f"{n.name}: FakeQuantize output range differs from its input range; cannot write Q/DQ")
        levels = next((a.i for a in n.attribute if a.name == "levels"), 256)
        scale = (ih - il) / (levels - 1)
        scale = np.where(scale > 0, scale, np.finfo(np.float32).tiny)
        if (il < 0).any():
            dtype, zp = np.int8, np.round(-il / scale) - (128 if levels == 256 else 127)
        else:
            dtype, zp = np.uint8, np.round(-il / scale)
        axis = int(np.argmax(scale.shape)) if scale.size > 1 else None
        s = scale.reshape(-1).astype(np.float32) if axis is not None else np.float32(scale.reshape(-1)[0])
        z = zp.reshape(-1).astype(dtype) if axis is not None else dtype(zp.reshape(-1)[0])
        base = n.name or n.output[0]
        inits += [numpy_helper.from_array(np.asarray(s), f"{base}/scale"), numpy_helper.from_array(np.asarray(z), f"{base}/zero_point")]
        kw = {"axis": axis} if axis is not None else {}
        nodes.append(helper.make_node("QuantizeLinear", [n.input[0], f"{base}/scale", f"{base}/zero_point"], [f"{base}/q"],
                                      name=f"{base}/QuantizeLinear", **kw))
        nodes.append(helper.make_node("DequantizeLinear", [f"{base}/q", f"{base}/scale", f"{base}/zero_point"], [n.output[0]],
                                      name=f"{base}/DequantizeLinear", **kw))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    model.graph.initializer.extend(inits)
    ops = [o for o in model.opset_import if o.domain != "org.openvinotoolkit"]
    del model.opset_import[:]
    model.opset_import.extend(ops)
    return model


def export_qat_onnx(qmodel, path: str | os.PathLike, opset: int = OPSET) -> Path:
    """Export an NNCF-quantized PyTorch model to a Q/DQ ONNX at ``path`` (atomic), H and W dynamic.

    Raises:
        DrsedgeError: the export or the FakeQuantize rewrite fails.
    """
    import tempfile
    import warnings

    import torch

    from drsedge.export.onnx_export import INPUT_NAME, OUTPUT_NAME

    x = torch.rand(1, 3, 64, 64)
    with tempfile.TemporaryDirectory(prefix="drsedge-qat-") as d:
        raw = os.path.join(d, "fq.onnx")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(qmodel.eval(), (x,), raw, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset,
                              dynamic_axes={INPUT_NAME: {0: "batch", 2: "height", 3: "width"}, OUTPUT_NAME: {0: "batch", 2: "height", 3: "width"}},
                              dynamo=False)
        from drsedge.onnx_io import load_onnx

        model = fake_quantize_to_qdq(load_onnx(raw))
        onnx.checker.check_model(model)
        return atomic_write(path, lambda tmp: onnx.save(model, tmp))
