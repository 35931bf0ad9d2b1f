"""Compact derainer recipes at equal MACs and steps (issue 34): distill from scratch vs from the pruned teacher.

Arms (each the same data, steps, patch, batch and seed):

* ``scratch_kd``: a from-scratch student of the size's architecture (``SIZES``; at 2.15 the shipped student's: dim 8, blocks 1/2/2/2), output KD;
* ``pruned_kd``: the shipped teacher pruned to the same MACs (``distill --init prune-teacher``), output KD;
* ``pruned_kd_feat``: as ``pruned_kd`` plus feature KD (``--feature-weight 0.1``);
* ``scratch_l1``: from scratch, L1 to ground truth only (``--lambda-kd 0``): what KD itself buys.

Selection sets are rain200L/test and rain200H/test; every result is scored once on all 100 Rain100L pairs (never used
to choose anything), with the 95 % bootstrap CI of the mean. Runs resume (``--resume``) after an interruption.

    python benchmarks/bench_students.py --steps 1500 [--arms scratch_kd pruned_kd] [--sizes 2.15 0.51] [--seeds 0 1 2] \\
        [--out benchmarks/results/bench_students.json]
    python benchmarks/bench_students.py --table     # the results table
    python benchmarks/bench_students.py --paired    # paired differences on the same 100 images (per-image PSNR in *_per_image.json)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ARMS = {
    "scratch_kd": ["--lambda-kd", "1.0"],
    "pruned_kd": ["--init", "prune-teacher", "--lambda-kd", "1.0"],
    "pruned_kd_feat": ["--init", "prune-teacher", "--lambda-kd", "1.0", "--feature-weight", "0.1"],
    "scratch_l1": ["--lambda-kd", "0.0"],
}
# target GMACs @256² -> the from-scratch architecture of that cost (student_config overrides; measured with model_info)
SIZES = {
    "2.15": ["--model", "dim=8", "--model", "num_blocks=[1,2,2,2]"],  # 2.146 GMACs, 373,930 params (the shipped student)
    "0.51": ["--model", "dim=4", "--model", "num_blocks=[1,2,2,2]", "--model", "ffn_expansion_factor=1.0"],  # 0.506 GMACs
    # 0.79: the size used while the MACs search stopped at 0.663 with depth ranked on real crops (it reaches 0.51 now)
    "0.79": ["--model", "dim=4", "--model", "num_blocks=[1,2,2,2]"],  # 0.792 GMACs, 119,770 params
}


def score(model_path: Path, data: Path) -> dict:
    import torch

    from drsedge.data.folders import find_pairs
    from drsedge.metrics.drift import Stage, evaluate_stages, paired_ci
    from drsedge.models.checkpoint import load_any
    from drsedge.models.info import model_info

    model, _ = load_any(model_path)

    def run(x):
        with torch.inference_mode():
            return model(x)

    out = {"params": sum(p.numel() for p in model.parameters()), "gmacs_256": model_info(model, 256, 256).gmacs}
    for name, folder in (("rain200L_test", data / "rain200L" / "test"), ("rain200H_test", data / "rain200H" / "test"),
                         ("rain100L_all", data / "rain100L")):
        rep = evaluate_stages([Stage("m", run, "torch")], find_pairs(folder), latency_hw=None, progress=False)
        per = [r["psnr"] for r in rep.stages[0].per_image.values()]
        out[name] = {"psnr": rep.stages[0].psnr, "ssim": rep.stages[0].ssim, "ci95": paired_ci(per), "n": len(per)}
        if name == "rain100L_all":
            out["per_image_psnr"] = {n: round(r["psnr"], 4) for n, r in rep.stages[0].per_image.items()}
    return out


def save_per_image(path: Path, key: str, per: dict[str, float]) -> None:
    """Merge one result's per-image Rain100L PSNR into ``path`` (re-read just before the atomic write)."""
    cur = json.loads(path.read_text()) if path.is_file() else {}
    cur[key] = per
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(cur, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


def paired(a, res: dict) -> str:
    """Markdown: every result against its size's ``scratch_kd`` seed-0 reference and against the shipped student, as the
    mean per-image PSNR difference on the same 100 Rain100L pairs with its 95 % paired BCa bootstrap CI
    (``drsedge.metrics.drift.paired_ci``). Scores results without per-image values first (models under ``--runs``)."""
    from drsedge.metrics.drift import paired_ci
    from drsedge.weights import resolve

    pf = per_image_path(a.out)
    try:
        per = json.loads(pf.read_text()) if pf.is_file() else {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        print(f"error: {pf}: not a readable per-image JSON ({e}); fix or remove it (it is rescored)", file=sys.stderr)
        raise SystemExit(2) from None
    todo = [k for k in res if k not in per and (a.runs / k / "model.safetensors").is_file()]
    todo += [k for k in REFERENCES if k not in per]
    for k in todo:
        print(f"scoring {k} per image ...", flush=True)
        model = a.runs / k / "model.safetensors" if k in res else Path(resolve(REFERENCES[k]))
        per[k] = score(model, a.data)["per_image_psnr"]
        save_per_image(pf, k, per[k])

    def diff(k, ref):
        if k not in per or ref not in per:
            return "n/a"
        d = [per[k][n] - per[ref][n] for n in sorted(per[ref])]  # a fixed order: the bootstrap's resamples index into it
        lo, hi = paired_ci(d)
        return f"{sum(d) / len(d):+.2f} [{lo:+.2f}, {hi:+.2f}]"

    rows = ["| size (GMACs @256²) | arm | seed | Rain100L | Δ vs scratch_kd seed 0 [95 % CI] | Δ vs shipped student [95 % CI] |",
            "|---|---|---|---|---|---|"]
    order = list(ARMS)
    for k, r in sorted(res.items(), key=lambda kr: (-kr[1]["size_gmacs"], order.index(kr[1]["arm"]), kr[1]["seed"])):
        ref = f"scratch_kd_g{r['size_gmacs']:g}_s0_{r['steps']}"
        rows.append(f"| {r['size_gmacs']} | {r['arm']} | {r['seed']} | {r['rain100L_all']['psnr']:.2f} | "
                    f"{'(reference)' if k == ref else diff(k, ref)} | {diff(k, 'shipped_student')} |")
    return "\n".join(rows)


def per_image_path(out: Path) -> Path:
    return out.with_name(out.stem + "_per_image.json")


# reference models scored per image for the paired table (never trained here)
REFERENCES = {"shipped_student": "shipped:student"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--sizes", nargs="+", default=["2.15"], choices=list(SIZES), help="target GMACs @256²")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--runs", type=Path, default=Path("runs/bench_students"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_students.json"))
    ap.add_argument("--table", action="store_true", help="print the results in --out as a markdown table and exit (no training)")
    ap.add_argument("--paired", action="store_true",
                    help="print every result's paired Rain100L difference to its size's scratch_kd seed 0 and to the shipped student, and exit")
    a = ap.parse_args()
    try:
        res = json.loads(a.out.read_text()) if a.out.is_file() else {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        ap.exit(2, f"error: {a.out}: not a readable results JSON ({e}); fix or remove it\n")
    if a.table:
        print(table(res))
        return
    if a.paired:
        print(paired(a, res))
        return
    from drsedge.cli import main as cli

    for size in a.sizes:
        for seed in a.seeds:
            for arm in a.arms:
                run_arm(a, res, cli, arm, size, seed)


def table(res: dict) -> str:
    """Markdown: one row per result, by size then arm; selection sets first, Rain100L (all 100 pairs, 95 % CI) last."""
    rows = ["| size (GMACs @256²) | arm | seed | params | GMACs | rain200L test (3) | rain200H test (3) | Rain100L, 100 pairs [95 % CI] |",
            "|---|---|---|---|---|---|---|---|"]
    order = list(ARMS)
    for r in sorted(res.values(), key=lambda r: (-r["size_gmacs"], order.index(r["arm"]), r["seed"])):
        rl = r["rain100L_all"]
        rows.append(f"| {r['size_gmacs']} | {r['arm']} | {r['seed']} | {r['params']:,} | {r['gmacs_256']:.3f} | {r['rain200L_test']['psnr']:.2f} | "
                    f"{r['rain200H_test']['psnr']:.2f} | {rl['psnr']:.2f} [{rl['ci95'][0]:.2f}, {rl['ci95'][1]:.2f}] |")
    return "\n".join(rows)


def run_arm(a, res: dict, cli, arm: str, size: str, seed: int) -> None:
    key = f"{arm}_g{size}_s{seed}_{a.steps}"
    out = a.runs / key
    cmd = ["distill", "--teacher", "shipped:teacher", "--train", str(a.data / "rain200H" / "train"), str(a.data / "rain200L" / "train"),
           "--unlabeled", str(a.data / "real"), "--skip-held-out-copies", "-o", str(out), "--steps", str(a.steps),
           "--batch-size", "4", "--patch", "64", "--seed", str(seed), "--checkpoint-every", "100", *ARMS[arm]]
    cmd += ["--target-gmacs", size] if "prune-teacher" in ARMS[arm] else SIZES[size]
    if key in res:
        return
    if (out / "train_state.pt").is_file():
        cmd.append("--resume")
    t0 = time.time()
    if not (out / "model.safetensors").is_file():
        code = cli(cmd)
        if code:
            raise SystemExit(f"{key}: distill exited {code}")
    scores = score(out / "model.safetensors", a.data)
    save_per_image(per_image_path(a.out), key, scores.pop("per_image_psnr"))
    res[key] = {"arm": arm, "size_gmacs": float(size), "steps": a.steps, "seed": seed, "train_seconds": round(time.time() - t0),
                "command": "drsedge " + " ".join(c for c in cmd if c != "--resume"), **scores}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_name(f".{a.out.name}.tmp")
    tmp.write_text(json.dumps(res, indent=2) + "\n")
    tmp.replace(a.out)
    r = res[key]
    print(f"{key}: {r['gmacs_256']:.3f} GMACs, rain200L test {r['rain200L_test']['psnr']:.2f}, rain200H test "
          f"{r['rain200H_test']['psnr']:.2f}, Rain100L (100) {r['rain100L_all']['psnr']:.2f} {r['rain100L_all']['ci95']}", flush=True)

if __name__ == "__main__":
    main()
