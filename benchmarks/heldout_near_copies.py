"""Detection and false-positive rates of the held-out near-copy guard (:mod:`drsedge.data.near_copy`).

Detection: every Rain100L file (200) re-saved as JPEG q70/q80/q90/q100, rescaled by 0.9 and 1.1 (bicubic), and
cropped by 5 % (centred, from the top-left, the bottom-right, the left). False positives: every image under
``../shared/data`` outside ``rain100L/`` (checked by content: a hit there is reported with its PSNR so a true copy
can be told from a false one).

    python benchmarks/heldout_near_copies.py [--data ../shared/data] [--out benchmarks/results/heldout_near_copies.json]
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

from PIL import Image

from drsedge.data.images import IMAGE_SUFFIXES
from drsedge.data.near_copy import near_copy


def variants(im: Image.Image):
    w, h = im.size
    for q in (70, 80, 90, 100):
        b = io.BytesIO()
        im.save(b, "JPEG", quality=q)
        yield f"jpeg_q{q}", Image.open(io.BytesIO(b.getvalue()))
    for s in (0.9, 1.1):
        yield f"rescale_{s}", im.resize((round(w * s), round(h * s)), Image.Resampling.BICUBIC)
    c = 0.05
    yield "crop5_centre", im.crop((round(w * c / 2), round(h * c / 2), w - round(w * c / 2), h - round(h * c / 2)))
    yield "crop5_top_left", im.crop((0, 0, w - round(w * c), h - round(h * c)))
    yield "crop5_bottom_right", im.crop((round(w * c), round(h * c), w, h))
    yield "crop5_left", im.crop((round(w * c), 0, w, h))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--out", default="benchmarks/results/heldout_near_copies.json")
    a = ap.parse_args()
    data = Path(a.data)
    held = sorted((data / "rain100L").rglob("*.png"))
    others = sorted(f for f in data.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and "rain100L" not in f.parts)
    t0 = time.time()
    det: dict[str, list[int]] = {}
    missed: list[str] = []
    tmp = Path("/tmp/drsedge-near-copy-bench.png")
    for f in held:
        with Image.open(f) as im:
            im = im.convert("RGB")
            for name, v in variants(im):
                v.save(tmp, "PNG")
                hit = near_copy(tmp)
                det.setdefault(name, []).append(int(hit is not None))
                if hit is None:
                    missed.append(f"{f.parent.name}/{f.name} {name}")
    t_det = time.time() - t0
    t0 = time.time()
    hits = {str(f.relative_to(data)): near_copy(f) for f in others}
    t_fp = time.time() - t0
    found = {k: {"held_out": v.name, "hash_distance": v.distance, "thumb_psnr_db": v.psnr_db} for k, v in hits.items() if v}
    res = {
        "held_out_files": len(held),
        "detection_rate": {k: sum(v) / len(v) for k, v in det.items()},
        "missed": missed,
        "non_held_out_files": len(others),
        "non_held_out_hits": found,
        "seconds_per_file": round(t_fp / max(1, len(others)), 4),
        "seconds_detection": round(t_det, 1),
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
