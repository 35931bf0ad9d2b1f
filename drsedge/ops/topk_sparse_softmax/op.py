"""The fused top-k sparse-softmax op: ``TopKSparseSoftmax(scores[B,H,C,C], weights[n]) -> probs[B,H,C,C]``.

``probs = sum_i weights[i] * softmax(where(scores >= kth_i(scores), scores, -inf))``
with ``kth_i`` the ``ks[i]``-th largest value of each row (threshold semantics of
:func:`drsedge.models.attention.topk_sparse_probs`; ties keep every tied entry).

Three faces of one op:

* PyTorch: ``torch.ops.drsedge.topk_sparse_softmax`` (``torch.library`` custom op
  with a reference kernel, a fake kernel for tracing and an autograd formula).
* ONNX: node ``drsedge::TopKSparseSoftmax`` with attributes ``ks`` (ints),
  ``plugin_version`` and ``plugin_namespace`` (what TensorRT's ONNX parser uses
  to find a plugin). The exported model also carries a model-local ONNX function
  of the same name whose body is the native graph, so any ONNX runtime without
  a kernel for the op still runs the model (ONNX Runtime inlines it).
* Native kernels: ``native/`` (CUDA kernel, TensorRT plugin).
"""

from __future__ import annotations

import torch

OP_DOMAIN = "drsedge"
OP_TYPE = "TopKSparseSoftmax"
PLUGIN_VERSION = "1"
PLUGIN_NAMESPACE = ""
SUPPORTED_DTYPES = (torch.float32, torch.float16)  # ONNX / CUDA / TensorRT
REFERENCE_DTYPES = (*SUPPORTED_DTYPES, torch.float64)  # the PyTorch reference also takes float64 (gradcheck)


def _check(scores: torch.Tensor, weights: torch.Tensor, ks: list[int]) -> None:
    if scores.dtype not in REFERENCE_DTYPES:
        raise TypeError(f"TopKSparseSoftmax supports float32 and float16 scores (float64 in PyTorch only), got {scores.dtype}")
    if scores.dim() != 4 or scores.shape[-1] != scores.shape[-2]:
        raise ValueError(f"scores must be [B, H, C, C], got {tuple(scores.shape)}")
    c = scores.shape[-1]
    if not ks or list(ks) != sorted(ks) or ks[0] < 1 or ks[-1] > c:
        raise ValueError(f"ks must be ascending and within [1, C={c}], got {list(ks)}")
    if weights.shape != (len(ks),):
        raise ValueError(f"weights must have shape [{len(ks)}] (one per k), got {tuple(weights.shape)}")


def _branch_probs(scores: torch.Tensor, ks: list[int]) -> list[torch.Tensor]:
    """The masked softmaxes, computed in float32 (fp16 inputs are upcast, as the CUDA kernel accumulates) or float64."""
    s = scores if scores.dtype == torch.float64 else scores.float()
    top = torch.topk(s, k=ks[-1], dim=-1, largest=True, sorted=True)[0]
    neg_inf = torch.full_like(s, float("-inf"))
    return [torch.where(s >= top[..., k - 1 : k], s, neg_inf).softmax(dim=-1) for k in ks]


@torch.library.custom_op("drsedge::topk_sparse_softmax", mutates_args=())
def topk_sparse_softmax_op(scores: torch.Tensor, weights: torch.Tensor, ks: list[int]) -> torch.Tensor:
    """Reference kernel (any device): see module docstring. Output dtype = scores dtype."""
    _check(scores, weights, ks)
    probs = _branch_probs(scores, ks)
    w = weights.to(probs[0].dtype)
    out = probs[0] * w[0]
    for i in range(1, len(ks)):
        out = out + probs[i] * w[i]
    return out.to(scores.dtype)


@topk_sparse_softmax_op.register_fake
def _(scores, weights, ks):
    _check(scores, weights, ks)
    return torch.empty_like(scores)


def _setup_context(ctx, inputs, output):
    scores, weights, ks = inputs
    ctx.save_for_backward(scores, weights)
    ctx.ks = ks


def _backward(ctx, grad):
    """d/dS: sum_i w_i * P_i * (G - <G, P_i>_row) (softmax backward; masked entries have P_i = 0 and get 0;
    the threshold itself is piecewise constant). d/dw_i = sum(G * P_i)."""
    scores, weights = ctx.saved_tensors
    probs = _branch_probs(scores, ctx.ks)
    g = grad.to(probs[0].dtype)
    w = weights.to(probs[0].dtype)
    d_scores = torch.zeros_like(g)
    d_w = []
    for i, p in enumerate(probs):
        gp = g * p
        d_scores = d_scores + w[i] * (gp - p * gp.sum(-1, keepdim=True))
        d_w.append(gp.sum())
    return d_scores.to(scores.dtype), torch.stack(d_w).to(weights.dtype), None


topk_sparse_softmax_op.register_autograd(_backward, setup_context=_setup_context)


def topk_sparse_softmax(scores: torch.Tensor, weights: torch.Tensor, ks) -> torch.Tensor:
    """Call the custom op: ``scores`` ``[B, H, C, C]`` fp32/fp16, ``weights`` ``[len(ks)]``, ``ks`` ascending.

    Raises:
        TypeError: unsupported dtype. ValueError: bad shapes or ks.
    """
    return torch.ops.drsedge.topk_sparse_softmax(scores, weights, [int(k) for k in ks])


