"""What the TensorRT builder needs to know about an ONNX file before parsing it.

* the image input's name and rank (from the file, never a constant);
* the fused ``drsedge::TopKSparseSoftmax`` nodes (each must become one plugin layer);
* whether the graph carries its own precision (FP16 tensors: "precision in the graph", the only way
  to get FP16 on TensorRT 11);
* a copy without the fused op's model-local function, for parsers older than TensorRT 10.7 that would
  otherwise import the function body instead of the plugin (NVIDIA/TensorRT#4113).
"""

from __future__ import annotations

import os
from pathlib import Path

from drsedge.errors import DrsedgeError
from drsedge.fileio import atomic_write
from drsedge.onnx_graph import OP_DOMAIN, fused_nodes, graph_float_types, has_qdq, is_fused
from drsedge.onnx_io import image_input, load_onnx

PLUGIN_ATTRS = ("plugin_version", "plugin_namespace")


def strip_fused_functions(model):
    """A copy of ``model`` without the ``drsedge`` model-local functions; fused nodes keep ``op_type``,
    ``ks``, ``plugin_version`` and ``plugin_namespace``, so the parser can only resolve them through the
    plugin registry.

    Raises:
        DrsedgeError: a fused node lacks the plugin attributes (an export older than drsedge's fused export).
    """
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    for n in m.graph.node:
        if is_fused(n):
            have = {a.name for a in n.attribute}
            missing = [a for a in ("ks", *PLUGIN_ATTRS) if a not in have]
            if missing:
                raise DrsedgeError(f"fused node {n.name!r} lacks attribute(s) {missing}; re-export with `drsedge export --attention fused`")
    keep = [f for f in m.functions if f.domain != OP_DOMAIN]
    del m.functions[:]
    m.functions.extend(keep)
    return m


def write_plugin_only_copy(onnx_path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """Write :func:`strip_fused_functions` of ``onnx_path`` to ``out_path`` (atomic); returns the path."""
    import onnx

    stripped = strip_fused_functions(load_onnx(onnx_path))
    return atomic_write(out_path, lambda tmp: onnx.save(stripped, tmp))


def inspect(onnx_path: str | os.PathLike) -> dict:
    """``{"input": name, "rank": n, "fused_nodes": [...], "float_types": [...], "qdq": bool, "custom_ops": [...],
    "static_shape": (N, 3, H, W) or None}`` (fixed input dims: a static-shape export such as UDR-S2Former's).

    Raises:
        DrsedgeError: missing/unparsable file or no ``[N, 3, H, W]`` input.
    """
    model = load_onnx(onnx_path, external_data=False)
    name, rank = image_input(model, str(onnx_path))
    custom = sorted({f"{n.domain}::{n.op_type}" for n in model.graph.node if n.domain not in ("", "ai.onnx")})
    dims = next(i for i in model.graph.input if i.name == name).type.tensor_type.shape.dim
    static = tuple(d.dim_value for d in dims) if all(d.HasField("dim_value") for d in dims) else None
    return {"input": name, "rank": rank, "fused_nodes": fused_nodes(model), "float_types": sorted(graph_float_types(model)),
            "qdq": has_qdq(model), "custom_ops": custom, "static_shape": static}
