"""Quantizing a model with fused top-k ops: calibrate the unfused graph, then swap the fused nodes back in.

No quantizer here can take ``drsedge::TopKSparseSoftmax`` as it is exported (a call of a model-local function):
NNCF's ONNX engine fails to load it ("not a registered function/op"), ONNX Runtime's quantizer cannot type what a
call feeds, and ModelOpt's opset-19 upgrade (``onnx.version_converter``) drops the functions. So each call is inlined
(:func:`unfuse`), the unfused graph is calibrated and quantized with the inlined nodes excluded (they stay float
without Q/DQ: INT8 scores would create ties at the top-k threshold, and TensorRT cannot fuse Q/DQ into a plugin), and
each call is put back where its inlined nodes were, with its function (:func:`refuse`). Measured: unfuse -> refuse
of the FP32 shipped student is bit-exact in ONNX Runtime.
"""

from __future__ import annotations

import onnx

from drsedge.errors import DrsedgeError

INLINED = "/inlined/"  # node-name infix of the nodes that stand for one fused call while it is unfused


def unfuse(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[onnx.NodeProto]]:
    """Inline every fused-op call; the inlined nodes of call ``c`` are named ``<c.name>/inlined/<k>``.

    Returns the unfused model and the original fused nodes (empty when there are none: ``model`` unchanged).
    """
    from onnx import inliner

    from drsedge.ops.topk_sparse_softmax.op import OP_DOMAIN, OP_TYPE

    calls = [n for n in model.graph.node if n.domain == OP_DOMAIN and n.op_type == OP_TYPE]
    if not calls:
        return model, []
    before = {(n.domain, n.op_type, tuple(n.output)) for n in model.graph.node}
    out = inliner.inline_local_functions(model)
    new = [n for n in out.graph.node if (n.domain, n.op_type, tuple(n.output)) not in before]
    producer = {o: n for n in new for o in n.output}
    for c in calls:
        stop, todo, seen = set(c.input), list(c.output), []
        while todo:
            n = producer.pop(todo.pop(), None)
            if n is None or any(n is m for m in seen):
                continue
            seen.append(n)
            todo += [i for i in n.input if i and i not in stop]
        for k, n in enumerate(seen):
            n.name = f"{c.name}{INLINED}{k}"
    keep = {n.domain for n in out.graph.node} | {"", "ai.onnx"}
    ops = [o for o in out.opset_import if o.domain in keep]
    del out.opset_import[:]
    out.opset_import.extend(ops)
    return out, calls


def refuse(quantized: onnx.ModelProto, calls: list[onnx.NodeProto], original: onnx.ModelProto) -> onnx.ModelProto:
    """Put the fused calls back into a model quantized from :func:`unfuse`'s output: each call's inlined nodes are
    replaced by the call itself (where its output was produced), with its function and opset import.

    Raises:
        DrsedgeError: an inlined node was renamed or its output disappeared (the quantizer changed the call's
            subgraph).
    """
    nodes = list(quantized.graph.node)
    for c in calls:
        pre = f"{c.name}{INLINED}"
        at = next((i for i, n in enumerate(nodes) if n.name.startswith(pre) and c.output[0] in n.output), None)
        if at is None:
            raise DrsedgeError(f"{c.name}: the quantizer changed the unfused top-k subgraph; cannot put the fused op back")
        nodes[at] = c
        nodes = [n for n in nodes if not n.name.startswith(pre)]
    del quantized.graph.node[:]
    quantized.graph.node.extend(nodes)
    version = next(o.version for o in quantized.opset_import if o.domain in ("", "ai.onnx"))
    for f in original.functions:
        g = onnx.FunctionProto()
        g.CopyFrom(f)
        for o in g.opset_import:
            if o.domain in ("", "ai.onnx"):
                o.version = version
        quantized.functions.append(g)
    have = {o.domain for o in quantized.opset_import}
    quantized.opset_import.extend([o for o in original.opset_import if o.domain not in have])
    return quantized
