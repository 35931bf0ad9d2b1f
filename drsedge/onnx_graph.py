"""Queries on an ONNX graph (``onnx.ModelProto``), shared by export, compression and the TensorRT backend.

Node names are the exporter's module paths (``/encoder_level1/encoder_level1.0/attn/...``); TensorRT's ONNX
parser names each layer after its node (onnx-tensorrt ``registerLayer`` -> ``getNodeName``), so these names
also address engine layers.
"""

from __future__ import annotations

from drsedge.errors import DrsedgeError

FLOAT_TYPES = (1, 10, 16)  # onnx.TensorProto FLOAT, FLOAT16, BFLOAT16
OP_DOMAIN, OP_TYPE = "drsedge", "TopKSparseSoftmax"  # the fused top-k op (drsedge.ops.topk_sparse_softmax)
# LayerNorm statistics and the q/k L2 normalisation: sums over channels / pixels that leave FP16's range at 720p
FP16_UNSAFE_PATTERNS = ("norm1/body", "norm2/body", "ReduceL2", "LpNormalization", "attn/Div")


def is_fused(node) -> bool:
    """True for a ``drsedge::TopKSparseSoftmax`` call (the one test of "a fused node", :data:`OP_DOMAIN`, :data:`OP_TYPE`)."""
    return node.domain == OP_DOMAIN and node.op_type == OP_TYPE


def fused_nodes(model) -> list[str]:
    """Names of the ``drsedge::TopKSparseSoftmax`` nodes, in graph order (empty names shown as ``<node i>``)."""
    return [n.name or f"<node {i}>" for i, n in enumerate(model.graph.node) if is_fused(n)]


def attention_core(model) -> list[str]:
    """TKSA between its convs: q/k normalisation, the C x C scores, top-k selection, softmax and the product with V.

    Kept in FP32 because top-k is a discontinuous selection: FP16 rounding of the scores changes which entries
    pass the threshold, and one swapped entry moves a whole output channel. Measured on the demo's pruned student,
    PSNR of the FP16 ONNX output vs the FP32 output on 6 validation frames (rain200H/test, rain200L/test, real/):
    28.3-47.0 dB with only the overflow islands, 28.5-48.7 dB adding the LayerNorm/normalisation islands, 54.2-83.9 dB
    with this core in FP32 too. The part is cheap (C x C with C <= 64); the 1x1 and depthwise convs around it,
    where the MACs are, stay FP16.
    """
    return [n.name for n in model.graph.node if "/attn/" in n.name and n.op_type not in ("Conv",)]


def value_types(model) -> dict[str, int]:
    """Element type (``onnx.TensorProto`` enum) of every value ONNX shape inference can type.

    Custom-domain nodes without a function body stay untyped; inference errors leave the graph's own types.
    """
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:
        inferred = model
    g = inferred.graph
    types = {t.name: t.data_type for t in g.initializer}
    for vi in list(g.value_info) + list(g.input) + list(g.output):
        if vi.type.tensor_type.elem_type:
            types[vi.name] = vi.type.tensor_type.elem_type
    return types


def float_valued_nodes(model) -> set[str]:
    """Names of the nodes whose every output is a float tensor (FP32/FP16/BF16).

    Shape arithmetic (INT64 ``Shape``/``Gather``/``Div`` the exporter emits for ``c // heads``) is excluded:
    TensorRT runs shape layers in INT32/INT64 and answers a request for FP32 with an error (``NvInfer.h``,
    ``ILayer::setOutputType``; NVIDIA/TensorRT#3177). The fused op's outputs are float by definition.
    """
    types = value_types(model)
    out = set(fused_nodes(model))
    for n in model.graph.node:
        if n.name and n.output and all(types.get(o) in FLOAT_TYPES for o in n.output if o):
            out.add(n.name)
    return out


def module_path(node_name: str) -> str:
    """``/encoder_level2/encoder_level2.0/attn/qkv/Conv`` -> ``encoder_level2.0.attn.qkv``; ``/Add`` -> ``""`` (the
    model itself); names without a path are returned unchanged (best effort)."""
    if not node_name.startswith("/"):
        return node_name
    parts = [p for p in node_name.strip("/").split("/") if p]
    if len(parts) <= 1:
        return ""
    mods = parts[:-1]
    # TorchScript names repeat the parent path in each level ("encoder_level2/encoder_level2.0"); keep the deepest.
    out: list[str] = []
    for m in mods:
        if out and m.startswith(out[-1] + "."):
            out[-1] = m
        else:
            out.append(m)
    return ".".join(out)


def with_outputs(model, names: list[str]) -> bytes:
    """Serialized copy of ``model`` with the tensors ``names`` added as graph outputs (untyped)."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    existing = {o.name for o in m.graph.output}
    for n in names:
        if n not in existing:
            m.graph.output.append(onnx.helper.make_empty_tensor_value_info(n))
    return m.SerializeToString()


def graph_float_types(model) -> set[str]:
    """Float element types used by the graph's initializers, value infos, IO and Cast targets: subset of {"float32", "float16", "bfloat16"}."""
    import onnx

    names = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16", onnx.TensorProto.BFLOAT16: "bfloat16"}
    out = {names[t.data_type] for t in model.graph.initializer if t.data_type in names}
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        et = vi.type.tensor_type.elem_type
        if et in names:
            out.add(names[et])
    for n in model.graph.node:
        if n.op_type == "Cast":
            for a in n.attribute:
                if a.name == "to" and a.i in names:
                    out.add(names[a.i])
    return out


