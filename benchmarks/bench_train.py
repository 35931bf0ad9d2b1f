"""Training throughput side by side in one run: images/s of teacher and student steps, eager vs channels-last vs
activation checkpointing vs torch.compile, fp32 vs bf16 autocast, and 1 vs 2 processes (torchrun, gloo on CPU /
NCCL on GPU).

    python benchmarks/bench_train.py [--device auto] [--steps 6] [--patch 64] [--batch 8] [--modes eager compile ...]

On a machine with an NVIDIA GPU the same command measures the full teacher at 128^2, batch 8, bf16: add
``--teacher-full --patch 128`` (steps/s and peak memory are printed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drsedge.models.config import ModelConfig, student_config
from drsedge.training.speed import activation_checkpointing, prepare, to_input_format

MODES = ("eager", "channels_last", "checkpoint", "compile")


def one(cfg: ModelConfig, device: str, precision: str, mode: str, steps: int, batch: int, patch: int) -> dict:
    dev = torch.device(device)
    model = cfg.build().to(dev).train()
    fwd = prepare(model, channels_last=mode == "channels_last", compile=mode == "compile")
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    x = to_input_format(torch.rand(batch, 3, patch, patch, device=dev), mode == "channels_last")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def step():
        with activation_checkpointing(model, mode == "checkpoint"), torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
            loss = (fwd(x).float() - x).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up (and compilation)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    out = {"images_per_s": batch / dt, "steps_per_s": 1 / dt}
    if dev.type == "cuda":
        out["peak_memory_GiB"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def ddp_images_per_s(nproc: int, steps: int, batch: int, patch: int, tmp: Path) -> float:
    """images/s of `drsedge train-teacher` on the demo student under torchrun (global batch `batch`)."""
    data = Path(__file__).resolve().parents[2] / "shared" / "data" / "rain200L" / "train"
    args = ["train-teacher", "--preset", "student", "--model", "dim=8", "--model", "num_blocks=[1,2,2,2]", "--train", str(data),
            "-o", str(tmp / f"ddp{nproc}"), "--steps", str(steps), "--batch-size", str(batch), "--patch", str(patch), "--checkpoint-every", "1000"]
    cmd = [sys.executable, "-m", "drsedge.cli", *args] if nproc == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "drsedge.cli", *args]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // nproc))}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    log_path = tmp / f"ddp{nproc}" / "train_log.jsonl"  # logged every 10 steps; shorter runs: wall time (start-up included)
    log = [json.loads(line) for line in log_path.read_text().splitlines()] if log_path.is_file() else []
    return float(log[-1]["images_per_s"]) if log else batch * steps / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--teacher-full", action="store_true", help="the paper's full teacher instead of the shipped small one")
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--precisions", nargs="+", choices=("fp32", "bf16", "fp16"), default=["fp32", "bf16"])
    ap.add_argument("--no-ddp", action="store_true", help="skip the 1 vs 2 process comparison")
    a = ap.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if a.device == "auto" else a.device
    teacher = ModelConfig() if a.teacher_full else ModelConfig(dim=16, num_blocks=[2, 3, 3, 4], ffn_expansion_factor=2.0, mefc=False)
    models = {"teacher": teacher, "student": student_config(dim=8, num_blocks=[1, 2, 2, 2])}
    rows = []
    for name, cfg in models.items():
        for precision in a.precisions:
            for mode in a.modes:
                try:
                    r = one(cfg, device, precision, mode, a.steps, a.batch, a.patch)
                except Exception as e:  # e.g. no compiler toolchain for torch.compile, out of memory
                    r = {"error": str(e).splitlines()[0][:100]}
                rows.append((name, precision, mode, r))
                print(name, precision, mode, r, file=sys.stderr, flush=True)
    first = {n: next((r for m, _p, _c, r in rows if m == n and "error" not in r), None) for n in models}
    base = {n: (r["images_per_s"] if r else float("nan")) for n, r in first.items()}
    print(f"## training throughput on {device} ({torch.get_num_threads()} threads), batch {a.batch}, {a.patch}^2, {a.steps} timed steps\n")
    print(f"| model | precision | mode | images/s | ratio vs {a.precisions[0]} {a.modes[0]} | peak GiB |\n|---|---|---|---|---|---|")
    for m, p, c, r in rows:
        if "error" in r:
            print(f"| {m} | {p} | {c} | – | {r['error']} | – |")
        else:
            print(f"| {m} | {p} | {c} | {r['images_per_s']:.1f} | {r['images_per_s'] / base[m]:.2f}x | {r.get('peak_memory_GiB', '–')} |")
    if a.no_ddp:
        return 0
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        one_p, two_p = ddp_images_per_s(1, a.steps, a.batch, a.patch, Path(d)), ddp_images_per_s(2, a.steps, a.batch, a.patch, Path(d))
    print(f"\nstudent, drsedge train-teacher: 1 process {one_p:.1f} images/s, 2 processes (torchrun) {two_p:.1f} images/s ({two_p / one_p:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
