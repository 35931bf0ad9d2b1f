"""``drsedge synth-rain``: synthetic rain on clean photos."""

from __future__ import annotations

from .args import NONNEG, POS, add_skip_copies


def cmd_synth_rain(a) -> int:
    from drsedge.data.synth_rain import synth_rain

    res = synth_rain(a.clean, a.output, preset=a.preset, per_image=a.per_image, seed=a.seed, limit=a.limit, progress=True)
    print(f"synth-rain: {res['pairs']} pairs ({res['preset']}, seed {res['seed']}) in {res['output']}/input + target")
    return 0


def register(sub) -> None:
    from drsedge.data.synth_rain import PRESET_NAMES

    p = sub.add_parser("synth-rain", help="paired input/+target/ folders with synthetic rain on clean photos (Yang et al. 2017 model)")
    p.add_argument("clean", nargs="+", metavar="CLEAN_DIR", help="folders of clean images (PNG, JPEG, TIFF)")
    p.add_argument("-o", "--output", required=True, help="output folder (input/ and target/ are written inside)")
    p.add_argument("--preset", choices=PRESET_NAMES, default="light", help="light: Rain100L-like; heavy: several layers + veil; mixed: drawn per image; raindrop: drops on the lens; "
                        "rain+drop: streaks and drops")
    p.add_argument("--per-image", type=POS, default=1, help="rainy versions per clean image")
    p.add_argument("--seed", type=NONNEG, default=0)
    p.add_argument("--limit", type=POS, help="only the first N clean images")
    add_skip_copies(p)
    p.set_defaults(fn=cmd_synth_rain)
