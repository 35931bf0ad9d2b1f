"""``drsedge pipeline``: every stage of a run config (``pipeline``), or the bundled demo (``demo``)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .args import EXIT_BUDGET


def _run_pipeline(cfg) -> int:
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
    from drsedge.run_config import load_run_config

    return _run_pipeline(load_run_config(a.config, _overrides(a)))


def cmd_demo(a) -> int:
    from drsedge.run_config import DEMO_CONFIG, load_run_config

    return _run_pipeline(load_run_config(DEMO_CONFIG, _overrides(a)))


def register(sub) -> None:
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
