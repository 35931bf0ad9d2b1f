"""Check stage: the drift report (PSNR/SSIM per stage vs ground truth, vs the previous stage and vs the FP32 ONNX,
latency, budgets) written as report.md / report.json / report.html. Used by ``drsedge check`` and the pipeline."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from drsedge.errors import DrsedgeError
from drsedge.run_config import CheckSection

from .result import StageResult

STAGE_NAMES = ("teacher", "student", "pruned", "onnx_fp32", "onnx_fp16", "onnx_int8")  # engines take the names they are given


@dataclass
class CheckInputs:
    """The stages to measure, each optional: PyTorch checkpoints (``teacher``, ``student``, ``pruned``), ONNX files
    (``onnx_fp32``, ``onnx_fp16``, ``onnx_int8``), TensorRT ``engines`` (name -> path; ``plugin``: the fused-op
    plugin library), and the paired test images ``pairs``."""

    pairs: list
    teacher: str | os.PathLike | None = None
    student: str | os.PathLike | None = None
    pruned: str | os.PathLike | None = None
    onnx_fp32: str | os.PathLike | None = None
    onnx_fp16: str | os.PathLike | None = None
    onnx_int8: str | os.PathLike | None = None
    engines: dict = field(default_factory=dict)
    plugin: str | None = None
    # rainy image folders (not the test set): when the INT8 stage breaks its budget, localise its drift layer by layer
    # against the FP32 ONNX on crops of them (:func:`localization_report`, written as localize.md)
    localize: list[str] | None = None


def run(options: CheckSection, inputs: CheckInputs, out_dir: str | os.PathLike, *, notes: list[str] | None = None,
        progress: bool = True) -> StageResult:
    """Measure every stage of ``inputs`` (:func:`drsedge.metrics.drift.evaluate_stages`) and write the report into
    ``out_dir``. FP16, INT8 and engines are also measured against the FP32 ONNX (fidelity, dB).

    Artifacts: ``report_md``, ``report_json`` (``report.html`` beside them). Metrics: ``ok``, ``failures`` and PSNR/SSIM
    per stage. ``detail["report"]``: the :class:`drsedge.metrics.drift.DriftReport`.

    Raises:
        DrsedgeError: no stage given; a latency size over the frame limit or a budget for no known stage (a typo),
            both before any model is loaded; the errors of the runners. A budget for a standard stage this check does
            not measure (``pruned`` without pruning) is noted in the report instead.
    """
    rep = evaluate(options, inputs, progress=progress)
    rep.notes.extend(notes or [])
    artifacts = {}
    failing = {s.name for s in rep.stages if not s.within_budget}
    if inputs.localize and failing:
        if "onnx_int8" in failing and inputs.onnx_fp32:
            from drsedge.fileio import atomic_write

            text = localization_report(str(inputs.onnx_fp32), str(inputs.onnx_int8), inputs.localize)
            artifacts["localize_md"] = atomic_write(Path(out_dir) / "localize.md", lambda tmp: Path(tmp).write_text(text + "\n"))
            rep.notes.append("INT8 broke its budget: its drift is localised layer by layer in localize.md.")
        if failing - {"onnx_int8"}:
            rep.notes.append("Localisation compares ONNX stages only (the INT8 stage against the FP32 ONNX); "
                             f"{', '.join(sorted(failing - {'onnx_int8'}))} not localised.")
    md, js = write_report(rep, out_dir)
    return StageResult({"report_md": md, "report_json": js, **artifacts},
                       {"ok": rep.ok, "failures": rep.failures(), **{s.name: {"psnr": s.psnr, "ssim": s.ssim} for s in rep.stages}},
                       {"report": rep})


def localization_report(ref: str, test: str | None, image_dirs: list[str], *, size: int = 128, limit: int = 4,
                        threshold: float = 0.05, top: int = 10, trt: str | None = None, plugin: str | None = None) -> str:
    """Markdown: where ``test`` (an INT8/FP16 ONNX, or ``ref``'s TensorRT engine with ``trt``) departs from the FP32
    ONNX ``ref``, layer by layer on ``limit`` center crops (``size`` px) of ``image_dirs``: the first layers whose relative
    error exceeds ``threshold`` (graph order), the ``top`` modules adding the most, and the ``--keep-float`` line that
    keeps the worst three in float (:mod:`drsedge.compress.localize`). Used by ``drsedge localize`` and, on a broken
    INT8 budget, by this stage.

    Raises:
        DrsedgeError: unreadable models or images, a held-out folder (:func:`drsedge.calibration.calib.calibration_set`).
    """
    from drsedge.calibration.calib import calibration_set
    from drsedge.compress.localize import first_offenders, localize, worst_modules

    images = calibration_set(image_dirs, size=size, limit=limit)
    drifts = localize(ref, test, images.inputs, threshold, trt, plugin)
    what = f"TensorRT {trt} engine of {test or ref}" if trt else test
    lines = [f"## Drift localisation: {what} vs {ref} ({len(images.files)} images, {size}x{size} crops, {len(drifts)} layers compared)", ""]
    first = first_offenders(drifts, threshold, top)
    lines += [f"First layers with relative error > {threshold} (graph order):", "", "| layer | module | op | rel. error |", "|---|---|---|---|"]
    lines += [f"| {d.node} | {d.module} | {d.op_type} | {d.rel_err:.4f} |" for d in first] or ["| – | – | – | – |"]
    lines += ["", "Modules adding the most error:", "", "| module | added rel. error |", "|---|---|"]
    worst = worst_modules(drifts, top)
    lines += [f"| {m} | {e:.4f} |" for m, e in worst]
    if worst:
        lines += ["", f"To keep the worst modules in float: drsedge quantize {ref} --calib ... -o ... --keep-float "
                  + " ".join(m for m, _ in worst[:3] if m)]
    return "\n".join(lines)


def evaluate(options: CheckSection, inputs: CheckInputs, *, progress: bool = True):
    """The :class:`drsedge.metrics.drift.DriftReport` of ``inputs`` under ``options`` (see :func:`run`)."""
    from drsedge.data.images import check_frame_size
    from drsedge.metrics.drift import Stage, evaluate_stages
    from drsedge.models.checkpoint import load_any
    from drsedge.models.info import model_info
    from drsedge.runtime.runners import OrtRunner, TorchRunner

    hw = tuple(options.latency_hw)
    check_frame_size(*hw, "latency size (--latency-size, check.latency_hw)")  # before any model is loaded
    measured = [n for n in STAGE_NAMES if getattr(inputs, n)] + list(inputs.engines)
    unknown = sorted(set(options.budgets) - set(measured) - set(STAGE_NAMES))
    if unknown:  # a typo would otherwise pass every run silently
        raise DrsedgeError(f"budget for {', '.join(unknown)}: no such stage (this check measures {', '.join(measured) or 'nothing'})")
    stages = []
    for name, path in (("teacher", inputs.teacher), ("student", inputs.student), ("pruned", inputs.pruned)):
        if path:
            model, _ = load_any(path)  # drsedge .safetensors or an official .pth
            info = model_info(model, *hw)
            stages.append(Stage(name, TorchRunner(model, name), "PyTorch eager CPU", {"params": info.params, "macs": info.macs, "path": str(path)}))
    for name, path, where in ([(n, p, "ONNX Runtime CPU") for n, p in (("onnx_fp32", inputs.onnx_fp32), ("onnx_fp16", inputs.onnx_fp16),
                                                                        ("onnx_int8", inputs.onnx_int8))]
                              + [(n, p, "TensorRT GPU") for n, p in inputs.engines.items()]):
        if not path:
            continue
        info = stages[-1].info if stages else {}
        parent = "onnx_fp32" if name != "onnx_fp32" and inputs.onnx_fp32 else None
        if where == "TensorRT GPU":
            from drsedge.runtime.runners import EngineRunner

            runner = EngineRunner(path, name, inputs.plugin)
        else:
            runner = OrtRunner(path, name)
        stages.append(Stage(name, runner, where, {"params": info.get("params"), "macs": info.get("macs"), "path": str(path)}, parent=parent))
    if not stages:
        raise DrsedgeError("nothing to check: give at least one of --teacher, --student, --onnx, --int8")
    rep = evaluate_stages(stages, pairs=inputs.pairs, tile=options.tile, budgets=options.budgets, latency_hw=hw,
                          latency_runs=options.latency_runs, progress=progress)
    absent = sorted(set(options.budgets) - set(measured))
    if absent:
        rep.notes.append(f"Budget(s) for {', '.join(absent)} not applied: that stage is not part of this run.")
    return rep


def write_report(rep, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``report.md``, ``report.json`` and the self-contained ``report.html`` into ``out_dir`` atomically."""
    from drsedge.fileio import atomic_write
    from drsedge.jsonio import dumps_strict
    from drsedge.metrics.drift import report_markdown
    from drsedge.metrics.report_html import write_html

    out_dir = Path(out_dir)
    md = atomic_write(out_dir / "report.md", lambda tmp: Path(tmp).write_text(report_markdown(rep)))
    js = atomic_write(out_dir / "report.json", lambda tmp: Path(tmp).write_text(dumps_strict(rep.to_dict(), indent=2)))
    write_html(rep, out_dir, rep.worst_outputs)
    return md, js


def fp16_range_notes(fp16: dict | None) -> list[str]:
    """The report's note on the export stage's FP16 range check (:func:`drsedge.stages.export.fp16_range`)."""
    if not fp16:
        return []
    if fp16["overflow_nodes"]:
        return [f"FP16: {fp16['overflow_nodes']} node(s) of the FP32 export exceed FP16's 65504 at 720p (peak "
                f"{fp16['peak_projected_720p']:.3g}; in {', '.join(fp16['modules'][:4])}): FP16 engines keep them in FP32 by "
                "default; `export: {fp16_safe: true}` removes the overflow (drsedge fp16-check)."]
    return [f"FP16: no node of the FP32 export exceeds 65504 at 720p (peak {fp16['peak_projected_720p']:.3g})."]
