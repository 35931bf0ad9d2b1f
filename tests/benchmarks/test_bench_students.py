"""benchmarks/bench_students.py: the results table and the paired differences on the same images (no training)."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_students.py"


def _result(arm, size, seed, psnr):
    s = {"psnr": psnr, "ssim": 0.9, "ci95": [psnr - 0.5, psnr + 0.5], "n": 3}
    return {"arm": arm, "size_gmacs": size, "steps": 10, "seed": seed, "params": 1000, "gmacs_256": size,
            "rain200L_test": s, "rain200H_test": s, "rain100L_all": s}


def test_paired_differences_are_per_image_means_against_the_sizes_reference(tmp_path):
    out = tmp_path / "bench.json"
    res = {"scratch_kd_g0.5_s0_10": _result("scratch_kd", 0.5, 0, 28.0), "pruned_kd_g0.5_s0_10": _result("pruned_kd", 0.5, 0, 27.0)}
    out.write_text(json.dumps(res))
    names = [f"{i}.png" for i in range(12)]
    ref = {n: 28.0 + (i % 3) for i, n in enumerate(names)}
    per = {"scratch_kd_g0.5_s0_10": ref,
           "pruned_kd_g0.5_s0_10": {n: v - 1.0 - 0.01 * (i % 2) for i, (n, v) in enumerate(ref.items())},  # mean Δ -1.005
           "shipped_student": {n: v + 2.0 for n, v in ref.items()}}
    (tmp_path / "bench_per_image.json").write_text(json.dumps(per))
    r = subprocess.run([sys.executable, str(SCRIPT), "--paired", "--out", str(out), "--runs", str(tmp_path / "none")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = {line.split("|")[2].strip(): line for line in r.stdout.splitlines() if line.startswith("| 0.5 ")}
    assert "(reference)" in rows["scratch_kd"] and "-2.00 [-2.00, -2.00]" in rows["scratch_kd"]
    cells = [c.strip() for c in rows["pruned_kd"].split("|")]
    assert cells[5].startswith("-1.00 [") or cells[5].startswith("-1.01 ["), cells  # -1.005 rounds either way
    lo, hi = (float(x) for x in cells[5].split("[")[1].rstrip("]").split(","))
    assert lo <= -1.0 <= hi + 0.01 and hi - lo < 0.05
    assert cells[6].startswith("-3.0")


def test_table_lists_every_result_by_size_then_arm(tmp_path):
    out = tmp_path / "bench.json"
    out.write_text(json.dumps({"a": _result("scratch_l1", 0.5, 0, 25.0), "b": _result("scratch_kd", 2.15, 0, 29.0),
                               "c": _result("scratch_kd", 0.5, 1, 27.5)}))
    r = subprocess.run([sys.executable, str(SCRIPT), "--table", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    body = [line for line in r.stdout.splitlines() if line.startswith("| 0.5") or line.startswith("| 2.15")]
    assert [line.split("|")[2].strip() for line in body] == ["scratch_kd", "scratch_kd", "scratch_l1"]
    assert body[0].startswith("| 2.15") and "29.00 [28.50, 29.50]" in body[0]