def has_qdq(model) -> bool:
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def fp16_unsafe_nodes(model) -> list[str]:
    """ONNX node names of the FP16-unsafe layers (LayerNorm statistics, q/k L2-normalisation), float-valued only.

    Empty for an export made with ``--fp16-safe`` (metadata ``drsedge.fp16_safe = "1"``): its reductions
    are bounded (:mod:`drsedge.models.fp16_safe`) and need no FP32 layers. TensorRT's ONNX parser names each
    layer after its node, so these names address the layers. ``drsedge fp16-check`` measures which of them
    actually overflow on real images. Nodes with integer outputs that match a pattern (the exporter's INT64
    ``attn/Div`` for ``c // heads``) are left out: :func:`float_valued_nodes`. ``model``: an ``onnx.ModelProto``.
    """
    if any(p.key == "drsedge.fp16_safe" and p.value == "1" for p in model.metadata_props):
        return []
    floats = float_valued_nodes(model)
    return [
        n.name for n in model.graph.node
        if n.name in floats and n.op_type != "Constant" and any(p in n.name or p == n.op_type for p in FP16_UNSAFE_PATTERNS)
    ]


RANK_MASK_VALUES = ({0.6, 1.0}, {1.0, 1.2})  # UDR-S2Former's rank constraint and rank modulation (models/udr_s2former.py)


def rank_path_nodes(model) -> list[str]:
    """UDR-S2Former's ranking: every node whose output reaches a rank mask ``Where(keep, 1.0, 0.6)`` /
    ``Where(keep, 1.0, 1.2)`` without passing a Conv, i.e. the masks, their comparisons, the bisection's
    min/max/compare/count steps, the score MatMul and the top-51 TopK. A hard mask flips where FP16 rounding moves a
    value across the threshold, so these stay FP32 (weakly typed TensorRT layers, FP16 ONNX islands). Empty for a
    graph without such masks (DRSformer)."""
    from onnx import numpy_helper

    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer if len(t.dims) == 0 or list(t.dims) == [1]}
    for n in model.graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].t.ByteSize():
            arr = numpy_helper.to_array(n.attribute[0].t)
            if arr.size == 1:
                consts[n.output[0]] = arr
    producer = {o: n for n in model.graph.node for o in n.output}
    masks = [n for n in model.graph.node if n.op_type == "Where" and len(n.input) == 3 and all(i in consts for i in n.input[1:])
             and {round(float(consts[i].reshape(-1)[0]), 3) for i in n.input[1:]} in RANK_MASK_VALUES]
    seen: dict[str, object] = {}
    stack = list(masks)
    while stack:
        n = stack.pop()
        if n.name in seen or n.op_type == "Conv":
            continue
        seen[n.name] = n
        stack.extend(producer[i] for i in n.input if i in producer)
    return [n.name for n in model.graph.node if n.name in seen and n.op_type != "Constant"]


def activation_matmuls(model) -> list[str]:
    """Names of MatMul nodes between two activations (no initializer input): the attention's q·kᵀ and attn·v, which
    INT8 leaves in float."""
    inits = {i.name for i in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and not any(i in inits for i in n.input)]


def depthwise_convs(model) -> list[str]:
    """Names of grouped Conv nodes (``group`` > 1: depthwise in DRSformer's MSFN and qkv)."""
    return [n.name for n in model.graph.node if n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute)]


def adds_of(model, producers: list[str]) -> list[str]:
    """Adds whose every input is the output of a node in ``producers``: with the depthwise convs INT8 keeps in float,
    the deploy MSFN's branch sum (:class:`drsedge.models.reparam.MSFNDeploy`). Quantizing it buys no integer kernel
    (its producers and its ReLU consumer stay float) and costs accuracy: the pre-ReLU sum has the widest range in the
    block (ModelOpt PTQ of the shipped student: 30.0 dB fidelity on rain200H/test 1 with it quantized)."""
    kept = set(producers)
    producer = {o: n.name for n in model.graph.node for o in n.output}
    return [n.name for n in model.graph.node if n.op_type == "Add" and n.input and all(producer.get(i) in kept for i in n.input)]


def nodes_of_modules(model, modules: list[str]) -> list[str]:
    """ONNX node names that belong to the given PyTorch module paths (e.g. ``latent.1.attn``), via
    :func:`module_path`.

    Raises:
        DrsedgeError: a module matches no node.
    """
    out = []
    for mod in modules:
        hits = [n.name for n in model.graph.node if n.name and (module_path(n.name) + ".").startswith(mod.rstrip(".") + ".")]
        if not hits:
            paths = sorted({".".join(module_path(n.name).split(".")[:3]) for n in model.graph.node if n.name} - {""})
            raise DrsedgeError(f"--keep-float {mod}: no ONNX node belongs to this module; modules of this graph look like "
                               f"{', '.join(paths[:3])} (`drsedge localize` lists them)")
        out += hits
    return out
