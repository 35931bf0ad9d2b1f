"""``drsedge`` command line: a thin layer over the library (see README for every command)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml

from drsedge.errors import DrsedgeError

PRESETS = ("drsformer", "drsformer-nomefc", "student")
EXIT_BUDGET = 3


def _kv(items: list[str] | None) -> dict:
    out = {}
    for it in items or []:
        if "=" not in it:
            raise DrsedgeError(f"--model {it!r}: expected KEY=VALUE, e.g. --model dim=16 --model 'num_blocks=[1,2,2,2]'")
        k, v = it.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def _model_config(preset: str, overrides: list[str] | None):
    from drsedge.models.config import ModelConfig, student_config, teacher_config

    kv = _kv(overrides)
    if preset == "student":
        return student_config(**kv)
    if preset == "drsformer-nomefc":
        kv.setdefault("mefc", False)
    return teacher_config(**kv) if kv else ModelConfig()


def _train_cfg(a, **extra):
    from drsedge.compress.train import TrainConfig

    return TrainConfig(steps=a.steps, batch_size=a.batch_size, patch=a.patch, lr=a.lr, seed=a.seed, checkpoint_every=a.checkpoint_every, **extra)


def _check_out_dir(out: str) -> None:
    if Path(out).exists() and not Path(out).is_dir():
        raise DrsedgeError(f"{out}: --out must be a folder, and this is a file; choose another path")


# -- argument types: impossible numbers are refused by argparse in one line ----------------------
def _int_type(lo: int, multiple: int = 1):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if v < lo or v % multiple:
            raise argparse.ArgumentTypeError(f"{v} must be >= {lo}" + (f" and a multiple of {multiple}" if multiple > 1 else ""))
        return v

    parse.__name__ = "int"
    return parse


def _float_type(lo: float = 0.0, inclusive: bool = True, hi: float | None = None):
    import math

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(v) or v < lo or (not inclusive and v == lo) or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"{text} must be a finite number {'>=' if inclusive else '>'} {lo}" + (f" and <= {hi}" if hi is not None else ""))
        return v

    parse.__name__ = "float"
    return parse


POS = _int_type(1)
NONNEG = _int_type(0)
MULT8 = _int_type(8, 8)


# -- commands --------------------------------------------------------------------------------------
def cmd_info(a) -> int:
    from drsedge.models.checkpoint import load_any
    from drsedge.models.info import model_info

    if a.checkpoint:
        model, cfg = load_any(a.checkpoint)
    else:
        cfg = _model_config(a.preset, a.model)
        model = cfg.build()
    h, w = a.size
    info = model_info(model, h, w)
    d = {"config": cfg.to_dict(), "params": info.params, "macs": info.macs, "gmacs": round(info.gmacs, 3), "height": h, "width": w}
    if a.json:
        print(json.dumps(d, indent=2))
    else:
        print(f"config: {json.dumps(cfg.to_dict())}")
        print(f"params: {info.params:,}")
        print(f"MACs @ {h}x{w}: {info.macs:,} ({info.gmacs:.2f} GMACs)")
    return 0


def cmd_metrics(a) -> int:
    from drsedge.metrics.folder import evaluate_folders

    m = evaluate_folders(a.pred_dir, a.target_dir, a.convention)
    if a.json:
        print(json.dumps(m.to_dict(), indent=2))
    else:
        for name, v in m.per_image.items():
            print(f"{name}: PSNR {v['psnr']:.2f} dB  SSIM {v['ssim']:.4f}")
        print(f"mean over {len(m.per_image)} images ({a.convention}): PSNR {m.psnr:.2f} dB  SSIM {m.ssim:.4f}")
    return 0


def _samples(a, paired_only: bool):
    from drsedge.data.folders import find_pairs, find_unlabeled
    from drsedge.data.sampling import load_samples

    from drsedge.data.heldout import guard_not_held_out

    guard_not_held_out(list(a.train or []) + list(getattr(a, "unlabeled", None) or []), "training")
    pairs = [p for d in a.train or [] for p in find_pairs(d)]
    unl = [] if paired_only else [f for d in a.unlabeled or [] for f in find_unlabeled(d)]
    return load_samples(pairs, unl)


def cmd_train_teacher(a) -> int:
    import torch

    from drsedge.compress.train import train
    from drsedge.data.sampling import CropSampler
    from drsedge.models.checkpoint import save_model

    _check_out_dir(a.out)
    cfg = _model_config(a.preset, a.model)
    tcfg = _train_cfg(a)
    torch.manual_seed(a.seed)
    model = cfg.build()
    res = train(model, CropSampler(_samples(a, True), tcfg.patch, tcfg.batch_size, tcfg.seed), tcfg, a.out, resume=a.resume, stale="refuse")
    path = save_model(Path(a.out) / "model.safetensors", model, cfg)
    print(f"teacher: {path} (step {res['step']}, loss {res['loss']:.4f})")
    return 0


def cmd_distill(a) -> int:
    import torch

    from drsedge.compress.train import train
    from drsedge.data.sampling import CropSampler
    from drsedge.models.checkpoint import load_any, save_model

    _check_out_dir(a.out)
    teacher, _ = load_any(a.teacher)
    cfg = _model_config("student", a.model)
    tcfg = _train_cfg(a, lambda_kd=a.lambda_kd, feature_weight=a.feature_weight, feature_levels=a.feature_levels)
    torch.manual_seed(a.seed)
    model = cfg.build()
    res = train(model, CropSampler(_samples(a, False), tcfg.patch, tcfg.batch_size, tcfg.seed), tcfg, a.out, teacher=teacher, resume=a.resume, stale="refuse")
    path = save_model(Path(a.out) / "model.safetensors", model, cfg)
    print(f"student: {path} (step {res['step']}, loss {res['loss']:.4f})")
    return 0


def cmd_synth_rain(a) -> int:
    from drsedge.data.synth_rain import synth_rain

    res = synth_rain(a.clean, a.output, preset=a.preset, per_image=a.per_image, seed=a.seed, limit=a.limit)
    print(f"synth-rain: {res['pairs']} pairs ({res['preset']}, seed {res['seed']}) in {res['output']}/input + target")
    return 0


def cmd_export(a) -> int:
    from drsedge.export.onnx_export import check_parity, export_onnx
    from drsedge.models.checkpoint import load_any

    from drsedge.fileio import refuse_overwrite

    refuse_overwrite(a.output, [a.model], "ONNX output")
    if a.precision == "fp16" and not a.images:
        raise DrsedgeError("--precision fp16 needs --images DIR: real rainy frames (not the test set) to find the FP32 islands")
    model, _ = load_any(a.model)
    path = export_onnx(model, a.output, opset=a.opset, exporter=a.exporter, attention=a.attention, fp16_safe=a.fp16_safe)
    try:
        parity = check_parity(model, path)
        if a.attention == "fused" and a.check_pyop:
            parity_pyop = check_parity(model, path, fused_kernel="pyop")
    except BaseException:
        path.unlink(missing_ok=True)  # no unchecked artifact
        raise
    if a.attention == "fused" and a.check_pyop:
        print("ORT custom-op (pyop) kernel vs PyTorch max abs: " + ", ".join(f"{k} {v:.2e}" for k, v in parity_pyop.max_abs.items()))
    print(f"onnx: {path}; ORT vs PyTorch max abs: " + ", ".join(f"{k} {v:.2e}" for k, v in parity.max_abs.items()))
    if not parity.worst <= 1e-4:  # NaN fails too
        path.unlink()
        raise DrsedgeError(f"{a.output}: ONNX Runtime differs from PyTorch by {parity.worst:.2e} (> 1e-4); file removed")
    if a.precision == "fp16":
        from drsedge.calibration.calib import calibration_set
        from drsedge.export.fp16 import convert_fp16

        fp32_path = path.with_name(path.stem + "_fp32.onnx")
        path.replace(fp32_path)
        try:
            images = calibration_set(a.images, size=None, limit=a.limit)
            res = convert_fp16(fp32_path, path, images.inputs, [f.name for f in images.files], _hw(a.project))
        except BaseException:
            fp32_path.unlink(missing_ok=True)  # no artifact of a failed export
            raise
        print(f"fp16 onnx: {path} (FP32 reference kept as {fp32_path}); {res.fp16_nodes}/{res.total_nodes} nodes FP16, "
              f"FP32 islands: {len(res.islands)}; vs FP32 ONNX on {len(images.files)} real frames (ONNX Runtime CPU): "
              f"PSNR {res.mean_psnr:.1f} dB, max |err| {max(res.max_abs_vs_fp32.values()):.2e}")
    return 0


def _hw(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise DrsedgeError(f"{text!r}: expected HxW, e.g. 720x1280") from None
    if h <= 0 or w <= 0:
        raise DrsedgeError(f"{text!r}: H and W must be > 0")
    return h, w


def cmd_fp16_check(a) -> int:
    from drsedge.calibration.calib import calibration_set
    from drsedge.debug.fp16_range import FP16_MAX, fp16_overflows, fp16_ranges

    ph, pw = _hw(a.project)
    images = calibration_set(a.images, size=None, limit=a.limit)
    ranges = fp16_ranges(a.onnx, images.inputs, (ph, pw))
    bad = fp16_overflows(ranges)
    top = sorted(ranges, key=lambda r: -r.projected)[:10]
    hw = {f"{x.shape[2]}x{x.shape[3]}" for x in images.inputs}
    print(f"## FP16 range: {a.onnx} ({len(images.files)} images at {', '.join(sorted(hw))}; {len(ranges)} nodes; projected to {ph}x{pw})")
    print("\n| node | module | op | peak | projected | x FP16 max |\n|---|---|---|---|---|---|")
    for r in top:
        print(f"| {r.node} | {r.module} | {r.op_type} | {r.peak:.4g} | {r.projected:.4g} | {r.projected / FP16_MAX:.2f} |")
    if bad:
        print(f"drsedge: {len(bad)} node(s) exceed the FP16 range (65504): keep them in FP32 (build-engine default) "
              f"or re-export with `drsedge export --fp16-safe`", file=sys.stderr)
        return EXIT_BUDGET
    print("no node exceeds the FP16 range")
    return 0


def cmd_quantize(a) -> int:
    from drsedge.calibration.calib import calibration_set
    from drsedge.compress.quantize import count_qdq, quantize_onnx

    from drsedge.fileio import refuse_overwrite

    refuse_overwrite(a.output, [a.onnx], "INT8 output")
    calib = calibration_set(a.calib, size=a.size, limit=a.limit)
    t0 = time.time()
    if a.budget is not None:
        from drsedge.compress.keep_float import search_keep_float
        from drsedge.data.folders import find_pairs

        if not a.val:
            raise DrsedgeError("--budget needs --val DIR: paired validation images (not the test set)")
        res = search_keep_float(a.onnx, a.output, calib, find_pairs(a.val, a.val_limit), a.budget, a.backend,
                                a.quantize_depthwise, a.keep_float, a.max_steps, a.candidates, granularity=a.granularity)
        print(res.table())
        if not res.ok:
            print(f"drsedge: no INT8 model within -{a.budget} dB after {len(res.steps) - 1} step(s); nothing written "
                  "(raise --max-steps or the budget, or ship FP32/FP16)", file=sys.stderr)
            return EXIT_BUDGET
        print(f"int8: {a.output} ({a.backend}, keep-float {res.steps[-1].keep_float or 'none'}, {time.time() - t0:.0f} s)")
        return 0
    path = quantize_onnx(a.onnx, a.output, calib, a.backend, a.quantize_depthwise, a.keep_float)
    print(f"int8: {path} ({a.backend}, {len(calib.files)} calibration images, {time.time() - t0:.0f} s, {count_qdq(path)})")
    return 0


def cmd_check(a) -> int:
    from drsedge.data.folders import find_pairs
    from drsedge.pipeline import run_check, write_report

    budgets = {k: float(v) for k, v in _kv(a.budget).items()}
    cc = {"tile": a.tile, "latency_hw": a.latency_size, "latency_runs": a.latency_runs, "budgets": budgets}
    engines = {k: str(v) for k, v in _kv(a.engine).items()}
    rep = run_check(a.teacher, a.student, a.onnx, a.int8, find_pairs(a.test, a.limit), cc, engines=engines, plugin=a.plugin,
                    onnx_fp16=a.fp16)
    md, js = write_report(rep, a.out)
    print(md.read_text())
    print(f"wrote {md} and {js}")
    if a.localize and not rep.ok:
        failing = {s.name for s in rep.stages if not s.within_budget}
        if "onnx_int8" in failing and a.onnx:
            print(_localize_report(a.onnx, a.int8, a.localize, 128, 4, 0.05, 10))
        if failing - {"onnx_int8"}:
            print("drsedge: --localize compares ONNX stages only (the INT8 stage against the FP32 ONNX)", file=sys.stderr)
    if not rep.ok:
        print("drsedge: budget broken: " + "; ".join(rep.failures()), file=sys.stderr)
        return EXIT_BUDGET
    return 0


def _run_pipeline(cfg: dict) -> int:
    from drsedge.pipeline import Pipeline

    t0 = time.time()
    pipe = Pipeline(cfg)
    manifest = pipe.run()
    check = manifest["stages"]["check"]
    print((pipe.run_dir / check["artifacts"]["report_md"]["path"]).read_text())
    print(f"run directory: {pipe.run_dir} ({time.time() - t0:.0f} s); manifest: {pipe.manifest_path}")
    if not check["metrics"]["ok"]:
        print("drsedge: budget broken: " + "; ".join(check["metrics"]["failures"]), file=sys.stderr)
        return EXIT_BUDGET
    return 0


def _overrides(a) -> dict:
    o: dict = {}
    if a.run_dir:
        o["run_dir"] = a.run_dir
    if a.data:
        o.setdefault("data", {})["root"] = str(Path(a.data).resolve())
    if getattr(a, "teacher", None):
        t = a.teacher
        o["teacher"] = {"checkpoint": t if t.startswith("shipped:") else str(Path(t).resolve())}
    if getattr(a, "train_teacher", False):
        o["teacher"] = {"checkpoint": None}
        o["student"] = {"init": None}
    return o


def cmd_pipeline(a) -> int:
    from drsedge.pipeline import load_run_config

    return _run_pipeline(load_run_config(a.config, _overrides(a)))


def cmd_demo(a) -> int:
    from drsedge.pipeline import DEMO_CONFIG, load_run_config

    return _run_pipeline(load_run_config(DEMO_CONFIG, _overrides(a)))


def cmd_derain(a) -> int:
    from drsedge.data.folders import find_unlabeled
    from drsedge.data.images import read_image, to_tensor, write_image
    from drsedge.models.checkpoint import load_any
    from drsedge.runtime.runners import OrtRunner, TorchRunner
    from drsedge.runtime.tiling import restore

    from drsedge.fileio import refuse_overwrite

    files = find_unlabeled(a.input)
    refuse_overwrite(a.output, [a.input, files[0].parent], "output folder")
    stems: dict[str, Path] = {}
    for f in files:
        if f.stem in stems:
            raise DrsedgeError(f"{f}: same name as {stems[f.stem]}; both would be written to {a.output}/{f.stem}.png; rename one")
        stems[f.stem] = f
    if a.tile is not None and a.tile_overlap >= a.tile:
        raise DrsedgeError(f"--tile-overlap {a.tile_overlap} must be smaller than --tile {a.tile}")
    runner = OrtRunner(a.model) if str(a.model).endswith(".onnx") else TorchRunner(load_any(a.model)[0], str(a.model))
    for f in files:
        write_image(Path(a.output) / f"{f.stem}.png", restore(runner, to_tensor(read_image(f)), tile=a.tile, overlap=a.tile_overlap))
    print(f"wrote {len(files)} images to {a.output}")
    return 0


def cmd_prune(a) -> int:
    from drsedge.compress.prune import prune_model, ratio_for_macs, taylor_gradients
    from drsedge.compress.train import train
    from drsedge.data.folders import find_pairs
    from drsedge.data.images import read_image, to_tensor, to_uint8
    from drsedge.data.sampling import CropSampler
    from drsedge.metrics.psnr_ssim import psnr_y
    from drsedge.models.checkpoint import load_any, save_model
    from drsedge.models.info import model_info
    from drsedge.runtime.runners import TorchRunner
    from drsedge.runtime.tiling import restore

    from drsedge.fileio import refuse_overwrite

    refuse_overwrite(a.output, [a.model, a.teacher], "pruned model")
    model, cfg = load_any(a.model)
    hw = tuple(a.size)
    pairs = find_pairs(a.test, a.limit) if a.test else []

    def psnr(m) -> float | None:
        if not pairs:
            return None
        r = TorchRunner(m)
        vals = [psnr_y(to_uint8(restore(r, to_tensor(read_image(p.rainy)))), to_uint8(to_tensor(read_image(p.clean)))) for p in pairs]
        return sum(vals) / len(vals)

    if a.target_gmacs is not None:
        ratio = ratio_for_macs(model, cfg, int(a.target_gmacs * 1e9), hw, a.scope)
    else:
        ratio = a.ratio
    teacher = load_any(a.teacher)[0] if a.teacher else None
    samples = _samples(a, paired_only=False) if (a.train or a.unlabeled) else []
    if a.importance == "taylor" and not samples:
        raise DrsedgeError("taylor importance needs --train or --unlabeled images to compute gradients")
    rows = [("original", model_info(model, *hw), psnr(model))]
    steps = max(1, a.iterations)
    for it in range(1, steps + 1):
        step_ratio = 1 - (1 - ratio) ** (1 / steps)  # equal fraction per iteration, compounding to `ratio`
        if a.importance == "taylor":
            x, _, _ = CropSampler(samples, a.patch, a.batch_size, a.seed).batch(10_000 + it)
            ref = teacher(x).detach() if teacher is not None else model(x).detach()
            taylor_gradients(model, x, ref)
        model, cfg = prune_model(model, cfg, step_ratio, a.importance, a.scope)
        rows.append((f"pruned step {it}", model_info(model, *hw), psnr(model)))
        if teacher is not None and samples and a.steps > 0:
            tcfg = _train_cfg(a, lambda_kd=1.0, zero_init_output=False)
            train(model, CropSampler(samples, tcfg.patch, tcfg.batch_size, tcfg.seed), tcfg, Path(a.output).parent / f"prune_ft{it}", teacher=teacher)
            rows.append((f"fine-tuned step {it}", model_info(model, *hw), psnr(model)))
    path = save_model(a.output, model, cfg, {"pruned_from": str(a.model), "ratio": ratio, "importance": a.importance})
    print(f"| model | params | GMACs @ {hw[0]}x{hw[1]} | PSNR-Y (dB){' on ' + str(a.test) if pairs else ''} |")
    print("|---|---|---|---|")
    for name, info, p in rows:
        print(f"| {name} | {info.params:,} | {info.gmacs:.3f} | {'–' if p is None else f'{p:.2f}'} |")
    print(f"pruned model: {path} ({'+'.join(a.scope)} ratio {ratio:.3f}, {a.importance} importance, {steps} step(s))")
    return 0


def _localize_report(ref: str, test: str | None, image_dirs: list[str], size: int, limit: int, threshold: float, top: int,
                     trt: str | None = None, plugin: str | None = None) -> str:
    from drsedge.calibration.calib import calibration_set
    from drsedge.debug.localize import first_offenders, localize, worst_modules

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


def cmd_localize(a) -> int:
    if a.test is None and a.trt is None:
        raise DrsedgeError("localize: give TEST.onnx (ONNX Runtime) or --trt fp32|fp16|int8 (TensorRT engine, GPU)")
    print(_localize_report(a.ref, a.test, a.images, a.size, a.limit, a.threshold, a.top, a.trt, a.plugin))
    return 0


def cmd_compare(a) -> int:
    from drsedge.calibration.calib import calibration_set
    from drsedge.debug.compare import compare_outputs

    if a.test is None and a.trt is None:
        raise DrsedgeError("compare: give TEST.onnx (ONNX Runtime) or --trt fp32|fp16|int8 (TensorRT engine, GPU)")
    images = calibration_set(a.images, size=a.size, limit=a.limit)
    r = compare_outputs(a.ref, images.inputs, a.test, a.trt, a.plugin, a.atol, a.rtol)
    what = f"TensorRT {a.trt} ({a.test or a.ref})" if a.trt else a.test
    print(f"{what} vs ONNX Runtime {a.ref} on {len(images.files)} real images: max |err| {r.max_abs:.3g}, mean {r.mean_abs:.3g} "
          f"(Polygraphy simple compare, atol {a.atol:g}, rtol {a.rtol:g}): {'PASS' if r.passed else 'FAIL'}")
    return 0 if r.passed else EXIT_BUDGET


def cmd_build_engine(a) -> int:
    from drsedge.backend.trt import BuildOptions, Profile, build_path, trtexec_command

    prof = Profile(Profile.parse(a.min_shape), Profile.parse(a.opt_shape), Profile.parse(a.max_shape))
    o = BuildOptions(
        onnx=a.onnx, engine=a.output, precision=a.precision, plugin=a.plugin, profile=prof, timing_cache=a.timing_cache,
        optimization_level=a.optimization_level, workspace_mib=a.workspace, hardware_compatible=a.hardware_compatibility,
        version_compatible=a.version_compatible, fp16_keep_fp32=not a.fp16_all_layers,
    )
    if a.print_trtexec:
        from drsedge.backend.trt.loader import plugin_only_path
        from drsedge.backend.trt.onnx_prep import write_plugin_only_copy

        path = build_path(a.trt_version)
        info = o.validate(path)
        onnx = None
        if path.strip_local_functions and info["fused_nodes"]:
            onnx = str(write_plugin_only_copy(o.onnx, plugin_only_path(o.engine)))
            print(f"# TensorRT {path.label} parses a model-local function before the plugin registry: "
                  f"build from the function-stripped copy {onnx}", file=sys.stderr)
        print(trtexec_command(o, path, onnx))
        return 0
    from drsedge.backend.trt.loader import build_engine

    engine, side = build_engine(o)
    print(f"engine: {engine} (TensorRT {side['tensorrt_version']}, {'strongly' if side['build_path']['strongly_typed'] else 'weakly'} typed, "
          f"{side['gpu_name']} sm_{side['compute_capability']}, {side['precision']}, {side['plugin_layers']} plugin layer(s), "
          f"{side['build_seconds']} s); sidecar: {engine}.json")
    return 0


# -- parser ----------------------------------------------------------------------------------------
def _add_compare_args(p):
    p.add_argument("ref", help="reference ONNX, run in ONNX Runtime (e.g. FP32)")
    p.add_argument("test", nargs="?", help="ONNX to examine in ONNX Runtime (e.g. INT8 Q/DQ); with --trt: the ONNX to build from")
    p.add_argument("--trt", choices=("fp32", "fp16", "int8"), help="examine a TensorRT engine of this precision (GPU)")
    p.add_argument("--plugin", help="TopKSparseSoftmax plugin library (fused exports with --trt)")
    p.add_argument("--images", nargs="+", required=True, metavar="DIR", help="rainy images (not the held-out test set)")
    p.add_argument("--size", type=MULT8, default=128, help="center crop side (multiple of 8)")
    p.add_argument("--limit", type=POS, default=4)


def _add_train_args(p, steps: int, out: bool = True):
    p.add_argument("--train", nargs="+", metavar="DIR", help="paired folders (input/+target/, rain/+norain/, rain-N/norain-N)")
    if out:
        p.add_argument("--out", required=True, help="output folder (model.safetensors, train_state.pt)")
    p.add_argument("--model", action="append", metavar="KEY=VALUE", help="model option override, e.g. dim=16")
    p.add_argument("--steps", type=NONNEG, default=steps)
    p.add_argument("--batch-size", type=POS, default=4)
    p.add_argument("--patch", type=MULT8, default=64, help="crop size in px")
    p.add_argument("--lr", type=_float_type(0.0, inclusive=False), default=3e-4)
    p.add_argument("--seed", type=NONNEG, default=0)
    p.add_argument("--checkpoint-every", type=POS, default=100)
    p.add_argument("--resume", action="store_true", help="continue from OUT/train_state.pt")


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="drsedge", description="DRSformer deraining: distill, export, quantize and measure the drift of every step.")
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    p = sub.add_parser("info", help="params and MACs of a model config or checkpoint")
    p.add_argument("--preset", choices=PRESETS, default="drsformer")
    p.add_argument("--model", action="append", metavar="KEY=VALUE")
    p.add_argument("--checkpoint", help="read the config from a checkpoint instead")
    p.add_argument("--size", type=POS, nargs=2, default=[256, 256], metavar=("H", "W"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_info)

    p = sub.add_parser("metrics", help="PSNR-Y/SSIM-Y of a prediction folder against a target folder")
    p.add_argument("pred_dir")
    p.add_argument("target_dir")
    p.add_argument("--convention", choices=("matlab", "basicsr"), default="matlab")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_metrics)

    p = sub.add_parser("train-teacher", help="train a DRSformer teacher (L1, AdamW, cosine restarts)")
    p.add_argument("--preset", choices=PRESETS, default="drsformer")
    _add_train_args(p, 1000)
    p.set_defaults(fn=cmd_train_teacher)

    p = sub.add_parser("distill", help="distill a compact student from a teacher on paired and unlabeled images")
    p.add_argument("--teacher", required=True, help="teacher checkpoint (.safetensors from drsedge, or an official .pth)")
    p.add_argument("--unlabeled", nargs="+", metavar="DIR", help="rainy images without ground truth")
    p.add_argument("--lambda-kd", type=_float_type(), default=1.0, help="weight of L1(student, teacher)")
    p.add_argument("--feature-weight", type=_float_type(), default=0.0, help="weight of the feature-matching term (0: off)")
    p.add_argument("--feature-levels", nargs="+", default=["encoder_level2", "latent"])
    _add_train_args(p, 1000)
    p.set_defaults(fn=cmd_distill)

    from drsedge.data.synth_rain import PRESET_NAMES

    p = sub.add_parser("synth-rain", help="paired input/+target/ folders with synthetic rain on clean photos (Yang et al. 2017 model)")
    p.add_argument("clean", nargs="+", metavar="CLEAN_DIR", help="folders of clean images (PNG, JPEG, TIFF)")
    p.add_argument("-o", "--output", required=True, help="output folder (input/ and target/ are written inside)")
    p.add_argument("--preset", choices=PRESET_NAMES, default="light", help="light: Rain100L-like; heavy: several layers + veil; mixed: drawn per image")
    p.add_argument("--per-image", type=POS, default=1, help="rainy versions per clean image")
    p.add_argument("--seed", type=NONNEG, default=0)
    p.add_argument("--limit", type=POS, help="only the first N clean images")
    p.set_defaults(fn=cmd_synth_rain)

    p = sub.add_parser("export", help="export a model to ONNX (dynamic H/W) and check it in ONNX Runtime")
    p.add_argument("model", help="model checkpoint")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--opset", type=_int_type(17), default=17)
    p.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript")
    p.add_argument("--check-pyop", action="store_true", help="with --attention fused: also check the onnxruntime-extensions kernel (slow)")
    p.add_argument("--attention", choices=("native", "fused"), default="native",
                   help="fused: top-k attention as one drsedge::TopKSparseSoftmax node (TensorRT plugin; ONNX function fallback)")
    p.add_argument("--precision", choices=("fp32", "fp16"), default="fp32",
                   help="fp16: mixed-precision ONNX (FP16 with FP32 islands where --images overflow FP16), for strongly typed TensorRT")
    p.add_argument("--images", nargs="+", metavar="DIR", help="with --precision fp16: real rainy frames (not the test set)")
    p.add_argument("--limit", type=POS, default=4, help="with --precision fp16: frames measured")
    p.add_argument("--project", default="720x1280", metavar="HxW", help="with --precision fp16: frame size sums over pixels are projected to")
    p.add_argument("--fp16-safe", action="store_true",
                   help="LayerNorm and q/k normalisation in a bounded form (same FP32 output) so FP16 engines need no FP32 layers")
    p.set_defaults(fn=cmd_export)

    p = sub.add_parser("fp16-check", help="which layers of an FP32 ONNX would overflow in an FP16 engine, on real images")
    p.add_argument("onnx")
    p.add_argument("--images", nargs="+", required=True, metavar="DIR", help="rainy images at deployment size (not the test set)")
    p.add_argument("--limit", type=POS, default=4)
    p.add_argument("--project", default="720x1280", metavar="HxW", help="frame size to project sums over the pixels to")
    p.set_defaults(fn=cmd_fp16_check)

    p = sub.add_parser("quantize", help="INT8 Q/DQ ONNX by post-training quantization on real rainy images")
    p.add_argument("onnx")
    p.add_argument("--calib", nargs="+", required=True, metavar="DIR", help="folders of rainy images (not the test set)")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--backend", choices=("nncf", "ort"), default="nncf")
    p.add_argument("--size", type=MULT8, default=128, help="calibration crop size (multiple of 8)")
    p.add_argument("--limit", type=POS, default=32, help="number of calibration images")
    p.add_argument("--quantize-depthwise", action="store_true", help="also quantize depthwise convs (slower in ORT CPU here)")
    p.add_argument("--keep-float", nargs="+", metavar="MODULE", help="PyTorch modules to keep in float, e.g. latent.1.attn (see `drsedge localize`)")
    p.add_argument("--budget", type=_float_type(), metavar="DB",
                   help="largest PSNR-Y drop vs FP32 on --val: keep the worst modules in float, one per step, until it holds")
    p.add_argument("--val", metavar="DIR", help="paired validation folder for --budget (not the held-out test set)")
    p.add_argument("--val-limit", type=POS, default=4)
    p.add_argument("--max-steps", type=NONNEG, default=4, help="units --budget may keep in float")
    p.add_argument("--candidates", type=POS, default=3, help="units quantized and measured per --budget step")
    p.add_argument("--granularity", choices=("stage", "module"), default="stage",
                   help="--budget unit: a top-level stage (decoder_level1, output, ...) or a single module")
    p.set_defaults(fn=cmd_quantize)

    p = sub.add_parser("check", help="drift report: PSNR/SSIM per stage on a paired test folder, latency, budgets")
    p.add_argument("--test", required=True, help="paired test folder")
    p.add_argument("--teacher")
    p.add_argument("--student")
    p.add_argument("--onnx", help="FP32 ONNX")
    p.add_argument("--int8", help="INT8 Q/DQ ONNX")
    p.add_argument("--fp16", help="mixed-precision FP16 ONNX (`drsedge export --precision fp16`); measured against --onnx too")
    p.add_argument("--engine", action="append", metavar="NAME=ENGINE", help="TensorRT stage, e.g. trt_fp16=s.engine (needs a GPU)")
    p.add_argument("--plugin", help="TopKSparseSoftmax plugin library for engines built from fused exports")
    p.add_argument("--limit", type=POS, help="first N test pairs only")
    p.add_argument("--tile", type=MULT8, help="tiled inference with this tile size (multiple of 8)")
    p.add_argument("--budget", action="append", metavar="STAGE=DB", help="largest PSNR drop vs previous stage, e.g. onnx_int8=1.0")
    p.add_argument("--latency-size", type=MULT8, nargs=2, default=[256, 256], metavar=("H", "W"))
    p.add_argument("--latency-runs", type=POS, default=5)
    p.add_argument("--out", default="drsedge-check", help="folder for report.md and report.json")
    p.add_argument("--localize", nargs="+", metavar="DIR",
                   help="when the INT8 stage breaks its budget, compare it layer by layer with the FP32 ONNX on these images (not the test set)")
    p.set_defaults(fn=cmd_check)

    for name, help_ in (("pipeline", "run every stage of a run config into a run directory"), ("demo", "the bundled small pipeline on ../shared/data")):
        p = sub.add_parser(name, help=help_)
        if name == "pipeline":
            p.add_argument("--config", required=True, help="run YAML (see drsedge/configs/demo.yaml)")
        p.add_argument("--data", help="data root laid out like ../shared/data")
        p.add_argument("--run-dir", help="override run_dir")
        g = p.add_mutually_exclusive_group()
        g.add_argument("--teacher", help="use this teacher checkpoint (or shipped:teacher) instead of the config's")
        g.add_argument("--train-teacher", action="store_true",
                       help="train the config's brief teacher and distill the student from scratch (no shipped weights)")
        p.set_defaults(fn=cmd_pipeline if name == "pipeline" else cmd_demo)

    p = sub.add_parser("prune", help="structural pruning (MSFN width, channels per head), with distillation fine-tuning between steps")
    p.add_argument("model", help="model checkpoint (.safetensors from drsedge)")
    p.add_argument("-o", "--output", required=True, help="pruned model .safetensors (config with per-block widths inside)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--ratio", type=_float_type(0.0, inclusive=False), default=0.5, help="fraction of MSFN hidden channels to remove")
    g.add_argument("--target-gmacs", type=_float_type(0.0, inclusive=False), help="prune until the model needs at most this many GMACs at --size")
    p.add_argument("--size", type=POS, nargs=2, default=[256, 256], metavar=("H", "W"))
    p.add_argument("--importance", choices=("l1", "l2", "taylor"), default="l2")
    p.add_argument("--scope", nargs="+", choices=("msfn", "attention", "heads", "streams"), default=["msfn"],
                   help="what to prune: MSFN hidden channels, the same channels in every attention head, whole heads, "
                        "residual-stream widths (patch embed, levels, Down/Upsample, skips)")
    p.add_argument("--iterations", type=POS, default=1, help="prune in this many steps, fine-tuning after each")
    p.add_argument("--teacher", help="teacher for distillation fine-tuning (the same loss as `drsedge distill`)")
    p.add_argument("--unlabeled", nargs="+", metavar="DIR")
    p.add_argument("--test", help="paired folder to report PSNR before/after (not used for decisions)")
    p.add_argument("--limit", type=POS, default=5)
    _add_train_args(p, 100, out=False)
    p.set_defaults(fn=cmd_prune)

    p = sub.add_parser("localize", help="per-layer drift of one ONNX model against another (e.g. INT8 vs FP32) on real images")
    _add_compare_args(p)
    p.add_argument("--threshold", type=_float_type(0.0, inclusive=False), default=0.05, help="relative error that marks a layer")
    p.add_argument("--top", type=POS, default=10)
    p.set_defaults(fn=cmd_localize)

    p = sub.add_parser("compare", help="Polygraphy: does ONNX Runtime / a TensorRT engine agree with the reference ONNX on real images?")
    _add_compare_args(p)
    p.add_argument("--atol", type=_float_type(), default=1e-3)
    p.add_argument("--rtol", type=_float_type(), default=1e-3)
    p.set_defaults(fn=cmd_compare)

    p = sub.add_parser("build-engine", help="TensorRT engine (FP32/FP16/INT8) from an ONNX file, with a JSON sidecar")
    p.add_argument("onnx", help="FP32 ONNX (fp32 engines; fp16 on TensorRT < 10.12), FP16 ONNX (fp16 engines, "
                   "`drsedge export --precision fp16`) or the Q/DQ INT8 ONNX (int8 engines)")
    p.add_argument("-o", "--output", required=True, help="engine path; the sidecar is written to OUTPUT.json")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16")
    p.add_argument("--plugin", help="TopKSparseSoftmax plugin library (needed for --attention fused exports)")
    p.add_argument("--min-shape", default="1x3x64x64")
    p.add_argument("--opt-shape", default="1x3x256x256")
    p.add_argument("--max-shape", default="1x3x720x1280")
    p.add_argument("--timing-cache", help="timing cache file, read if present and written back")
    p.add_argument("--optimization-level", type=_int_type(0), default=3, help="builder optimization level 0..5")
    p.add_argument("--workspace", type=POS, default=1024, help="workspace limit in MiB")
    p.add_argument("--hardware-compatibility", action="store_true", help="Ampere+ hardware-compatible engine (TensorRT >= 8.6)")
    p.add_argument("--version-compatible", action="store_true", help="version-compatible engine (TensorRT >= 8.6)")
    p.add_argument("--fp16-all-layers", action="store_true",
                   help="weakly typed TensorRT (< 10.12): do not keep LayerNorm / q,k normalisation in FP32 in FP16 engines")
    p.add_argument("--print-trtexec", action="store_true", help="print the equivalent trtexec command instead of building")
    p.add_argument("--trt-version", default="10.13", metavar="X.Y",
                   help="TensorRT version the printed trtexec command targets (8.5 ... 11.x; default 10.13, JetPack 7)")
    p.set_defaults(fn=cmd_build_engine)

    p = sub.add_parser("derain", help="derain a folder of images with a checkpoint or ONNX model")
    p.add_argument("model")
    p.add_argument("input")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--tile", type=MULT8)
    p.add_argument("--tile-overlap", type=NONNEG, default=32)
    p.set_defaults(fn=cmd_derain)
    return ap


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``drsedge COMMAND: error: ...``, exit 2) instead of usage + error."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _user_error(e: BaseException) -> str | None:
    """A one-line message for exceptions that mean bad input or environment (not a drsedge bug), else None."""
    from PIL import Image

    from drsedge.errors import first_line

    if isinstance(e, Image.DecompressionBombError):
        return f"image too large ({first_line(e)}); resize it"
    if isinstance(e, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, FileExistsError)):
        name = e.filename or "path"
        return f"{name}: {e.strerror or first_line(e)}; check the path and its permissions"
    if isinstance(e, OSError):
        return f"{e.filename + ': ' if getattr(e, 'filename', None) else ''}{first_line(e)} (file system or device error)"
    if isinstance(e, MemoryError):
        return "out of memory; use smaller images, --tile, or a smaller batch"
    if isinstance(e, (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError)):
        return f"unreadable config or metadata ({first_line(e)})"
    return None


def main(argv: list[str] | None = None) -> int:
    import os

    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except DrsedgeError as e:
        print(f"drsedge: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("drsedge: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the CLI boundary: never a traceback for a user (DRSEDGE_DEBUG=1 shows it)
        if os.environ.get("DRSEDGE_DEBUG"):
            raise
        from drsedge.errors import first_line

        msg = _user_error(e) or f"{type(e).__name__}: {first_line(e)} (unexpected; rerun with DRSEDGE_DEBUG=1 for the traceback)"
        print(f"drsedge: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
