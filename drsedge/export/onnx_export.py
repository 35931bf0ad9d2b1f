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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from drsedge import choices
from drsedge.deploy_defaults import OPSET, OPSET_MIN_STATIC
from drsedge.errors import DrsedgeError
from drsedge.fileio import atomic_write
from drsedge.models.drsformer import set_attention_impl, set_fp16_safe, set_topk_mode
from drsedge.onnx_io import EXPORT_INPUT_NAME as INPUT_NAME
from drsedge.onnx_io import load_onnx

OUTPUT_NAME = "derained"
META_ATTENTION, META_FP16_SAFE = "drsedge.attention", "drsedge.fp16_safe"  # ONNX metadata_props keys
EXPORTERS = choices.EXPORTERS
# "deploy": structurally re-parameterized blocks (drsedge.models.reparam) + onnxslim folding, the graph a runtime wants;
# "upstream": the module structure as trained (upstream's chunk/cat, LayerNorm affine as its own ops), no folding.
STRUCTURES = choices.STRUCTURES
META_STRUCTURE = "drsedge.structure"


@dataclass
class ParityResult:
    """Max abs difference ONNX Runtime vs PyTorch per input size ``(H, W)``, and (filled for every export) the mean
    abs difference and the PSNR (dB, peak 1) of ORT against PyTorch."""

    max_abs: dict[str, float]
    mean_abs: dict[str, float] = field(default_factory=dict)
    psnr_db: dict[str, float] = field(default_factory=dict)

    @property
    def worst(self) -> float:
        """Largest difference; NaN when any size produced NaN (so ``worst <= tol`` is False)."""
        vals = list(self.max_abs.values())
        return float("nan") if any(v != v for v in vals) else max(vals)


def max_opset(exporter: str) -> int:
    """The newest ONNX opset ``exporter`` writes in the installed PyTorch (``torch.onnx._constants``: PyTorch 2.13 writes
    <= 20 with the TorchScript exporter, <= 23 with the dynamo one); 20 when PyTorch does not say."""
    from torch.onnx import _constants

    name = "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET" if exporter == "torchscript" else "ONNX_MAX_OPSET"
    return int(getattr(_constants, name, 20))


