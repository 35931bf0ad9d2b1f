"""PyTorch -> ONNX export with dynamic H and W, checked in ONNX Runtime.

The model is put in eval mode with the *threshold* top-k form (one TopK at the
largest k, Where(-inf), Softmax; no ScatterElements), see
:mod:`drsedge.models.attention`. Input ``image`` ``[N, 3, H, W]`` float32 in
[0, 1] with H, W multiples of 8; output ``derained`` of the same shape,
unclamped (the runner clamps, as upstream test.py).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from drsedge.errors import DrsedgeError
from drsedge.fileio import atomic_write
from drsedge.models.drsformer import set_attention_impl, set_fp16_safe, set_topk_mode
from drsedge.onnx_io import EXPORT_INPUT_NAME as INPUT_NAME

OUTPUT_NAME = "derained"
META_ATTENTION, META_FP16_SAFE = "drsedge.attention", "drsedge.fp16_safe"  # ONNX metadata_props keys
EXPORTERS = ("torchscript", "dynamo")


@dataclass
class ParityResult:
    """Max abs difference ONNX Runtime vs PyTorch per input size ``(H, W)``."""

    max_abs: dict[str, float]

    @property
    def worst(self) -> float:
        """Largest difference; NaN when any size produced NaN (so ``worst <= tol`` is False)."""
        vals = list(self.max_abs.values())
        return float("nan") if any(v != v for v in vals) else max(vals)


def export_onnx(
    model: torch.nn.Module,
    path: str | os.PathLike,
    opset: int = 17,
    exporter: str = "torchscript",
    sample_hw: tuple[int, int] = (64, 64),
    attention: str = "native",
    fp16_safe: bool = False,
) -> Path:
    """Export ``model`` to ONNX at ``path`` (atomic), batch/H/W dynamic.

    Args:
        opset: ONNX opset (>= 17).
        exporter: ``"torchscript"`` (fast, ``torch.onnx.export(dynamo=False)``) or
            ``"dynamo"`` (``torch.export`` based; ~30 s for a small model on 2 cores).
        attention: ``"native"`` (plain ONNX ops) or ``"fused"`` (custom op
            ``drsedge::TopKSparseSoftmax``, see :mod:`drsedge.ops.topk_sparse_softmax.op`).
        fp16_safe: export LayerNorm and the q/k normalisation in the bounded form of
            :mod:`drsedge.models.fp16_safe` (same FP32 results; no ReduceL2), so FP16 engines
            need no FP32 layers. Recorded as metadata ``drsedge.fp16_safe = "1"``.

    Raises:
        DrsedgeError: opset < 17 or an unknown exporter.
    """
    if opset < 17:
        raise DrsedgeError(f"opset {opset} is too old: drsedge exports with opset >= 17")
    if exporter not in EXPORTERS:
        raise DrsedgeError(f"unknown exporter {exporter!r}; use one of {EXPORTERS}")
    model = model.eval()
    set_topk_mode(model, "threshold")
    set_attention_impl(model, attention)
    set_fp16_safe(model, fp16_safe)
    x = torch.rand(1, 3, *sample_hw)
    if attention not in ("native", "fused"):
        raise DrsedgeError(f"unknown attention export {attention!r}; use 'native' or 'fused'")
    fused = attention == "fused"
    if fused:
        from drsedge.ops.topk_sparse_softmax import op as fused_op

        fused_op.register_onnx_schema()
        if exporter == "torchscript":
            fused_op.register_torchscript_symbolic(opset)

    def write(tmp: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if exporter == "dynamo":
                # The dynamo exporter emits opset 18 and its down-conversion to 17 fails (ReduceMean axes).
                hw = {2: torch.export.Dim("height", min=8), 3: torch.export.Dim("width", min=8)}
                prog = torch.onnx.export(
                    model, (x,), None, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                    opset_version=max(opset, 18), dynamo=True, dynamic_shapes={"inp_img": hw}, external_data=False,
                    custom_translation_table=fused_op.dynamo_translation_table() if fused else None,
                )
                prog.save(tmp)
            else:
                torch.onnx.export(
                    model, (x,), tmp, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset,
                    dynamo=False, dynamic_axes={INPUT_NAME: {0: "batch", 2: "height", 3: "width"}, OUTPUT_NAME: {0: "batch", 2: "height", 3: "width"}},
                    custom_opsets={fused_op.OP_DOMAIN: 1} if fused else None,
                )
        import onnx

        m = onnx.load(tmp)
        if fused:
            fused_op.attach_function(m, next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")))
        onnx.helper.set_model_props(m, {**{p.key: p.value for p in m.metadata_props}, **{
            META_ATTENTION: attention, META_FP16_SAFE: "1" if fp16_safe else "0"}})
        onnx.save(m, tmp)

    try:
        return atomic_write(path, write)
    finally:
        set_topk_mode(model, "auto")
        set_attention_impl(model, "native")
        set_fp16_safe(model, False)


def check_parity(
    model: torch.nn.Module, onnx_path: str | os.PathLike, sizes=((64, 64), (48, 80)), seed: int = 0, fused_kernel: str = "function"
) -> ParityResult:
    """Max |ORT - PyTorch| on random inputs at each ``(H, W)`` in ``sizes`` (threshold top-k in PyTorch).

    ``fused_kernel`` picks how ORT runs fused nodes (see :func:`drsedge.runtime.ort_session`).
    """
    from drsedge.runtime.runners import OrtRunner

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner = OrtRunner(onnx_path, fused_kernel=fused_kernel)
    model = model.eval()
    set_topk_mode(model, "threshold")
    g = torch.Generator().manual_seed(seed)
    out = {}
    try:
        for h, w in sizes:
            x = torch.rand(1, 3, h, w, generator=g)
            with torch.no_grad():
                ref = model(x).numpy()
            out[f"{h}x{w}"] = float(np.abs(runner(x).numpy() - ref).max())
    finally:
        set_topk_mode(model, "auto")
    return ParityResult(out)
