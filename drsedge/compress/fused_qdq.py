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

    from drsedge.onnx_graph import is_fused

    calls = [n for n in model.graph.node if is_fused(n)]
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
    _restore_call_initializers(quantized, calls, original)
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


def _restore_call_initializers(quantized: onnx.ModelProto, calls: list[onnx.NodeProto], original: onnx.ModelProto) -> None:
    """Give back the calls' constant inputs (the per-head ``weights``) that the quantizer renamed or retyped.

    ModelOpt gives each use of a shared initializer its own copy (``NAME_1``, ``NAME_2``…, FP16 under
    ``--high-precision fp16``), so the put-back calls would name an input that no longer exists (ONNX Runtime:
    "Node input ... is not a graph input, initializer, or output"). The original FP32 initializer is copied back and
    the copies that nothing reads any more are dropped.

    Raises:
        DrsedgeError: a call input that is neither produced in the quantized graph nor an initializer of the original.
    """
    g = quantized.graph
    have = {i.name for i in g.initializer} | {i.name for i in g.input} | {o for n in g.node for o in n.output}
    orig = {i.name: i for i in original.graph.initializer}
    for c in calls:
        for name in c.input:
            if name and name not in have:
                if name not in orig:
                    raise DrsedgeError(f"{c.name}: input {name!r} disappeared in quantization; cannot put the fused op back")
                g.initializer.append(orig[name])
                have.add(name)
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    keep = [i for i in g.initializer if i.name in used or i.name in orig]
    if len(keep) != len(g.initializer):
        del g.initializer[:]
        g.initializer.extend(keep)


def fp32_fused_io(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Keep every fused top-k node FP32 in a graph whose float parts became FP16 (ModelOpt ``--high-precision fp16``).

    The plugin takes FP32 scores and writes FP32 (``native/topk_sparse_softmax/src/plugin_common.h``,
    ``supportedCombination``), and a strongly typed TensorRT (>= 10.12, all of 11.x) cannot insert the cast itself
    ("Setting layer precision and layer output types is not allowed", 10.3 ``NvInfer.h``), so each FP16 input gets a
    ``Cast(to=FLOAT)`` and each FP16 output is renamed and cast back (``Cast(to=FLOAT16)`` under the old name), as
    drsedge's own FP16 export keeps the op. Returns the model (changed in place) and the number of Casts added.
    """
    from drsedge.onnx_graph import is_fused, value_types

    types = value_types(model)
    half = onnx.TensorProto.FLOAT16
    out, added = [], 0
    for n in model.graph.node:
        if not is_fused(n):
            out.append(n)
            continue
        for k, name in enumerate(n.input):
            if name and types.get(name) == half:
                cast = f"{n.name}/fp32_in_{k}"
                out.append(onnx.helper.make_node("Cast", [name], [cast + "_output"], name=cast, to=onnx.TensorProto.FLOAT))
                n.input[k] = cast + "_output"
                added += 1
        after = []
        for k, name in enumerate(n.output):
            if name and types.get(name) == half:
                cast = f"{n.name}/fp16_out_{k}"
                n.output[k] = cast + "_input"
                after.append(onnx.helper.make_node("Cast", [cast + "_input"], [name], name=cast, to=half))
                added += 1
        out += [n, *after]
    if added:
        keep = [vi for vi in model.graph.value_info if not any(vi.name in (*n.input, *n.output) for n in out
                                                               if is_fused(n))]
        del model.graph.value_info[:]
        model.graph.value_info.extend(keep)
        del model.graph.node[:]
        model.graph.node.extend(out)
    return model, added
