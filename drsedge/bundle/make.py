"""``drsedge bundle``: one folder that builds, verifies and runs the engine on the device.

What the folder holds (``README.md`` inside says it to the person at the device):

* ``model.onnx``: the ONNX this TensorRT version must parse for this precision, picked by the build-path rules of
  ``build-engine`` (:mod:`drsedge.backend.trt.config`): FP32 ONNX for fp32 and, on weakly typed TensorRT, fp16; the
  FP16 ONNX on strongly typed TensorRT; the Q/DQ ONNX for int8. Before 10.7 a fused export also gets the
  function-stripped copy the line parses (``model.engine.plugin_only.onnx``).
* ``plugin/``: the plugin's sources, CMake project and ``build.sh`` (fused exports only).
* ``build_engine.sh``: builds the plugin, runs the ``trtexec`` line of :func:`drsedge.backend.trt.trtexec.trtexec_recipe`
  (the one ``build-engine --print-trtexec`` prints), writes ``model.engine`` and its sidecar with the device's GPU.
* ``golden/``: N real frames as raw little-endian float32 ``[1, 3, H, W]`` (``trtexec --loadInputs``), the FP32 ONNX
  outputs for them (ONNX Runtime) and, in the manifest, the tolerance: the fidelity this precision reached here
  (PSNR-Y against FP32 and max abs), less a stated margin.
* ``verify.py`` (:mod:`drsedge.bundle.verify_device`: Python >= 3.8 and numpy), ``manifest.json`` (sha256 of every file,
  drsedge version, target, precision, tolerance, the drift-report rows of this model).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from drsedge.errors import DrsedgeError

from .targets import Target, resolve_target

MARK = "drsedge_bundle"  # manifest key that says a folder is a bundle (only a bundle may be replaced)
# Fidelity limits: TensorRT FP32 engines use TF32 on Ampere and newer by default (BuilderFlag.TF32, NVIDIA "Reduced
# Precision"), so an FP32 engine is not bit-equal to ONNX Runtime FP32: the FP32 PSNR-Y tolerance is capped at 55 dB.
CEILING_DB = {"fp32": 55.0, "fp16": 50.0, "int8": 45.0}
MAX_ABS_FLOOR = {"fp32": 0.02, "fp16": 0.1, "int8": 0.25}
PLUGIN_SOURCES = ("CMakeLists.txt", "README.md", "build.sh", "include", "src")
PLUGIN_LIB = "plugin/build/libdrsedge_trt_plugin_static.so"  # self-registering: every TensorRT from 8.5


@dataclass
class BundleOptions:
    """One ``drsedge bundle`` call (see :func:`make_bundle`)."""

    model: str
    out: str
    target: str
    precision: str = "fp16"
    images: list[str] = field(default_factory=list)
    frames: int = 4
    size: tuple[int, int] | None = None
    attention: str = "native"  # checkpoints only: which export (native ops or the fused top-k op)
    margin_db: float = 3.0


@contextlib.contextmanager
def _cwd(path: Path):  # trtexec_recipe resolves the bundle's relative names; the CLI is single-threaded
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _run_dir_sources(run: Path) -> dict:
    m = json.loads((run / "manifest.json").read_text())
    st = m.get("stages", {})

    def art(stage, key):
        a = st.get(stage, {}).get("artifacts", {}).get(key)
        return run / a["path"] if a else None

    src = {"fp32": art("export", "onnx"), "fp16": art("export", "onnx_fp16"), "int8": art("quantize", "onnx"), "report": art("check", "report_json")}
    if src["fp32"] is None or not src["fp32"].is_file():
        raise DrsedgeError(f"{run}: the run's manifest.json records no FP32 ONNX (export stage); run `drsedge pipeline` to its export stage first")
    return src


def _sources(o: BundleOptions, work: Path) -> dict:
    """``{"fp32", "fp16", "int8", "report"}`` paths (None where the model has none), exporting a checkpoint first."""
    p = Path(o.model)
    if p.is_dir():
        if not (p / "manifest.json").is_file():
            raise DrsedgeError(f"{p}: a folder that is not a pipeline run directory (no manifest.json); give an FP32 ONNX, a checkpoint or a run dir")
        return _run_dir_sources(p)
    if p.suffix == ".onnx":
        from drsedge.onnx_graph import graph_float_types, has_qdq
        from drsedge.onnx_io import load_onnx

        m = load_onnx(p, external_data=False)
        if has_qdq(m) or "float16" in graph_float_types(m):
            raise DrsedgeError(f"{p}: give the FP32 ONNX (this one is {'Q/DQ INT8' if has_qdq(m) else 'FP16'}); the bundle derives the "
                               "precision's ONNX from it, or give the pipeline run directory")
        return {"fp32": p, "fp16": None, "int8": None, "report": None}
    from drsedge.export import export_onnx
    from drsedge.models.checkpoint import load_any

    model, _ = load_any(o.model)
    return {"fp32": export_onnx(model, work / "fp32.onnx", attention=o.attention), "fp16": None, "int8": None, "report": None}


def _precision_onnx(o: BundleOptions, src: dict, frames: list[np.ndarray], work: Path) -> Path:
    """The precision's ONNX (FP32, FP16 or Q/DQ INT8), derived from the FP32 one where the model dir has none. Its fidelity
    in ONNX Runtime sets the tolerance; the engine is built from it, except FP16 on weakly typed TensorRT (< 10.12),
    which ``build-engine`` builds from the FP32 ONNX with ``--fp16`` and the FP32 pins."""
    if o.precision == "fp32":
        return Path(src["fp32"])
    if src[o.precision] is not None and Path(src[o.precision]).is_file():
        return Path(src[o.precision])
    if o.precision == "fp16":
        from drsedge.export.fp16 import convert_fp16

        return Path(convert_fp16(src["fp32"], work / "fp16.onnx", frames).path)
    from drsedge.calibration.calib import CalibrationSet
    from drsedge.compress.quantize import quantize_onnx

    return Path(quantize_onnx(src["fp32"], work / "int8.onnx", CalibrationSet(inputs=frames, files=[], digest="bundle golden frames"), "nncf"))


def _fit(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """Center-crop or reflect-pad ``[1, 3, H0, W0]`` to ``[1, 3, h, w]``."""
    _, _, h0, w0 = x.shape
    top, left = max(0, (h0 - h) // 2), max(0, (w0 - w) // 2)
    x = x[:, :, top: top + h, left: left + w]
    ph, pw = h - x.shape[2], w - x.shape[3]
    if ph or pw:
        mode = "reflect" if ph < x.shape[2] and pw < x.shape[3] else "edge"
        x = np.pad(x, ((0, 0), (0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)), mode=mode)
    return np.ascontiguousarray(x, dtype=np.float32)


def _golden_size(o: BundleOptions, info: dict, profile) -> tuple[int, int]:
    if info["static_shape"]:
        st = tuple(info["static_shape"][2:])
        if o.size and tuple(o.size) != st:
            raise DrsedgeError(f"--size {o.size[0]}x{o.size[1]}: {o.model} is a static {st[0]}x{st[1]} export; drop --size")
        return st
    h, w = o.size or tuple(profile.opt[2:])
    if h % 8 or w % 8:
        raise DrsedgeError(f"--size {h}x{w}: sides must be multiples of 8 (the model downsamples 3 times)")
    if not (profile.min[2] <= h <= profile.max[2] and profile.min[3] <= w <= profile.max[3]):
        raise DrsedgeError(f"--size {h}x{w} is outside the engine's optimization profile {profile.shape_arg('min')} .. "
                           f"{profile.shape_arg('max')}")
    return h, w


def _read_frames(o: BundleOptions) -> tuple[list[np.ndarray], list[str]]:
    from drsedge.calibration.calib import calibration_set

    if not o.images:
        raise DrsedgeError("--images: give at least one folder of real frames for the golden set")
    if o.frames < 1:
        raise DrsedgeError(f"--frames {o.frames}: give at least 1")
    cal = calibration_set(o.images, size=None, limit=o.frames)  # held-out guard, decoding and NaN checks included
    return cal.inputs, [Path(f).name for f in cal.files]


def _check_out(o: BundleOptions) -> Path:
    from drsedge.fileio import refuse_inside

    out = Path(o.out)
    if out.exists():
        if not out.is_dir():
            raise DrsedgeError(f"{out}: exists and is not a folder; choose another -o")
        if any(out.iterdir()) and not _is_bundle(out):
            raise DrsedgeError(f"{out}: a folder that is not an earlier drsedge bundle; choose a new or empty -o")
    inputs = [*o.images]
    model = Path(o.model)
    if model.is_dir():
        inputs.append(str(model))
    elif model.exists() and out.resolve() in model.resolve().parents:  # replacing the bundle would delete the model
        raise DrsedgeError(f"{out}: the model {model} lies inside this folder; choose another -o")
    refuse_inside(out, [i for i in inputs if Path(i).is_dir()], "bundle folder")
    return out


def _is_bundle(d: Path) -> bool:
    try:
        return MARK in json.loads((d / "manifest.json").read_text())
    except (OSError, ValueError, TypeError):
        return False


def _tolerance(o: BundleOptions, measured: list[tuple[float, float]]) -> dict:
    psnrs = [p for p, _ in measured]
    worst = min(psnrs)
    if not np.isfinite(worst) and worst != float("inf"):
        raise DrsedgeError(f"the {o.precision} ONNX gives NaN/Inf on a golden frame here; fix the model before bundling")
    psnr_tol = min(worst, CEILING_DB[o.precision]) - o.margin_db
    abs_tol = min(1.0, max(2.0 * max(a for _, a in measured), MAX_ABS_FLOOR[o.precision]))
    return {"psnr_y_db": round(float(psnr_tol), 2), "max_abs": round(float(abs_tol), 5), "margin_db": o.margin_db,
            "rule": f"min(worst PSNR-Y here, {CEILING_DB[o.precision]} dB) - margin; max abs: max(2 x worst here, "
                    f"{MAX_ABS_FLOOR[o.precision]}), at most 1",
            "measured_here": [{"psnr_y_db": None if p == float("inf") else round(p, 3), "max_abs": round(a, 6)} for p, a in measured]}


def make_bundle(o: BundleOptions) -> Path:
    """Write the bundle folder ``o.out`` (atomically: a temporary folder, then a rename) and return it.

    Raises:
        DrsedgeError: an unknown target or precision, a model that is none of FP32 ONNX / checkpoint / run dir, no
            frames, a size outside the profile, an output folder that is not an earlier bundle or lies inside an
            input, or any check of :meth:`drsedge.backend.trt.config.BuildOptions.validate` for this TensorRT.
    """
    from drsedge.backend.trt import BuildOptions, Profile, build_path
    from drsedge.backend.trt.config import PRECISIONS
    from drsedge.backend.trt.onnx_prep import inspect
    from drsedge.backend.trt.profile import DEFAULT_SHAPES
    from drsedge.backend.trt.trtexec import trtexec_recipe

    if o.precision not in PRECISIONS:
        raise DrsedgeError(f"--precision {o.precision!r}: use one of {PRECISIONS}")
    if not (isinstance(o.margin_db, (int, float)) and math.isfinite(o.margin_db) and 0 <= o.margin_db <= 40):
        raise DrsedgeError(f"--margin {o.margin_db}: give a finite number of dB in 0..40")
    target = resolve_target(o.target)
    path = build_path(target.tensorrt)
    out = _check_out(o)
    frames_full, names = _read_frames(o)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}-", suffix=".tmp", dir=out.parent))
    try:
        work = tmp / ".work"
        work.mkdir()
        src = _sources(o, work)
        info32 = inspect(src["fp32"])
        profile = Profile(*(Profile.parse(s) for s in DEFAULT_SHAPES), info32["input"])
        h, w = _golden_size(o, info32, profile)
        frames = [_fit(x, h, w) for x in frames_full]
        measured_onnx = _precision_onnx(o, src, frames, work)
        chosen = Path(src["fp32"]) if o.precision == "fp16" and not path.strongly_typed else measured_onnx
        shutil.copyfile(chosen, tmp / "model.onnx")
        ort_onnx = "model.onnx"
        if chosen != measured_onnx:  # what verify.py --runner onnxruntime runs: the ONNX whose fidelity set the tolerance
            ort_onnx = f"reference_{o.precision}.onnx"
            shutil.copyfile(measured_onnx, tmp / ort_onnx)
        fused = bool(inspect(tmp / "model.onnx")["fused_nodes"])
        if fused:
            _copy_plugin(tmp / "plugin")
        bo = BuildOptions(onnx="model.onnx", engine="model.engine", precision=o.precision, plugin=PLUGIN_LIB if fused else None,
                          profile=profile, plugin_on_device=True)
        from drsedge.backend.trt.provenance import make_sidecar

        with _cwd(tmp):  # relative paths in the line and the sidecar: the bundle is moved to the device
            line, notes = trtexec_recipe(bo, path)
            side = make_sidecar(bo, "?", "?", "?", 0.0, build_path=path.to_dict())
        _write_golden(tmp, src["fp32"], frames, names)
        measured = _measure(tmp, measured_onnx, frames)
        manifest = _manifest(o, target, path, bo, info32, line, notes, fused, frames, names, measured, src, side)
        manifest["ort_onnx"] = ort_onnx
        _write_scripts(tmp, line, fused, target, manifest)
        shutil.rmtree(work)
        from drsedge.fileio import sha256

        manifest["files"] = {str(p.relative_to(tmp)): sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            old = out.with_name(f".{out.name}.{os.getpid()}.old")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _copy_plugin(dst: Path) -> None:
    from drsedge.ops.topk_sparse_softmax.cuda_harness import native_dir

    src = native_dir()
    dst.mkdir()
    for name in PLUGIN_SOURCES:
        s = src / name
        if s.is_dir():
            shutil.copytree(s, dst / name, ignore=shutil.ignore_patterns("build", "__pycache__"))
        else:
            shutil.copy2(s, dst / name)


def _write_golden(tmp: Path, fp32: Path, frames: list[np.ndarray], names: list[str]) -> None:
    from drsedge.runtime.onnx_np import ort_session

    g = tmp / "golden"
    g.mkdir()
    s = ort_session(fp32, threads=1)
    name_in = s.get_inputs()[0].name
    for i, x in enumerate(frames):
        y = s.run(None, {name_in: x})[0]
        if not np.isfinite(y).all():
            raise DrsedgeError(f"{fp32}: the FP32 output on golden frame {names[i]} holds NaN/Inf; fix the model before bundling")
        x.astype("<f4").tofile(g / f"frame_{i:02d}.in.f32")
        np.ascontiguousarray(y, dtype="<f4").tofile(g / f"frame_{i:02d}.ref.f32")


def _measure(tmp: Path, chosen: Path, frames: list[np.ndarray]) -> list[tuple[float, float]]:
    """Fidelity of the precision's ONNX (ONNX Runtime) against the FP32 reference, per golden frame."""
    from drsedge.runtime.onnx_np import ort_session

    from .verify_device import fidelity

    s = ort_session(chosen, threads=1)
    name_in = s.get_inputs()[0].name
    out = []
    for i, x in enumerate(frames):
        ref = np.fromfile(tmp / "golden" / f"frame_{i:02d}.ref.f32", dtype="<f4").reshape(x.shape[0], 3, *x.shape[2:])
        out.append(fidelity(s.run(None, {name_in: x})[0], ref))
    return out


