"""The drsedge pipeline: teacher -> distilled student -> ONNX FP32 -> ONNX INT8 -> drift report.

Each stage writes its artifacts into the run directory and records them in
``manifest.json`` (paths, sha256, the stage's config, metrics). A stage is
skipped on a re-run when its recorded key (a hash of its config and of the
artifacts it consumes) is unchanged and its artifacts still hash the same.

Size: ~450 lines on purpose: the stages are methods of one Pipeline so they share the manifest, stage keys and lock;
each stage body is a thin call into the library (training, prune_driver, export, quantize, metrics).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from pathlib import Path

import torch
import yaml

from drsedge.calibration.calib import calibration_set
from drsedge.compress.quantize import count_qdq, quantize_onnx
from drsedge.data.folders import find_pairs, find_unlabeled
from drsedge.data.heldout import guard_not_held_out
from drsedge.data.sampling import CropSampler, load_samples
from drsedge.errors import DrsedgeError, first_line
from drsedge.export.onnx_export import check_parity, export_onnx, is_static_family, onnx_static_hw, parity_ok
from drsedge.fileio import atomic_write, sha256
from drsedge.jsonio import dumps_strict
from drsedge.metrics.drift import Stage, evaluate_stages, report_markdown
from drsedge.models.checkpoint import load_any, load_model, save_model
from drsedge.models.config import ModelConfig, config_from_dict, require_drsformer
from drsedge.models.info import model_info
from drsedge.runtime.runners import OrtRunner, TorchRunner
from drsedge.training.loop import TrainConfig, train

DEMO_CONFIG = Path(__file__).parent / "configs" / "demo.yaml"
# The data-config entries each stage reads (a change re-runs that stage and everything after it).
STAGE_DATA = {"synth": ("synthetic",), "teacher": ("train", "synthetic"), "student": ("train", "unlabeled", "synthetic"),
              "prune": ("train", "unlabeled", "synthetic"), "export": ("calibration",), "quantize": ("calibration", "validation"), "check": ("test", "test_limit")}


def load_run_config(path: str | os.PathLike, overrides: dict | None = None) -> dict:
    """Read a run YAML (defaults from the demo config) and apply ``overrides`` (nested dict).

    Raises:
        DrsedgeError: missing or unparsable YAML, unknown top-level section.
    """
    path = Path(path)
    try:
        user = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise DrsedgeError(f"{path}: run config not found") from None
    except yaml.YAMLError as e:
        raise DrsedgeError(f"{path}: not valid YAML ({first_line(e)})") from None
    base = yaml.safe_load(DEMO_CONFIG.read_text())
    unknown = sorted(set(user) - set(base)) if isinstance(user, dict) else []
    if unknown:
        raise DrsedgeError(f"{path}: unknown section(s) {unknown}; valid: {sorted(base)}")
    if not isinstance(user, dict):
        raise DrsedgeError(f"{path}: a run config is a YAML mapping of sections ({sorted(base)}), not {type(user).__name__}")
    cfg = _merge(_merge(base, user), overrides or {})
    for section, weights in (("teacher", "checkpoint"), ("student", "init")):
        # another model family: the demo's DRSformer model keys and shipped DRSformer weights do not apply
        mine = {**((user.get(section) or {}) if isinstance(user.get(section), dict) else {}), **((overrides or {}).get(section) or {})}
        model = mine.get("model") if isinstance(mine.get("model"), dict) else {}
        if model.get("family", "drsformer") != "drsformer" and isinstance(cfg.get(section), dict):
            cfg[section]["model"] = copy.deepcopy(model)
            if weights not in mine:
                cfg[section][weights] = None
    from drsedge.run_config import validate_run_config

    return validate_run_config(cfg, str(path))


def _merge(a: dict, b: dict) -> dict:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def default_data_root() -> Path | None:
    """``../shared/data`` next to the working directory or the repository, if present."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        cand = (base / ".." / "shared" / "data").resolve()
        if cand.is_dir():
            return cand
    return None


