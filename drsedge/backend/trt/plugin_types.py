"""The plugin's type rules, checked on the ONNX before a build: what ``supportedCombination`` accepts.

``native/topk_sparse_softmax/src/plugin_common.h`` (``supportedCombination``): input 0 (scores) linear FP32 only,
input 1 (per-head weights) FP32 or FP16, the output the scores' type. A weakly typed TensorRT (< 10.12) inserts the
reformat to meet these formats; a strongly typed one (>= 10.12, all of 11.x) takes every tensor type from the
network ("Setting layer precision and layer output types is not allowed", 10.3 ``NvInfer.h``) and the build fails
when a fused node is fed FP16 scores (review-2 N3). ``tests/backend/test_plugin_types.py`` reads the C++ rule and
compares it with :data:`ACCEPTED`.
"""

from __future__ import annotations

from drsedge.errors import DrsedgeError

from .version import BuildPath

# ONNX elem types (onnx.TensorProto): 1 FLOAT, 10 FLOAT16
ACCEPTED = {0: (1,), 1: (1, 10)}
OUTPUT_AS_INPUT = 0  # the output must have input 0's type
_NAMES = {1: "FP32", 10: "FP16", 16: "BF16"}


def fused_type_problems(model) -> list[str]:
    """One text per fused node whose known tensor types break the plugin's rule (unknown types are not judged)."""
    from drsedge.onnx_graph import value_types
    from drsedge.ops.topk_sparse_softmax.op import OP_DOMAIN, OP_TYPE

    types = value_types(model)
    out = []
    for n in model.graph.node:
        if n.domain != OP_DOMAIN or n.op_type != OP_TYPE:
            continue
        for pos, ok in ACCEPTED.items():
            t = types.get(n.input[pos]) if len(n.input) > pos else None
            if t is not None and t not in ok:
                out.append(f"node {n.name!r} input {pos} is {_NAMES.get(t, t)}")
        t_in, t_out = types.get(n.input[OUTPUT_AS_INPUT]), types.get(n.output[0])
        if t_in is not None and t_out is not None and t_in != t_out:
            out.append(f"node {n.name!r} output is {_NAMES.get(t_out, t_out)}, its scores {_NAMES.get(t_in, t_in)}")
    return out


def check_plugin_types(model, path: BuildPath, source: str) -> None:
    """Refuse, before a strongly typed build, a fused node fed types the plugin does not take.

    Raises:
        DrsedgeError: one line naming the first offending node and the fix.
    """
    if not path.strongly_typed:
        return
    bad = fused_type_problems(model)
    if bad:
        raise DrsedgeError(f"{source}: {bad[0]} ({len(bad)} problem(s)); the TopKSparseSoftmax plugin takes FP32 scores and "
                           f"TensorRT {path.label} builds strongly typed networks, so nothing can cast them; re-quantize with this "
                           "drsedge (it keeps the fused op FP32: `drsedge quantize --backend modelopt --high-precision fp16`) or "
                           "use `--high-precision fp32`")