def _manifest(o, target: Target, path, bo, info32, line, notes, fused, frames, names, measured, src, side) -> dict:
    from drsedge import __version__

    report = None
    if src.get("report") is not None and Path(src["report"]).is_file():
        rep = json.loads(Path(src["report"]).read_text())
        report = [{k: s.get(k) for k in ("name", "runtime", "psnr", "ssim", "delta_vs_teacher", "delta_vs_prev", "psnr_vs_parent",
                                          "delta_vs_teacher_ci", "latency")} for s in rep.get("stages", [])]
    side = {k: v for k, v in side.items() if k not in ("tensorrt_version", "gpu_name", "compute_capability", "built_at", "build_seconds")}
    return {
        MARK: 1,
        "drsedge_version": __version__,
        "target": target.to_dict(),
        "build_path": path.to_dict(),
        "precision": o.precision,
        "model": str(o.model),
        "input": info32["input"],
        "output": _output_name(src["fp32"]),
        "dynamic": not info32["static_shape"],
        "profile": {"min": list(bo.profile.min), "opt": list(bo.profile.opt), "max": list(bo.profile.max)},
        "onnx": "model.onnx",
        "parsed_onnx": "model.engine.plugin_only.onnx" if path.strip_local_functions and fused else "model.onnx",
        "engine": "model.engine",
        "plugin": PLUGIN_LIB if fused else None,
        "plugin_flag": path.trtexec_plugin_flag if fused else None,
        "trtexec": line,
        "notes": notes,
        "golden": [{"name": f"frame_{i:02d}", "source": names[i], "input": f"golden/frame_{i:02d}.in.f32",
                    "reference": f"golden/frame_{i:02d}.ref.f32", "shape": list(x.shape)} for i, x in enumerate(frames)],
        "tolerance": _tolerance(o, measured),
        "drift_report": report,
        "sidecar": side,
    }


def _output_name(onnx_path) -> str:
    from drsedge.onnx_io import load_onnx

    return load_onnx(onnx_path, external_data=False).graph.output[0].name


def _write_scripts(tmp: Path, line: str, fused: bool, target: Target, manifest: dict) -> None:
    from .device_text import build_script, readme

    shutil.copyfile(Path(__file__).with_name("verify_device.py"), tmp / "verify.py")
    (tmp / "build_engine.sh").write_text(build_script(line, fused, target))
    (tmp / "README.md").write_text(readme(manifest, fused))
    for f in ("build_engine.sh", "verify.py"):
        (tmp / f).chmod(0o755)
