"""Running ``drsedge::TopKSparseSoftmax`` in ONNX Runtime (CPU).

Two ways, chosen per session:

* ``"function"`` (default): the exported model carries a model-local ONNX function
  with the native body (TopK, Where, Softmax; see :mod:`drsedge.ops.topk_sparse_softmax.op`);
  ONNX Runtime inlines it and runs optimized native kernels. No extra library.
* ``"pyop"``: a real kernel for the fused node, registered through
  onnxruntime-extensions' Python custom ops (numpy). Used to check the custom-op
  path itself; it is **slow** (a Python call per node per run).

Why not a C++ custom-op library: the onnxruntime wheel ships no C/C++ headers,
Debian 12 has no onnxruntime package, and ``drsedge`` must not vendor them, so
a C++ kernel cannot be built on this machine or in CI.
"""

from __future__ import annotations

import warnings

import numpy as np

from drsedge.errors import DrsedgeError
from drsedge.onnx_graph import is_fused
from drsedge.ops.topk_sparse_softmax.op import OP_DOMAIN, OP_TYPE

PYOP_DOMAIN = "ai.onnx.contrib"  # onnxruntime-extensions registers Python ops in this domain only
_registered = False


def topk_sparse_softmax_np(scores: np.ndarray, weights: np.ndarray, ks: list[int]) -> np.ndarray:
    """Numpy reference: ``[..., C]`` float32 scores -> probs (threshold semantics, fp32 math)."""
    s = scores.astype(np.float32, copy=False)
    desc = -np.sort(-s, axis=-1)
    m = desc[..., :1]
    e = np.exp(s - m)
    out = np.zeros_like(s)
    for w, k in zip(weights.astype(np.float32), ks):
        keep = s >= desc[..., k - 1 : k]
        ek = np.where(keep, e, 0.0)
        out += w * ek / ek.sum(-1, keepdims=True)
    return out


def register_pyop() -> str:
    """Register the Python kernel with onnxruntime-extensions; returns its custom-op library path.

    Raises:
        DrsedgeError: onnxruntime-extensions is not installed.
    """
    global _registered
    try:
        from onnxruntime_extensions import PyCustomOpDef, get_library_path, onnx_op
    except ImportError:
        raise DrsedgeError("the pyop kernel needs onnxruntime-extensions: pip install onnxruntime-extensions") from None
    if not _registered:

        @onnx_op(op_type=OP_TYPE, inputs=[PyCustomOpDef.dt_float, PyCustomOpDef.dt_float], outputs=[PyCustomOpDef.dt_float],
                 attrs={"ks_csv": PyCustomOpDef.dt_string})
        def _kernel(scores, weights, **kwargs):
            return topk_sparse_softmax_np(scores, weights, [int(k) for k in kwargs["ks_csv"].split(",")])

        _registered = True
    return get_library_path()


def to_pyop_model(model):
    """Copy of an ONNX ``ModelProto`` whose fused nodes target the onnxruntime-extensions kernel.

    The node moves to domain ``ai.onnx.contrib`` and its INTS attribute ``ks`` becomes the string
    ``ks_csv`` (Python custom ops take scalar attributes only); the fallback function is dropped.
    """
    import onnx
    from onnx import helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    n_fused = 0
    for node in m.graph.node:
        if is_fused(node):
            ks = next(list(a.ints) for a in node.attribute if a.name == "ks")
            del node.attribute[:]
            node.attribute.append(helper.make_attribute("ks_csv", ",".join(map(str, ks))))
            node.domain = PYOP_DOMAIN
            n_fused += 1
    if n_fused == 0:
        raise DrsedgeError("model has no drsedge::TopKSparseSoftmax node; export it with --attention fused")
    keep = [f for f in m.functions if not (f.domain == OP_DOMAIN and f.name == OP_TYPE)]
    del m.functions[:]
    m.functions.extend(keep)
    for o in m.opset_import:
        if o.domain == OP_DOMAIN:
            o.domain = PYOP_DOMAIN
    warnings.warn(f"TopKSparseSoftmax runs as a Python custom op ({n_fused} nodes): correct but slow; use the default 'function' kernel for speed", stacklevel=2)
    return m