# -- ONNX ------------------------------------------------------------------------------------------
def onnx_function(opset: int):
    """Model-local ONNX function ``drsedge::TopKSparseSoftmax`` whose body is the native graph.

    Body (any number of ks, vectorised over a new axis n): ``kmax = ReduceMax(ks)``,
    ``TopK(S, kmax)``, thresholds ``Gather(values, ks - 1)``, ``S[..., None, :] >= thr[..., None]``,
    ``Where(-inf)``, ``Softmax``, ``Sum_n(w_n * P_n)``.
    """
    from onnx import AttributeProto, TensorProto, helper

    n = helper.make_node
    ks_const = n("Constant", [], ["ks_t"])
    ref = helper.make_attribute_ref("value_ints", AttributeProto.INTS)
    ref.ref_attr_name = "ks"
    ks_const.attribute.append(ref)
    nodes = [
        ks_const,
        n("ReduceMax", ["ks_t"], ["kmax"], keepdims=1),
        n("TopK", ["scores", "kmax"], ["top", "top_idx"], axis=-1, largest=1, sorted=1),
        n("Constant", [], ["one"], value=helper.make_tensor("one", TensorProto.INT64, [], [1])),
        n("Sub", ["ks_t", "one"], ["kidx"]),
        n("Gather", ["top", "kidx"], ["thr"], axis=-1),
        n("Constant", [], ["ax_m1"], value=helper.make_tensor("ax_m1", TensorProto.INT64, [1], [-1])),
        n("Constant", [], ["ax_m2"], value=helper.make_tensor("ax_m2", TensorProto.INT64, [1], [-2])),
        n("Unsqueeze", ["thr", "ax_m1"], ["thr5"]),
        n("Unsqueeze", ["scores", "ax_m2"], ["s5"]),
        n("GreaterOrEqual", ["s5", "thr5"], ["keep"]),
        n("Constant", [], ["ninf_f"], value=helper.make_tensor("ninf_f", TensorProto.FLOAT, [], [float("-inf")])),
        n("CastLike", ["ninf_f", "scores"], ["ninf"]),
        n("Where", ["keep", "s5", "ninf"], ["masked"]),
        n("Softmax", ["masked"], ["p"], axis=-1),
        n("CastLike", ["weights", "scores"], ["w_c"]),
        n("Unsqueeze", ["w_c", "ax_m1"], ["w2"]),
        n("Mul", ["p", "w2"], ["pw"]),
        n("ReduceSum", ["pw", "ax_m2"], ["probs"], keepdims=0),
    ]
    return _function_with_ks(nodes, opset)


def _function_with_ks(nodes, opset: int):
    from onnx import FunctionProto, helper

    f = FunctionProto()
    f.domain, f.name = OP_DOMAIN, OP_TYPE
    f.input.extend(["scores", "weights"])
    f.output.extend(["probs"])
    f.node.extend(nodes)
    f.opset_import.extend([helper.make_opsetid("", opset)])
    f.attribute.extend(["ks", "plugin_version", "plugin_namespace"])
    return f


def register_onnx_schema() -> None:
    """Register ``drsedge::TopKSparseSoftmax`` (since version 1) with onnx so the checker validates nodes."""
    import onnx
    from onnx.defs import OpSchema

    if onnx.defs.has(OP_TYPE, OP_DOMAIN):
        return
    schema = OpSchema(
        OP_TYPE, OP_DOMAIN, 1,
        doc="Sum over ks of weights[i] * softmax(scores masked to its top-ks[i] values per row); see drsedge.export.fused_op.",
        inputs=[OpSchema.FormalParameter("scores", "T"), OpSchema.FormalParameter("weights", "T1")],
        outputs=[OpSchema.FormalParameter("probs", "T")],
        type_constraints=[("T", ["tensor(float)", "tensor(float16)"], "scores/probs"), ("T1", ["tensor(float)", "tensor(float16)"], "weights")],
        attributes=[
            OpSchema.Attribute("ks", OpSchema.AttrType.INTS, "ascending top-k sizes"),
            OpSchema.Attribute("plugin_version", OpSchema.AttrType.STRING, "TensorRT plugin version", required=False),
            OpSchema.Attribute("plugin_namespace", OpSchema.AttrType.STRING, "TensorRT plugin namespace", required=False),
        ],
    )
    onnx.defs.register_schema(schema)


def register_torchscript_symbolic(opset: int) -> None:
    """Map the custom op to the ONNX node for ``torch.onnx.export(dynamo=False)``."""
    from torch.onnx import register_custom_op_symbolic
    from torch.onnx.symbolic_helper import parse_args

    @parse_args("v", "v", "is")
    def symbolic(g, scores, weights, ks):
        out = g.op(f"{OP_DOMAIN}::{OP_TYPE}", scores, weights, ks_i=ks, plugin_version_s=PLUGIN_VERSION, plugin_namespace_s=PLUGIN_NAMESPACE)
        out.setType(scores.type())
        return out

    register_custom_op_symbolic("drsedge::topk_sparse_softmax", symbolic, opset)


def dynamo_translation_table() -> dict:
    """``custom_translation_table`` for ``torch.onnx.export(dynamo=True)``: the op becomes one ``drsedge`` node."""
    import onnxscript

    drs = onnxscript.values.Opset(OP_DOMAIN, 1)

    def translate(scores, weights, ks: list[int]):
        return drs.TopKSparseSoftmax(scores, weights, ks=ks, plugin_version=PLUGIN_VERSION, plugin_namespace=PLUGIN_NAMESPACE)

    return {torch.ops.drsedge.topk_sparse_softmax.default: translate}


def attach_function(model, opset: int):
    """Add the ``drsedge`` opset import and the model-local fallback function to an ONNX ``ModelProto`` (in place)."""
    from onnx import helper

    if not any(f.domain == OP_DOMAIN and f.name == OP_TYPE for f in model.functions):
        model.functions.append(onnx_function(opset))
    if not any(o.domain == OP_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(OP_DOMAIN, 1))
    return model