class Pipeline:
    """Runs the stages of one run config into ``run_dir`` (see module docstring)."""

    def __init__(self, cfg: dict, progress: bool = True, log=print):
        self.cfg, self.progress, self.log = cfg, progress, log
        self.run_dir = Path(cfg["run_dir"])
        self.run_dir.mkdir(parents=True, exist_ok=True)
        root = cfg["data"].get("root") or default_data_root()
        if root is None:
            raise DrsedgeError("no data root: pass --data DIR (a folder laid out like ../shared/data)")
        self.root = Path(root)
        self.manifest_path = self.run_dir / "manifest.json"
        self.manifest = {"stages": {}}
        if self.manifest_path.is_file():
            try:
                m = json.loads(self.manifest_path.read_text())
                if isinstance(m, dict) and isinstance(m.get("stages"), dict):
                    self.manifest = m
            except (json.JSONDecodeError, UnicodeDecodeError):
                pass  # a corrupt manifest only means every stage runs again
        torch.manual_seed(cfg["seed"])

    # -- helpers -----------------------------------------------------------------------------------
    def _data(self, rel: str | list[str]) -> list[Path]:
        rels = [rel] if isinstance(rel, str) else list(rel or [])
        return [p if p.is_absolute() else self.root / p for p in map(Path, rels)]

    def _guard_held_out(self, section: str, paths: list[Path]) -> None:
        """rain100L and this run's ``data.test`` (by name, link target and file content) never feed ``section``."""
        guard_not_held_out(paths, section, test_dirs=self._data(self.cfg["data"]["test"]))

    def preflight(self) -> None:
        """Every data folder of the config checked before the first stage runs: it exists, and none is (by name, link
        target or file content) the held-out set. A refusal after three trained stages would waste their time and
        leave artifacts no manifest records.

        Raises:
            DrsedgeError: one line naming the section and the folder.
        """
        d = self.cfg["data"]
        sections = [("training", d.get("train")), ("distillation", d.get("unlabeled")), ("calibration", d.get("calibration")),
                    ("validation", d.get("validation"))]
        if d.get("synthetic"):
            sections.append(("synthetic rain", d["synthetic"].get("clean")))
        for section, rel in sections:
            dirs = self._data(rel)
            for p in dirs:
                if not p.is_dir():
                    raise DrsedgeError(f"{p}: data folder for {section} (data section of the run config) not found")
            if dirs:
                self._guard_held_out(section, dirs)

    def _key(self, name: str, cfg, inputs: list[str]) -> str:
        """Hash of the stage config, the seed, the data section, an input checkpoint's bytes and upstream artifacts."""
        deps = [self.manifest["stages"][i]["artifacts"] for i in inputs]
        data = {k: self.cfg["data"].get(k) for k in STAGE_DATA.get(name, ())}
        extra = {"seed": self.cfg["seed"], "data": data, "root": str(self.root)}
        if isinstance(cfg, dict) and cfg.get("checkpoint"):
            from drsedge.weights import resolve

            ck = resolve(cfg["checkpoint"])  # shipped:teacher -> its file, so new shipped weights re-run the stage
            extra["checkpoint_sha256"] = sha256(ck) if Path(ck).is_file() else None
        return hashlib.sha256(json.dumps([name, cfg, extra, deps], sort_keys=True, default=str).encode()).hexdigest()[:16]

    def _done(self, name: str, key: str) -> bool:
        st = self.manifest["stages"].get(name)
        if not st or st.get("key") != key:
            return False
        return all((self.run_dir / a["path"]).is_file() and sha256(self.run_dir / a["path"]) == a["sha256"] for a in st["artifacts"].values())

    def _record(self, name: str, key: str, artifacts: dict[str, Path], config, metrics: dict, seconds: float) -> None:
        self.manifest["stages"][name] = {
            "key": key,
            "config": config,
            "artifacts": {k: {"path": str(p.relative_to(self.run_dir)), "sha256": sha256(p)} for k, p in artifacts.items()},
            "metrics": metrics,
            "seconds": round(seconds, 1),
        }
        self.manifest["run_config"] = self.cfg
        text = dumps_strict(json.loads(json.dumps(self.manifest, default=str)), indent=2)
        atomic_write(self.manifest_path, lambda tmp: Path(tmp).write_text(text))

    def _stage(self, name: str, cfg, inputs: list[str], fn) -> dict:
        key = self._key(name, cfg, inputs)
        if self._done(name, key):
            self.log(f"[{name}] up to date, skipped")
            return self.manifest["stages"][name]
        self.log(f"[{name}] running")
        t0 = time.time()
        artifacts, metrics = fn()
        self._record(name, key, artifacts, cfg, metrics, time.time() - t0)
        self.log(f"[{name}] done in {time.time() - t0:.0f} s")
        return self.manifest["stages"][name]

    def path(self, stage: str, artifact: str) -> Path:
        return self.run_dir / self.manifest["stages"][stage]["artifacts"][artifact]["path"]

    # -- stages ------------------------------------------------------------------------------------
    def teacher(self) -> dict:
        tc = self.cfg["teacher"]
        out = self.run_dir / "teacher" / "teacher.safetensors"

        def run():
            mcfg = config_from_dict(tc.get("model"), "teacher.model")
            if tc.get("checkpoint"):
                from drsedge.weights import resolve

                ckpt = Path(resolve(tc["checkpoint"]))
                model, mcfg = load_any(ckpt)
                save_model(out, model, mcfg, {"source": str(ckpt)})
                return {"model": out}, {"source": str(ckpt), "trained_steps": 0}
            pairs = self._train_pairs()
            tcfg = TrainConfig.from_dict({**(tc.get("train") or {}), "seed": self.cfg["seed"]}, "teacher.train")
            torch.manual_seed(self.cfg["seed"])
            model = mcfg.build()
            res = train(model, CropSampler(load_samples(pairs), tcfg.patch, tcfg.batch_size, tcfg.seed), tcfg, out.parent, resume=True, progress=self.progress,
                        key=self._key("teacher", tc, ["synth"] if "synth" in self.manifest["stages"] else []), log=self.log)
            save_model(out, model, mcfg)
            return {"model": out}, {"final_loss": res["loss"], "trained_steps": res["step"]}

        return self._stage("teacher", tc, ["synth"] if "synth" in self.manifest["stages"] else [], run)

    def _train_pairs(self):
        dirs = self._data(self.cfg["data"]["train"])
        self._guard_held_out("training", dirs)
        pairs = [p for d in dirs for p in find_pairs(d)]
        if "synth" in self.manifest["stages"] and self.cfg["data"].get("synthetic"):
            pairs += find_pairs(self.run_dir / "synth")
        return pairs

    def synth(self) -> dict | None:
        """Synthetic rain on clean photos (``data.synthetic``) into ``run_dir/synth`` (input/ + target/)."""
        sc = self.cfg["data"].get("synthetic")
        if not sc:
            self.manifest["stages"].pop("synth", None)
            return None
        out = self.run_dir / "synth"

        def run():
            import shutil

            from drsedge.data.synth_rain import synth_rain

            clean = self._data(sc["clean"])
            self._guard_held_out("synthetic rain", clean)
            if out.exists():
                shutil.rmtree(out)  # a changed config must not leave pairs of the old one
            res = synth_rain(clean, out, preset=sc.get("preset", "mixed"), per_image=sc.get("per_image", 1), seed=sc.get("seed", 0),
                             limit=sc.get("limit"))
            names = sorted(p.name for p in (out / "input").iterdir())
            index = atomic_write(out / "index.json", lambda tmp: Path(tmp).write_text(json.dumps(names)))
            return {"index": index}, {"pairs": res["pairs"], "preset": res["preset"]}

        return self._stage("synth", sc, [], run)

    def student(self) -> dict:
        sc = self.cfg["student"]
        out = self.run_dir / "student" / "student.safetensors"

        def run():
            teacher, _ = load_model(self.path("teacher", "model"))
            mcfg = config_from_dict(sc.get("model"), "student.model", {**ModelConfig().to_dict(), "mefc": False})
            init = None
            if sc.get("init"):
                from drsedge.weights import resolve

                init, mcfg = load_any(resolve(sc["init"]))  # warm start: the checkpoint's own config
            unl = self._data(self.cfg["data"].get("unlabeled"))
            self._guard_held_out("distillation", unl)
            samples = load_samples(self._train_pairs(), [f for d in unl for f in find_unlabeled(d)])
            dcfg = TrainConfig.from_dict({**(sc.get("distill") or {}), "seed": self.cfg["seed"]}, "student.distill")
            torch.manual_seed(self.cfg["seed"])
            model = init if init is not None else mcfg.build()
            if init is not None:
                dcfg.zero_init_output = False
            res = train(model, CropSampler(samples, dcfg.patch, dcfg.batch_size, dcfg.seed), dcfg, out.parent, teacher=teacher, resume=True,
                        progress=self.progress, key=self._key("student", sc, ["teacher"]), log=self.log)
            save_model(out, model, mcfg)
            return {"model": out}, {"final_loss": res["loss"], "trained_steps": res["step"], "train_images": len(samples)}

        deps = ["teacher"] + (["synth"] if "synth" in self.manifest["stages"] else [])
        if sc.get("init"):
            from drsedge.weights import resolve

            sc = {**sc, "init_sha256": sha256(resolve(sc["init"]))}
        return self._stage("student", sc, deps, run)

    def prune(self) -> dict | None:
        """Optional MSFN pruning of the student with distillation fine-tuning (``prune.enabled``)."""
        pc = self.cfg.get("prune") or {}
        if not pc.get("enabled"):
            self.manifest["stages"].pop("prune", None)
            return None
        out = self.run_dir / "prune" / "pruned.safetensors"

        def run():
            from drsedge.compress.prune import taylor_gradients
            from drsedge.compress.prune_driver import iterative_prune

            teacher, _ = load_model(self.path("teacher", "model"))
            model, mcfg = load_model(self.path("student", "model"))
            unl = self._data(self.cfg["data"].get("unlabeled"))
            samples = load_samples(self._train_pairs(), [f for d in unl for f in find_unlabeled(d)])
            ft = TrainConfig.from_dict({**(pc.get("finetune") or {}), "seed": self.cfg["seed"], "zero_init_output": False}, "prune.finetune")
            importance = pc.get("importance", "l2")
            key = self._key("prune", pc, ["teacher", "student"])

            def taylor(m, it):
                if importance == "taylor":  # L1 to the teacher on a training crop batch, as `drsedge prune`
                    x, _, _ = CropSampler(samples, ft.patch, ft.batch_size, ft.seed).batch(10_000 + it)
                    taylor_gradients(m, x, teacher(x).detach())

            def finetune(m, _c, it):
                if ft.steps > 0:
                    train(m, CropSampler(samples, ft.patch, ft.batch_size, ft.seed + it - 1), ft, out.parent / f"finetune{it}",
                          teacher=teacher, resume=True, progress=self.progress, key=key, log=self.log)

            if not isinstance(mcfg, ModelConfig):  # UDR-S2Former: MLP / MFFN hidden widths (compress/prune_udr.py)
                from drsedge.compress.prune_udr import UDR_SCOPES, prune_udr

                scopes = pc.get("scope") or list(UDR_SCOPES)
                if set(scopes) - set(UDR_SCOPES):
                    raise DrsedgeError(f"prune.scope {scopes}: a UDR-S2Former prunes {list(UDR_SCOPES)}")
                iters = int(pc.get("iterations", 1))
                for it in range(1, iters + 1):
                    taylor(model, it)
                    model, mcfg = prune_udr(model, mcfg, 1.0 - (1.0 - float(pc["ratio"])) ** (1.0 / iters), importance, scopes)
                    model.zero_grad(set_to_none=True)
                    finetune(model, mcfg, it)
                save_model(out, model, mcfg, {"ratio": pc["ratio"], "importance": importance})
                return {"model": out}, {"mlp_hidden": mcfg.mlp_hidden, "ffn_hidden": mcfg.ffn_hidden}
            model, mcfg = iterative_prune(model, mcfg, ratio=float(pc["ratio"]), importance=importance, scopes=pc.get("scope") or ["msfn"],
                                          iterations=int(pc.get("iterations", 1)), before_step=taylor, after_step=finetune)
            save_model(out, model, mcfg, {"ratio": pc["ratio"], "importance": pc.get("importance", "l2")})
            return {"model": out}, {"ffn_hidden": mcfg.ffn_hidden, "attn_inner": mcfg.attn_inner, "attn_heads": mcfg.attn_heads,
                                    "stream_widths": mcfg.stream_widths}

        return self._stage("prune", pc, ["teacher", "student"], run)

    def deploy_model(self) -> Path:
        """The model that gets exported: the pruned student when pruning is enabled."""
        return self.path("prune", "model") if "prune" in self.manifest["stages"] else self.path("student", "model")

    def export(self) -> dict:
        ec = self.cfg["export"]
        out = self.run_dir / "export" / "student_fp32.onnx"

        def run():
            model, _ = load_model(self.deploy_model())
            if ec.get("fp16") and is_static_family(model):  # before anything is written
                raise DrsedgeError("export.fp16: the mixed-precision ONNX of UDR-S2Former is not supported yet (onnxconverter-common "
                                   "mistypes its FP32 rank/sampling casts); set export.fp16: false")
            export_onnx(model, out, opset=ec["opset"], exporter=ec["exporter"], attention=ec.get("attention", "native"),
                        fp16_safe=ec.get("fp16_safe", False), size=tuple(ec["size"]) if ec.get("size") else None,
                        structure=ec.get("structure", "deploy"))
            try:
                parity = check_parity(model, out, sizes=((64, 64), (96, 128)))
            except BaseException:
                out.unlink(missing_ok=True)
                raise
            ok, summary = parity_ok(model, parity)
            if not ok:  # NaN fails too
                out.unlink(missing_ok=True)
                raise DrsedgeError(f"{out}: ONNX Runtime differs from PyTorch: {summary}")
            artifacts, metrics = {"onnx": out}, {"parity_max_abs": parity.max_abs, "parity_mean_abs": parity.mean_abs,
                                                 "fp16": self._fp16_range(out)}
            if ec.get("fp16"):
                from drsedge.export.fp16 import convert_fp16

                dirs = self._data(self.cfg["data"]["calibration"])
                frames = calibration_set(dirs, size=self._static_side(out), limit=2)
                out16 = out.with_name("student_fp16.onnx")
                res = convert_fp16(out, out16, frames.inputs, [f.name for f in frames.files])
                artifacts["onnx_fp16"] = out16
                metrics["onnx_fp16"] = {"islands": len(res.islands), "fp16_nodes": res.fp16_nodes, "psnr_vs_fp32_calib": res.psnr_vs_fp32}
            return artifacts, metrics

        return self._stage("export", ec, ["prune" if "prune" in self.manifest["stages"] else "student"], run)

    def _fp16_range(self, onnx_path: Path) -> dict:
        """FP16 range of the FP32 export on two whole calibration frames, sums projected to 720p (drsedge fp16-check)."""
        from drsedge.debug.fp16_range import fp16_overflows, fp16_ranges

        dirs = self._data(self.cfg["data"]["calibration"])
        self._guard_held_out("calibration", dirs)
        ranges = fp16_ranges(onnx_path, calibration_set(dirs, size=self._static_side(onnx_path), limit=2).inputs, (720, 1280))
        bad = fp16_overflows(ranges)
        return {"overflow_nodes": len(bad), "modules": sorted({r.module for r in bad}),
                "peak_projected_720p": max(r.projected for r in ranges)}

    @staticmethod
    def _static_side(onnx_path: Path, default: int | None = None) -> int | None:
        """The side of a static square ONNX input (UDR-S2Former export): calibration crops must have that size."""
        hw = onnx_static_hw(onnx_path)
        if hw is None:
            return default
        if hw[0] != hw[1]:
            raise DrsedgeError(f"{onnx_path}: static input {hw[0]}x{hw[1]}; the pipeline calibrates square crops: "
                               "set export.size to a square (e.g. [256, 256])")
        return hw[0]

    def quantize(self) -> dict:
        qc = self.cfg["quantize"]
        out = self.run_dir / "quantize" / "student_int8.onnx"

        def run():
            dirs = self._data(self.cfg["data"]["calibration"])
            self._guard_held_out("calibration", dirs)
            calib = calibration_set(dirs, size=self._static_side(self.path("export", "onnx"), qc["size"]), limit=qc["limit"])
            metrics = {}
            if qc.get("qat_steps"):  # quantization-aware fine-tuning of the deployed student (drsedge qat)
                from drsedge.compress.qat import export_qat_onnx, insert_quantizers

                fp32, fcfg = load_model(self.deploy_model())
                require_drsformer(fcfg, "quantize.qat_steps: quantization-aware training", "quantize")
                student, _ = load_model(self.deploy_model())
                unl = self._data(self.cfg["data"].get("unlabeled"))
                samples = load_samples(self._train_pairs(), [f for d in unl for f in find_unlabeled(d)])
                lr = float(qc.get("qat_lr", 1e-5))
                qcfg = TrainConfig(steps=int(qc["qat_steps"]), batch_size=4, patch=64, lr=lr, seed=self.cfg["seed"],
                                   checkpoint_every=int(qc["qat_steps"]), eta_mins=[lr, lr * 0.01], zero_init_output=False)
                qmodel = insert_quantizers(student, calib.inputs)
                res = train(qmodel, CropSampler(samples, qcfg.patch, qcfg.batch_size, qcfg.seed), qcfg, out.parent / "qat", teacher=fp32,
                            progress=self.progress, log=self.log)
                export_qat_onnx(qmodel, out, opset=self.cfg["export"]["opset"])
                metrics = {"qat_steps": res["step"], "qat_final_loss": res["loss"]}
            elif qc.get("budget_db") is not None or qc.get("min_fidelity_db") is not None:  # measured keep-float search
                from drsedge.compress.keep_float import search_keep_float

                val = self._data(self.cfg["data"].get("validation"))
                if not val:
                    raise DrsedgeError("quantize.budget_db / min_fidelity_db need data.validation: a paired folder other than the test set")
                self._guard_held_out("validation", val)
                res = search_keep_float(self.path("export", "onnx"), out, calib, find_pairs(val[0], qc.get("val_limit", 4)),
                                        budget_db=qc.get("budget_db"), backend=qc["backend"], quantize_depthwise=qc.get("quantize_depthwise", False),
                                        keep_float=qc.get("keep_float"), max_steps=qc.get("max_steps", 4),
                                        min_fidelity_db=qc.get("min_fidelity_db"), high_precision=qc.get("high_precision", "fp32"))
                self.log(res.table())
                if not res.ok:
                    raise DrsedgeError(f"quantize: no INT8 model meets its targets on {val[0]} after {len(res.steps) - 1} keep-float "
                                       "step(s); raise quantize.max_steps, budget_db or lower min_fidelity_db")
                last = res.steps[-1]
                metrics = {"keep_float": last.keep_float, "val_delta_db": last.delta_db, "val_fidelity_db": last.fidelity_db,
                           "val_fidelity_min_db": last.fidelity_min_db}
            else:
                quantize_onnx(self.path("export", "onnx"), out, calib, qc["backend"], qc.get("quantize_depthwise", False), qc.get("keep_float"),
                              qc.get("high_precision", "fp32"))
            return {"onnx": out}, {"calibration_images": len(calib.files), "calibration_sha256": calib.digest, **count_qdq(out), **metrics}

        return self._stage("quantize", qc, ["export"], run)

    def check(self) -> dict:
        cc = self.cfg["check"]
        out_dir = self.run_dir / "check"

        def run():
            test = self._data(self.cfg["data"]["test"])[0]
            pairs = find_pairs(test, self.cfg["data"].get("test_limit"))
            rep = run_check(
                teacher=self.path("teacher", "model"), student=self.path("student", "model"),
                onnx_fp32=self.path("export", "onnx"), onnx_int8=self.path("quantize", "onnx"),
                onnx_fp16=self.path("export", "onnx_fp16") if "onnx_fp16" in self.manifest["stages"]["export"]["artifacts"] else None,
                pairs=pairs, cc=cc, progress=self.progress,
                pruned=self.path("prune", "model") if "prune" in self.manifest["stages"] else None,
            )
            fp16 = self.manifest["stages"]["export"]["metrics"].get("fp16")
            if fp16 and fp16["overflow_nodes"]:
                rep.notes.append(f"FP16: {fp16['overflow_nodes']} node(s) of the FP32 export exceed FP16's 65504 at 720p "
                                 f"(peak {fp16['peak_projected_720p']:.3g}; in {', '.join(fp16['modules'][:4])}): FP16 engines keep "
                                 "them in FP32 by default; `export: {fp16_safe: true}` removes the overflow (drsedge fp16-check).")
            elif fp16:
                rep.notes.append(f"FP16: no node of the FP32 export exceeds 65504 at 720p (peak {fp16['peak_projected_720p']:.3g}).")
            md, js = write_report(rep, out_dir)
            return {"report_md": md, "report_json": js}, {"ok": rep.ok, "failures": rep.failures(), **{s.name: {"psnr": s.psnr, "ssim": s.ssim} for s in rep.stages}}

        deps = ["teacher", "student"] + (["prune"] if "prune" in self.manifest["stages"] else []) + ["export", "quantize"]
        return self._stage("check", cc, deps, run)

    def run(self) -> dict:
        """Run every stage under an exclusive lock on the run directory (one writer per run dir).

        Raises:
            DrsedgeError: another drsedge process holds ``run_dir/.drsedge.lock``; or any stage's error.
        """
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.run_dir / ".drsedge.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise DrsedgeError(f"{self.run_dir}: another drsedge pipeline is running in this run directory "
                               "(lock .drsedge.lock held); wait for it or use another --run-dir") from None
        try:
            self.preflight()
            for stage in (self.synth, self.teacher, self.student, self.prune, self.export, self.quantize, self.check):
                stage()
        finally:
            lock.release()
        return self.manifest


