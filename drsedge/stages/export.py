"""Export stage: ONNX export, the ONNX Runtime parity gate, the FP16 range check and the mixed-precision FP16 ONNX.

Used by ``drsedge export`` and the pipeline's ``export`` stage.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from drsedge.deploy_defaults import FRAME_HW
from drsedge.errors import DrsedgeError
from drsedge.run_config import ExportSection

from .result import StageResult


@dataclass
class ExportInputs:
    """``model``: checkpoint to export. ``fp16_images``: real rainy frames (never the test set) that find the FP32
    islands of the FP16 ONNX (``options.fp16``). ``range_images``: frames for the FP16 range check (None: skipped)."""

    model: str | os.PathLike
    fp16_images: list[str | os.PathLike] | None = None
    range_images: list[str | os.PathLike] | None = None


def run(options: ExportSection, inputs: ExportInputs, out: str | os.PathLike, *, fp16_out: str | os.PathLike | None = None,
        project_hw: tuple[int, int] = FRAME_HW, check_pyop: bool = False) -> StageResult:
    """Export ``inputs.model`` to the FP32 ONNX ``out`` and gate it on ONNX Runtime parity
    (:func:`drsedge.export.onnx_export.parity_ok`: max abs <= 1e-4 for DRSformer, mean/PSNR for UDR-S2Former); with
    ``options.fp16`` also write the mixed-precision ONNX ``fp16_out``.

    Artifacts: ``onnx`` (and ``onnx_fp16``). Metrics: parity max/mean abs per size, ``fp16`` (range check: overflowing
    nodes at ``project_hw``, peak), ``onnx_fp16`` (islands, FP16 nodes, PSNR vs FP32 per frame).

    Raises:
        DrsedgeError: FP16 requested without frames (before anything is written); parity broken or NaN (the file is
            removed). No artifact survives a failure.
    """
    from drsedge.export.onnx_export import check_parity, export_onnx, parity_ok, static_square_side
    from drsedge.models.checkpoint import load_any

    model, _ = load_any(inputs.model)
    if options.fp16 and not inputs.fp16_images:
        raise DrsedgeError("export.fp16 / --precision fp16 needs real rainy frames (--images DIR; not the test set) to find the FP32 islands")
    out = Path(out)
    written: list[Path] = []
    try:
        path = export_onnx(model, out, opset=options.opset, exporter=options.exporter, attention=options.attention,
                           fp16_safe=options.fp16_safe, size=tuple(options.size) if options.size else None, structure=options.structure)
        written.append(path)
        parity = check_parity(model, path)
        detail = {}
        if options.attention == "fused" and check_pyop:
            detail["parity_pyop"] = check_parity(model, path, fused_kernel="pyop")
        ok, summary = parity_ok(model, parity)
        if not ok:  # NaN fails too
            raise DrsedgeError(f"{out}: ONNX Runtime differs from PyTorch: {summary}; file removed")
        metrics = {"parity_max_abs": parity.max_abs, "parity_mean_abs": parity.mean_abs, "parity": summary}
        artifacts = {"onnx": path}
        if inputs.range_images:
            metrics["fp16"] = fp16_range(path, inputs.range_images, project_hw)
        if options.fp16:
            from drsedge.calibration.calib import calibration_set
            from drsedge.export.fp16 import convert_fp16

            dst = Path(fp16_out) if fp16_out else out.with_name(out.stem + "_fp16.onnx")
            frames = calibration_set(inputs.fp16_images, size=static_square_side(path), limit=options.fp16_frames)
            res = convert_fp16(path, dst, frames.inputs, [f.name for f in frames.files], project_hw)
            written.append(dst)
            artifacts["onnx_fp16"] = dst
            metrics["onnx_fp16"] = {"islands": len(res.islands), "fp16_nodes": res.fp16_nodes, "psnr_vs_fp32_calib": res.psnr_vs_fp32}
            detail["fp16"], detail["fp16_frames"] = res, len(frames.files)
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)  # no unchecked or partial artifact
        raise
    return StageResult(artifacts, metrics, detail)


def fp16_range(onnx_path: str | os.PathLike, images: list[str | os.PathLike], project_hw: tuple[int, int] = FRAME_HW) -> dict:
    """FP16 range of an FP32 ONNX on two whole frames of ``images``, sums over pixels projected to ``project_hw``
    (:func:`drsedge.export.fp16_range.fp16_ranges`; ``drsedge fp16-check``): overflowing nodes (> 65504), their
    modules, and the peak projected magnitude."""
    from drsedge.calibration.calib import calibration_set
    from drsedge.export.fp16_range import fp16_overflows, fp16_ranges
    from drsedge.export.onnx_export import static_square_side

    ranges = fp16_ranges(onnx_path, calibration_set(images, size=static_square_side(onnx_path), limit=2).inputs, project_hw)
    bad = fp16_overflows(ranges)
    return {"overflow_nodes": len(bad), "modules": sorted({r.module for r in bad}), "peak_projected_720p": max(r.projected for r in ranges)}
