"""Where does a stage drift? Per-layer comparison of two ONNX models (ONNX Runtime) or ONNX vs TensorRT (Polygraphy).

Both models (e.g. the FP32 export and its INT8 Q/DQ copy) keep the tensor names of
the original graph: NNCF and ONNX Runtime's quantizer insert Q/DQ nodes but leave the
outputs of Conv/MatMul/... named as before. Every such tensor present in both graphs
is exposed as an extra output, both models run on the same real images, and each
layer gets ``rel_err = ||a - b|| / ||a||`` (a: reference). Layers are reported in graph
order; the first ones above the threshold are where the drift starts. Node names from
drsedge's exporters carry the PyTorch module path (``/encoder_level2/encoder_level2.0/
attn/qkv/Conv`` -> ``encoder_level2.0.attn.qkv``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from drsedge.errors import DrsedgeError
from drsedge.onnx_graph import module_path

COMPARED_OPS = ("Conv", "MatMul", "Add", "Mul", "Softmax", "TopKSparseSoftmax", "Div", "Relu", "DepthToSpace", "SpaceToDepth")


@dataclass
class LayerDrift:
    """One compared tensor: ONNX node and output names, PyTorch module path, mean relative error over images."""

    node: str
    tensor: str
    module: str
    op_type: str
    rel_err: float


def localize(
    ref_path: str | os.PathLike, test_path: str | os.PathLike | None, inputs: list[np.ndarray], threshold: float = 0.05,
    trt_precision: str | None = None, plugin: str | None = None,
) -> list[LayerDrift]:
    """Per-layer relative error of the test side vs ``ref`` on ``inputs`` (``[1, 3, H, W]`` float32 arrays), graph order.

    Both sides run through Polygraphy (:func:`drsedge.backend.compare.run_pair`) with the
    compared tensors marked as outputs: ``test_path`` in ONNX Runtime, or with ``trt_precision`` a
    TensorRT engine built from ``test_path or ref_path`` (GPU).

    Raises:
        DrsedgeError: unparsable models, no shared layer names, or no input.
    """
    from drsedge.backend.compare import run_pair

    if not inputs:
        raise DrsedgeError("localize needs at least one image")
    from drsedge.onnx_io import load_onnx

    ref, test = load_onnx(ref_path), load_onnx(test_path or ref_path)
    test_tensors = {o for n in test.graph.node for o in n.output}
    nodes = [(n, o) for n in ref.graph.node if n.op_type in COMPARED_OPS for o in n.output[:1] if o in test_tensors]
    if not nodes:
        raise DrsedgeError(f"{test_path}: shares no layer output names with {ref_path}; were both made from the same export?")
    names = [o for _, o in nodes]
    ref_out, test_out = run_pair(ref_path, inputs, test_path, trt_precision, plugin, outputs=names)
    errs = np.zeros(len(names))
    for a_img, b_img in zip(ref_out, test_out):
        for i, n in enumerate(names):
            a, b = a_img[n].astype(np.float64), b_img[n].astype(np.float64)
            errs[i] += np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-12)
    errs /= len(inputs)
    return [LayerDrift(node.name, out, module_path(node.name), node.op_type, float(e)) for (node, out), e in zip(nodes, errs)]


def first_offenders(drifts: list[LayerDrift], threshold: float = 0.05, top: int = 10) -> list[LayerDrift]:
    """The first ``top`` layers (graph order) whose relative error crosses ``threshold``."""
    return [d for d in drifts if d.rel_err > threshold][:top]


def worst_modules(drifts: list[LayerDrift], top: int = 10) -> list[tuple[str, float]]:
    """PyTorch modules ranked by the largest increase of relative error over the previous compared layer (graph order)."""
    jumps: dict[str, float] = {}
    prev = 0.0
    for d in drifts:
        jumps[d.module] = max(jumps.get(d.module, 0.0), d.rel_err - prev)
        prev = d.rel_err
    return sorted(jumps.items(), key=lambda kv: -kv[1])[:top]