def run_check(
    teacher, student, onnx_fp32, onnx_int8, pairs, cc: dict, progress: bool = True, engines: dict | None = None, plugin=None, pruned=None,
    onnx_fp16=None,
):
    """Build the stages (teacher, student, pruned, ONNX FP32, ONNX FP16, ONNX INT8, then TensorRT ``engines`` name -> path;
    any may be None / empty) and evaluate them. FP16, INT8 and engines are measured against the FP32 ONNX too (fidelity)."""
    from drsedge.data.images import check_frame_size

    hw = tuple(cc.get("latency_hw") or (256, 256))
    check_frame_size(*hw, "latency size (--latency-size, check.latency_hw)")  # before any model is loaded
    stages = []
    for name, path in (("teacher", teacher), ("student", student), ("pruned", pruned)):
        if path:
            model, _ = load_any(path)  # drsedge .safetensors or an official .pth
            info = model_info(model, *hw)
            stages.append(Stage(name, TorchRunner(model, name), "PyTorch eager CPU", {"params": info.params, "macs": info.macs, "path": str(path)}))
    for name, path in (("onnx_fp32", onnx_fp32), ("onnx_fp16", onnx_fp16), ("onnx_int8", onnx_int8)):
        if path:
            info = stages[-1].info if stages else {}
            parent = "onnx_fp32" if name != "onnx_fp32" and onnx_fp32 else None
            stages.append(Stage(name, OrtRunner(path, name), "ONNX Runtime CPU", {"params": info.get("params"), "macs": info.get("macs"),
                                                                                "path": str(path)}, parent=parent))
    for name, path in (engines or {}).items():
        from drsedge.backend.trt.runner import EngineRunner

        info = stages[-1].info if stages else {}
        stages.append(Stage(name, EngineRunner(path, name, plugin), "TensorRT GPU", {"params": info.get("params"), "macs": info.get("macs"),
                                                                                  "path": str(path)}, parent="onnx_fp32" if onnx_fp32 else None))
    if not stages:
        raise DrsedgeError("nothing to check: give at least one of --teacher, --student, --onnx, --int8")
    return evaluate_stages(
        stages, pairs, tile=cc.get("tile"), budgets=cc.get("budgets") or {}, latency_hw=hw,
        latency_runs=cc.get("latency_runs", 5), progress=progress,
    )


def write_report(rep, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``report.md``, ``report.json`` and the self-contained ``report.html`` into ``out_dir`` atomically."""
    from drsedge.metrics.report_html import write_html

    out_dir = Path(out_dir)
    md = atomic_write(out_dir / "report.md", lambda tmp: Path(tmp).write_text(report_markdown(rep)))
    js = atomic_write(out_dir / "report.json", lambda tmp: Path(tmp).write_text(dumps_strict(rep.to_dict(), indent=2)))
    write_html(rep, out_dir, rep.worst_outputs)
    return md, js