def export_onnx(
    model: torch.nn.Module,
    path: str | os.PathLike,
    opset: int = OPSET,
    exporter: str = "torchscript",
    sample_hw: tuple[int, int] = (64, 64),
    attention: str = "native",
    fp16_safe: bool = False,
    size: tuple[int, int] | None = None,
    structure: str = "deploy",
) -> Path:
    """Export ``model`` to ONNX at ``path`` (atomic): DRSformer family with batch/H/W dynamic; a static-shape family
    (UDR-S2Former: sizes, top-k counts and sampling grids are fixed per resolution) at ``[1, 3, *size]``.

    Args:
        opset: ONNX opset (>= 17).
        exporter: ``"torchscript"`` (fast, ``torch.onnx.export(dynamo=False)``) or
            ``"dynamo"`` (``torch.export`` based; ~30 s for a small model on 2 cores).
        attention: ``"native"`` (plain ONNX ops) or ``"fused"`` (custom op
            ``drsedge::TopKSparseSoftmax``, see :mod:`drsedge.ops.topk_sparse_softmax.op`).
        fp16_safe: export LayerNorm and the q/k normalisation in the bounded form of
            :mod:`drsedge.models.fp16_safe` (same FP32 results; no ReduceL2), so FP16 engines
            need no FP32 layers. Recorded as metadata ``drsedge.fp16_safe = "1"``.

        size: ``(H, W)`` of a static-shape export (UDR-S2Former: multiples of 64; default the model's ``img_size``).
            One engine per resolution; the runtime tiles other frame sizes with it.
        structure: ``"deploy"`` (default): the DRSformer family exported from its re-parameterized copy
            (:func:`drsedge.models.reparam.reparameterize`: MSFN without Slice/Concat, q/k/v without chunk, LayerNorm
            affine folded into the next convs) and folded by ``onnxslim``; same numbers as the module (parity gate
            unchanged). ``"upstream"``: the trained module structure as is, not folded (the graph of earlier releases, for
            comparison). Recorded as metadata ``drsedge.structure``. UDR-S2Former has one structure (``"upstream"`` is refused).

    Raises:
        DrsedgeError: opset < 17 (UDR-S2Former: < 16, the TensorRT 8.5 form) or above :func:`max_opset`, an unknown exporter, a bad ``size``, or
            ``attention="fused"`` / ``fp16_safe`` for a family without TKSA.
    """
    static = is_static_family(model)
    min_opset = OPSET_MIN_STATIC if static else OPSET
    if opset < min_opset:
        raise DrsedgeError(f"opset {opset} is too old: drsedge exports this model with opset >= {min_opset}")
    if exporter not in EXPORTERS:
        raise DrsedgeError(f"unknown exporter {exporter!r}; use one of {EXPORTERS}")
    top = max_opset(exporter)
    if opset > top:
        raise DrsedgeError(f"opset {opset} is newer than this PyTorch's {exporter} exporter writes (<= {top}); use --opset {top} "
                           "or less (export.opset in a run config)")
    if structure not in STRUCTURES:
        raise DrsedgeError(f"unknown export structure {structure!r}; use one of {STRUCTURES}")
    if static:
        if structure != "deploy":
            raise DrsedgeError("--structure upstream: this static-shape family has one exported structure (nothing is re-parameterized); "
                               "drop --structure (export.structure)")
        return _export_static(model, path, opset, exporter, size, attention, fp16_safe)
    if size is not None:
        raise DrsedgeError("--size / export.size is for static-shape families (UDR-S2Former); DRSformer exports have dynamic H/W")
    if attention not in choices.ATTENTION_EXPORTS:
        raise DrsedgeError(f"unknown attention export {attention!r}; use 'native' or 'fused'")
    model = model.eval()
    if structure == "deploy":
        from drsedge.models.reparam import reparameterize

        model = reparameterize(model)  # a copy: the caller's model keeps its structure and modes
    set_topk_mode(model, "threshold")
    set_attention_impl(model, attention)
    set_fp16_safe(model, fp16_safe)
    x = torch.rand(1, 3, *sample_hw)
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

        m = load_onnx(tmp)
        if structure == "deploy":
            m = _fold(m)
        if fused:
            fused_op.attach_function(m, next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")))
        onnx.helper.set_model_props(m, {**{p.key: p.value for p in m.metadata_props}, **{
            META_ATTENTION: attention, META_FP16_SAFE: "1" if fp16_safe else "0", META_STRUCTURE: structure}})
        onnx.save(m, tmp)

    try:
        return atomic_write(path, write)
    finally:  # restore the caller's model (the deploy copy is dropped)
        set_topk_mode(model, "auto")
        set_attention_impl(model, "native")
        set_fp16_safe(model, False)


def _fold(m):
    """``onnxslim`` constant folding, shape-arithmetic and dead-node elimination, common subexpressions (the model's
    names, opset and metadata kept). ORT folds most of this itself at session build, so the gain is the file and the
    layer count that TensorRT and other runtimes see (measured in ``benchmarks/bench_export.py``)."""
    import onnxslim

    props = {p.key: p.value for p in m.metadata_props}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = onnxslim.slim(m)
    import onnx

    onnx.helper.set_model_props(out, props)
    _forget_derived_dims(out)
    return out


def _forget_derived_dims(m) -> None:
    """Drop the ``value_info`` that onnxslim's symbolic shape inference writes: its derived dimension names
    (``floor(DepthToSpace_629_o0__d2/2)``) and even its entry count differ between two exports of one checkpoint
    (measured: 3,348 vs 3,814 entries, 1,609 differing), so the file's sha256 would not repeat. Graph inputs and outputs
    keep their shapes; ONNX Runtime, TensorRT and the FP16/INT8 passes infer the rest."""
    del m.graph.value_info[:]


def is_static_family(model: torch.nn.Module) -> bool:
    """True for a model family exported at one static size (UDR-S2Former, AST: :attr:`drsedge.models.family.Family.static_export`)."""
    from drsedge.models.family import family_of_model

    fam = family_of_model(model)
    return fam is not None and fam.static_export


def _export_static(model, path, opset: int, exporter: str, size, attention: str, fp16_safe: bool) -> Path:
    """A static-shape family (:attr:`~drsedge.models.family.Family.static_export`) at ``[1, 3, H, W]``. UDR-S2Former: with
    the bisection ranking (no TopK over 51), no ScatterND, no cubic Resize; AST: shift masks folded for the size."""
    from drsedge.models.family import family_of_model

    fam = family_of_model(model)
    multiple = fam.size_multiple
    if attention != "native" or fp16_safe:
        raise DrsedgeError(f"{fam.label} has no TKSA: export it with --attention native and without --fp16-safe "
                           "(the fused top-k op and the FP16-safe form are DRSformer's)")
    from drsedge.data.images import check_frame_size

    h, w = size or model.img_size
    check_frame_size(h, w, "export size")
    if h <= 0 or w <= 0 or h % multiple or w % multiple:
        raise DrsedgeError(f"export size {h}x{w}: {fam.label} is exported at multiples of {multiple} (e.g. 256x256, 768x1280)")
    model = model.eval()
    mode = getattr(model, "rank_mode", None)
    if mode is not None:
        model.set_rank_mode("threshold")
    x = torch.rand(1, 3, h, w)

    def write(tmp: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if exporter == "dynamo":
                torch.onnx.export(model, (x,), None, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                  opset_version=max(opset, 18), dynamo=True, external_data=False).save(tmp)
            else:
                torch.onnx.export(model, (x,), tmp, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset,
                                  dynamo=False)
        import onnx

        m = load_onnx(tmp)
        onnx.helper.set_model_props(m, {**{p.key: p.value for p in m.metadata_props}, **{
            META_ATTENTION: "native", META_FP16_SAFE: "0", META_FAMILY: fam.name}})
        onnx.save(m, tmp)

    try:
        return atomic_write(path, write)
    finally:
        if mode is not None:
            model.set_rank_mode(mode)


META_FAMILY = "drsedge.family"
# UDR-S2Former's hard rank masks flip on float noise (ORT vs PyTorch: max 1.36e-3 on isolated pixels, mean 5.5e-6;
# ../shared/notes/udr-s2former.md §3), so its parity is gated on the mean and the PSNR, not the max.
STATIC_PARITY_MEAN_ABS = 1e-4
STATIC_PARITY_MIN_PSNR_DB = 60.0


def onnx_static_hw(onnx_path: str | os.PathLike) -> tuple[int, int] | None:
    """``(H, W)`` of an ONNX file whose image input has fixed spatial dims, else None."""
    m = load_onnx(onnx_path, external_data=False)
    dims = m.graph.input[0].type.tensor_type.shape.dim
    if len(dims) == 4 and dims[2].HasField("dim_value") and dims[3].HasField("dim_value"):
        return dims[2].dim_value, dims[3].dim_value
    return None


def static_square_side(onnx_path: str | os.PathLike) -> int | None:
    """The side in px of a static square ONNX input (UDR-S2Former export): calibration crops must have that size;
    None for a dynamic input (DRSformer), which takes any crop.

    Raises:
        DrsedgeError: a static input that is not square (the pipeline and the FP16 range check crop squares).
    """
    hw = onnx_static_hw(onnx_path)
    if hw is None:
        return None
    if hw[0] != hw[1]:
        raise DrsedgeError(f"{onnx_path}: static input {hw[0]}x{hw[1]}; calibration crops are square: "
                           "export at a square size (export.size, --size), e.g. 256x256")
    return hw[0]


def check_parity(
    model: torch.nn.Module, onnx_path: str | os.PathLike, sizes=((64, 64), (48, 80)), seed: int = 0, fused_kernel: str = "function"
) -> ParityResult:
    """|ORT - PyTorch| (max, mean) and PSNR on random inputs at each ``(H, W)`` in ``sizes`` (threshold top-k in PyTorch);
    a static-shape export is checked at its own size.

    ``fused_kernel`` picks how ORT runs fused nodes (see :func:`drsedge.runtime.ort_session`).
    """
    from drsedge.runtime.runners import OrtRunner

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runner = OrtRunner(onnx_path, fused_kernel=fused_kernel)
    if is_static_family(model):
        sizes = (onnx_static_hw(onnx_path),)
    model = model.eval()
    set_topk_mode(model, "threshold")
    g = torch.Generator().manual_seed(seed)
    out, mean, psnr = {}, {}, {}
    try:
        for h, w in sizes:
            x = torch.rand(1, 3, h, w, generator=g)
            with torch.no_grad():
                ref = model(x).numpy()
            d = np.abs(runner(x).numpy() - ref)
            key = f"{h}x{w}"
            out[key], mean[key] = float(d.max()), float(d.mean())
            mse = float(np.mean(d.astype(np.float64) ** 2))
            psnr[key] = float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse)) if np.isfinite(mse) else float("nan")
    finally:
        set_topk_mode(model, "auto")
    return ParityResult(out, mean, psnr)


def parity_ok(model: torch.nn.Module, parity: ParityResult) -> tuple[bool, str]:
    """The export gate: max abs <= 1e-4 (DRSformer family), or mean abs <= :data:`STATIC_PARITY_MEAN_ABS` and PSNR >=
    :data:`STATIC_PARITY_MIN_PSNR_DB` (UDR-S2Former, whose masks are discontinuous). NaN fails. Returns (ok, summary)."""
    from drsedge.models.family import family_of_model

    fam = family_of_model(model)
    if fam is not None and fam.parity == "mean_psnr":
        worst_mean = max(parity.mean_abs.values())
        worst_psnr = min(parity.psnr_db.values())
        ok = worst_mean <= STATIC_PARITY_MEAN_ABS and worst_psnr >= STATIC_PARITY_MIN_PSNR_DB
        return ok, (f"mean abs {worst_mean:.2e} (<= {STATIC_PARITY_MEAN_ABS:.0e}), PSNR {worst_psnr:.1f} dB "
                    f"(>= {STATIC_PARITY_MIN_PSNR_DB:.0f}), max abs {parity.worst:.2e} (rank masks flip on float noise)")
    return parity.worst <= 1e-4, f"max abs {parity.worst:.2e} (<= 1e-4)"
