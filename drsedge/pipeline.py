"""The pipeline: synthetic rain -> teacher -> student -> pruned -> ONNX FP32/FP16 -> INT8 -> drift report (:mod:`drsedge.stages`).

This module holds only what a run adds to the stages: the stage graph (:data:`GRAPH`: what each stage consumes and
which data entries it reads), the manifest and the lock; the run config comes from :func:`drsedge.run_config.load_run_config`.
Each stage writes its artifacts into the run directory and records them in ``manifest.json`` (paths, sha256, the stage's
options, metrics). A stage is skipped on a re-run when its key (a hash of its options, the seed, the data it reads,
an input checkpoint's bytes and the artifacts it consumes) is unchanged and its artifacts still hash the same.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from drsedge.errors import DrsedgeError
from drsedge.fileio import atomic_write, refuse_inside, sha256
from drsedge.jsonio import dumps_strict
from drsedge.run_config import RunConfig, default_data_root
from drsedge.stages import StageResult

# stage -> (stages whose artifacts it consumes, data-config entries it reads). Stages run in this order; a tuple inside
# the inputs means "the first of these that is enabled" (the deployed model: the pruned student, else the student).
GRAPH: dict[str, tuple[tuple, tuple[str, ...]]] = {
    "synth": ((), ("synthetic",)),
    "teacher": (("synth",), ("train", "synthetic")),
    "student": (("teacher", "synth"), ("train", "unlabeled", "synthetic")),
    "prune": (("teacher", "student", "synth"), ("train", "unlabeled", "synthetic")),
    "export": ((("prune", "student"),), ("calibration",)),
    "quantize": (("export", ("prune", "student"), "synth"), ("calibration", "validation", "train", "unlabeled")),
    "check": (("teacher", "student", "prune", "export", "quantize"), ("test", "test_limit")),
}
OPTIONAL = {"synth": lambda c: c.data.synthetic is not None, "prune": lambda c: c.prune.enabled}  # the others always run


class Pipeline:
    """Runs the enabled stages of one :class:`RunConfig` into ``cfg.run_dir`` (see module docstring)."""

    def __init__(self, cfg: RunConfig, progress: bool = True, log=print):
        self.cfg, self.progress, self.log = cfg, progress, log
        self.run_dir = Path(cfg.run_dir)
        if (root := cfg.data.root or default_data_root()) is None:
            raise DrsedgeError("no data root: pass --data DIR (a folder laid out like ../shared/data)")
        self.root, d = Path(root), cfg.data  # the run directory is not (in) a folder the run reads: checked before it is made
        reads = (*d.train, *(d.unlabeled or ()), *d.calibration, d.validation, d.test, *(d.synthetic.clean if d.synthetic else ()))
        refuse_inside(self.run_dir, [self.root, *(self.root / p for p in reads if p)], "run directory")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.enabled = [n for n in GRAPH if n not in OPTIONAL or OPTIONAL[n](cfg)]
        self.manifest_path = self.run_dir / "manifest.json"
        self.manifest: dict = {"stages": {}}
        if self.manifest_path.is_file():
            try:
                m = json.loads(self.manifest_path.read_text())
                if isinstance(m, dict) and isinstance(m.get("stages"), dict):
                    self.manifest = m
            except (json.JSONDecodeError, UnicodeDecodeError):
                pass  # a corrupt manifest only means every stage runs again
        for name in set(GRAPH) - set(self.enabled):  # a disabled stage's old record must not feed a later stage
            self.manifest["stages"].pop(name, None)

    # -- data ----------------------------------------------------------------------------------------
    def _data(self, rel: str | list[str] | None, section: str | None = None) -> list[Path]:
        """Data-config paths under ``data.root``; with ``section``, refused when one is the held-out set (rain100L or
        this run's ``data.test``, by name, link target and file content)."""
        from drsedge.data.heldout import guard_not_held_out

        rels = [rel] if isinstance(rel, str) else list(rel or [])
        paths = [p if p.is_absolute() else self.root / p for p in map(Path, rels)]
        if section and paths:
            guard_not_held_out(paths, section, test_dirs=self._data(self.cfg.data.test))
        return paths

    def preflight(self) -> None:
        """Every data folder of the config exists and none is the held-out set, before the first stage runs (a refusal
        after three trained stages would waste their time and leave artifacts no manifest records).

        Raises:
            DrsedgeError: one line naming the section and the folder.
        """
        d = self.cfg.data
        for section, rel in (("training", d.train), ("distillation", d.unlabeled), ("calibration", d.calibration),
                             ("validation", d.validation), ("synthetic rain", d.synthetic.clean if d.synthetic else None)):
            for p in self._data(rel):
                if not p.is_dir():
                    raise DrsedgeError(f"{p}: data folder for {section} (data section of the run config) not found")
            self._data(rel, section)

    def _samples(self, unlabeled: bool = True) -> list:
        """Decoded training images: ``data.train`` pairs (+ this run's synthetic pairs) and ``data.unlabeled`` images."""
        from drsedge.data.folders import find_pairs, find_unlabeled
        from drsedge.data.sampling import load_samples

        pairs = [p for d in self._data(self.cfg.data.train, "training") for p in find_pairs(d)]
        if "synth" in self.enabled:
            pairs += find_pairs(self.run_dir / "synth")
        unl = self._data(self.cfg.data.unlabeled, "distillation") if unlabeled else []
        return load_samples(pairs, [f for d in unl for f in find_unlabeled(d)])

    # -- manifest ------------------------------------------------------------------------------------
    def inputs(self, name: str) -> list[str]:
        """The enabled stages ``name`` consumes (:data:`GRAPH`)."""
        out = []
        for dep in GRAPH[name][0]:
            hit = next((d for d in (dep if isinstance(dep, tuple) else (dep,)) if d in self.enabled), None)
            if hit and hit not in out:
                out.append(hit)
        return out

    def options(self, name: str) -> dict:
        """The stage's run-config section (its options), as the manifest records it."""
        return (self.cfg.data.synthetic if name == "synth" else getattr(self.cfg, name)).model_dump(mode="json")

    def key(self, name: str) -> str:
        """Hash of the stage's options, the seed, its data entries, an input checkpoint's bytes and its inputs' artifacts."""
        from drsedge.weights import resolve

        opts = self.options(name)
        extra = {"seed": self.cfg.seed, "root": str(self.root), "data": {k: getattr(self.cfg.data, k) for k in GRAPH[name][1]}}
        for field in ("checkpoint", "init"):  # shipped:teacher -> its file, so new shipped weights re-run the stage
            if opts.get(field):
                ck = Path(resolve(opts[field]))
                extra[f"{field}_sha256"] = sha256(ck) if ck.is_file() else None
        deps = [self.manifest["stages"][i]["artifacts"] for i in self.inputs(name)]
        blob = json.dumps([name, opts, extra, deps], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def _done(self, name: str, key: str) -> bool:
        st = self.manifest["stages"].get(name)
        if not st or st.get("key") != key:
            return False
        return all((self.run_dir / a["path"]).is_file() and sha256(self.run_dir / a["path"]) == a["sha256"] for a in st["artifacts"].values())

    def _record(self, name: str, key: str, res: StageResult, seconds: float) -> None:
        self.manifest["stages"][name] = {
            "key": key, "config": self.options(name), "seconds": round(seconds, 1), "metrics": res.metrics,
            "artifacts": {k: {"path": str(Path(p).relative_to(self.run_dir)), "sha256": sha256(p)} for k, p in res.artifacts.items()},
        }
        self.manifest["run_config"] = self.cfg.model_dump(mode="json")
        text = dumps_strict(json.loads(json.dumps(self.manifest, default=str)), indent=2)
        atomic_write(self.manifest_path, lambda tmp: Path(tmp).write_text(text))

    def stage(self, name: str) -> dict:
        """Run stage ``name`` unless it is up to date; returns its manifest entry."""
        key = self.key(name)
        if self._done(name, key):
            self.log(f"[{name}] up to date, skipped")
            return self.manifest["stages"][name]
        self.log(f"[{name}] running")
        t0 = time.time()
        res = getattr(self, f"_run_{name}")(self.run_dir / name, key)
        self._record(name, key, res, time.time() - t0)
        self.log(f"[{name}] done in {time.time() - t0:.0f} s")
        return self.manifest["stages"][name]

    def path(self, stage: str, artifact: str) -> Path | None:
        """An artifact of a recorded stage (None when the stage is disabled or did not write it)."""
        a = self.manifest["stages"].get(stage, {}).get("artifacts", {}).get(artifact) if stage in self.enabled else None
        return self.run_dir / a["path"] if a else None

    def deploy_model(self) -> Path:
        """The model that gets exported: the pruned student when pruning is enabled."""
        return self.path("prune", "model") or self.path("student", "model")

    # -- stages: each one call into drsedge.stages ------------------------------------------------------
    def _run_synth(self, out: Path, key: str) -> StageResult:
        from drsedge.stages import synth

        return synth.run(self.cfg.data.synthetic, self._data(self.cfg.data.synthetic.clean, "synthetic rain"), out)

    def _run_teacher(self, out: Path, key: str) -> StageResult:
        from drsedge.stages import train

        return train.teacher(self.cfg.teacher, lambda: self._samples(unlabeled=False), out / "teacher.safetensors", seed=self.cfg.seed,
                             resume_key=key, progress=self.progress, log=self.log)

    def _run_student(self, out: Path, key: str) -> StageResult:
        from drsedge.stages import train

        return train.student(self.cfg.student, self.path("teacher", "model"), self._samples(), out / "student.safetensors",
                             seed=self.cfg.seed, resume_key=key, progress=self.progress, log=self.log)

    def _run_prune(self, out: Path, key: str) -> StageResult:
        from drsedge.stages import prune
        from drsedge.training.loop import TrainConfig

        ft = TrainConfig.from_dict({**(self.cfg.prune.finetune or {}), "seed": self.cfg.seed}, "prune.finetune")
        inputs = prune.PruneInputs(self.path("student", "model"), self.path("teacher", "model"), self._samples())
        return prune.run(self.cfg.prune, inputs, out / "pruned.safetensors", finetune=ft, resume_key=key, progress=self.progress, log=self.log)

    def _run_export(self, out: Path, key: str) -> StageResult:
        from drsedge.stages import export

        calib = self._data(self.cfg.data.calibration, "calibration")
        return export.run(self.cfg.export, export.ExportInputs(self.deploy_model(), fp16_images=calib, range_images=calib),
                          out / "student_fp32.onnx", fp16_out=out / "student_fp16.onnx")

    def _run_quantize(self, out: Path, key: str) -> StageResult:
        from drsedge.calibration.calib import calibration_set
        from drsedge.data.folders import find_pairs
        from drsedge.data.sampling import CropSampler
        from drsedge.export.onnx_export import static_square_side
        from drsedge.stages import quantize

        qc, onnx = self.cfg.quantize, self.path("export", "onnx")
        calib = calibration_set(self._data(self.cfg.data.calibration, "calibration"), size=static_square_side(onnx) or qc.size, limit=qc.limit)
        inputs = quantize.QuantizeInputs(calib, onnx, model=self.deploy_model())
        if quantize.method(qc) == "search" and self.cfg.data.validation:
            val = self._data(self.cfg.data.validation, "validation")[0]
            inputs.validation, inputs.validation_name = find_pairs(val, qc.val_limit), str(val)
        if quantize.method(qc) == "qat":
            samples = self._samples()
            inputs.training = lambda c: CropSampler(samples, c.patch, c.batch_size, c.seed)
        return quantize.run(qc, inputs, out / "student_int8.onnx", seed=self.cfg.seed, opset=self.cfg.export.opset, progress=self.progress,
                            log=self.log)

    def _run_check(self, out: Path, key: str) -> StageResult:
        from drsedge.data.folders import find_pairs
        from drsedge.stages import check

        inputs = check.CheckInputs(find_pairs(self._data(self.cfg.data.test)[0], self.cfg.data.test_limit), self.path("teacher", "model"),
                                   self.path("student", "model"), self.path("prune", "model"), self.path("export", "onnx"),
                                   self.path("export", "onnx_fp16"), self.path("quantize", "onnx"))
        notes = check.fp16_range_notes(self.manifest["stages"]["export"]["metrics"].get("fp16"))
        return check.run(self.cfg.check, inputs, out, notes=notes, progress=self.progress)

    def run(self) -> dict:
        """Run every enabled stage under an exclusive lock on the run directory (one writer per run dir).

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
            import torch

            torch.manual_seed(self.cfg.seed)
            for name in self.enabled:
                self.stage(name)
        finally:
            lock.release()
        return self.manifest
