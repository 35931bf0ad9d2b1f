"""SIGTERM stops every long command like Ctrl-C, with a message and exit 143 (issue 37: `pipeline` and `derain`
exited 143 with nothing on stderr)."""

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tests.conftest import REPO

pytestmark = pytest.mark.slow  # subprocesses that import torch


def _written(d) -> list:
    return [p for p in d.iterdir() if not p.name.startswith(".")] if d.is_dir() else []


def _term_after(cmd, wait_for: str | None, cwd, timeout: float = 120.0) -> tuple[int, str]:
    """Start ``cmd``, wait until its stderr+stdout holds ``wait_for`` (None: until its first output file appears in
    ``cwd/out``), send SIGTERM; returns (exit code, output)."""
    log = cwd / "log.txt"
    with open(log, "w") as f:
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    t0 = time.time()
    ready = (lambda: wait_for in log.read_text()) if wait_for else (lambda: bool(_written(cwd / "out")))
    while not ready() and p.poll() is None and time.time() - t0 < timeout:
        time.sleep(0.2)
    assert p.poll() is None, log.read_text()
    p.send_signal(signal.SIGTERM)
    return p.wait(timeout=60), log.read_text()


def test_sigterm_stops_derain_with_a_message(tmp_path, data_dir):
    frames = data_dir / "video" / "nturain_ra1" / "ra1_Rain"
    out = tmp_path / "out"
    code, text = _term_after([sys.executable, "-m", "drsedge", "derain", "shipped:student", str(frames), "-o", str(out)], None, tmp_path)
    assert code == 143, text
    assert "terminated by SIGTERM" in text.splitlines()[-1]
    assert not [p for p in out.rglob(".*")]  # no temporary file left behind
    assert 0 < len(_written(out)) < 60  # stopped mid-way


def test_sigterm_stops_the_pipeline_with_a_message(tmp_path, data_dir):
    from tests.test_pipeline import TINY

    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "run_dir": str(tmp_path / "run"), "teacher": {**TINY["teacher"], "train": {
        "steps": 100000, "batch_size": 2, "patch": 32, "checkpoint_every": 1}}}))
    code, text = _term_after([sys.executable, "-m", "drsedge", "pipeline", "--config", str(cfg), "--data", str(data_dir)],
                             "[teacher] running", tmp_path)
    assert code == 143, text
    assert "terminated by SIGTERM" in text.splitlines()[-1]
