"""Will an FP16 engine overflow? Per-node value ranges of an FP32 ONNX model on real images.

An FP16 TensorRT engine stores layer outputs in half precision (largest finite value
65504). This runs the FP32 ONNX in ONNX Runtime with every float tensor exposed as an
output and records each node's peak ``|value|`` over the images. ``ReduceL2`` and
``ReduceSumSquare`` form a sum of squares inside the layer, so their FP16 peak is the
*square* of the L2 output; in DRSformer they sum over the pixels (TKSA q/k norms), which
grows with the frame, so they are also projected linearly in pixel count to a target
frame size (``project_hw``).
Nodes whose (projected) peak exceeds the limit are the ones to keep in FP32 or to export
in the bounded form (``drsedge export --fp16-safe``, :mod:`drsedge.models.fp16_safe`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from drsedge.errors import DrsedgeError
from drsedge.onnx_graph import module_path, with_outputs

FP16_MAX = 65504.0
SQUARING_REDUCTIONS = ("ReduceL2", "ReduceSumSquare")
_SKIP = ("Shape", "Constant", "ConstantOfShape", "Range", "Size")


@dataclass
class NodeRange:
    """Peak ``|value|`` one node reaches in FP16 over the images; ``projected``: at ``project_hw``."""

    node: str
    module: str
    op_type: str
    peak: float
    projected: float

    @property
    def overflows(self) -> bool:
        return self.projected > FP16_MAX


def fp16_ranges(
    onnx_path: str | os.PathLike, inputs: list[np.ndarray], project_hw: tuple[int, int] | None = None, chunk: int = 256
) -> list[NodeRange]:
    """Peak FP16 value per node (graph order) of the FP32 model at ``onnx_path`` on ``inputs``.

    Args:
        inputs: ``[1, 3, H, W]`` float32 images in [0, 1] (H, W multiples of 8).
        project_hw: frame ``(H, W)`` to project sums over the pixels to (default: no projection).
        chunk: tensors exposed per ONNX Runtime session (memory vs. repeated runs).

    Raises:
        DrsedgeError: unparsable model or no input.
    """
    import onnxruntime as ort

    if not inputs:
        raise DrsedgeError("fp16 range check needs at least one image")
    from drsedge.onnx_io import load_onnx

    model = load_onnx(onnx_path)
    nodes = [n for n in model.graph.node if n.op_type not in _SKIP and n.output and n.output[0]]
    names = [n.output[0] for n in nodes]
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every named tensor
    peaks = dict.fromkeys(names, 0.0)
    pixels = max(x.shape[-2] * x.shape[-1] for x in inputs)
    for i in range(0, len(names), chunk):  # a chunk of tensors at a time bounds memory on large frames
        sess = ort.InferenceSession(with_outputs(model, names[i : i + chunk]), so, providers=["CPUExecutionProvider"])
        out_names = [o.name for o in sess.get_outputs()]
        for x in inputs:
            for n, v in zip(out_names, sess.run(None, {model.graph.input[0].name: x})):
                if n in peaks and np.issubdtype(v.dtype, np.floating):
                    finite = np.abs(v[np.isfinite(v)])  # the top-k mask's -inf is intended and exact in FP16
                    if finite.size:
                        peaks[n] = max(peaks[n], float(finite.max()))
    scale = project_hw[0] * project_hw[1] / pixels if project_hw else 1.0
    out = []
    for node, name in zip(nodes, names):
        peak = peaks[name] ** 2 if node.op_type in SQUARING_REDUCTIONS else peaks[name]
        grows = node.op_type in SQUARING_REDUCTIONS  # DRSformer's only ReduceL2s are the q/k norms over the pixels
        out.append(NodeRange(node.name, module_path(node.name), node.op_type, peak, peak * max(scale, 1.0) if grows else peak))
    return out


def fp16_overflows(ranges: list[NodeRange]) -> list[NodeRange]:
    """The nodes whose (projected) FP16 peak exceeds 65504, graph order."""
    return [r for r in ranges if r.overflows]
