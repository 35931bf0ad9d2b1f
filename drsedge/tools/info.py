"""``drsedge info``: params and MACs of a model config or checkpoint."""

from __future__ import annotations

import json

from drsedge.jsonio import dumps_strict

from .args import POS, PRESETS, model_config


def cmd_info(a) -> int:
    from drsedge.data.images import check_frame_size
    from drsedge.models.checkpoint import load_any
    from drsedge.models.info import model_info

    h, w = a.size
    check_frame_size(h, w, "--hw")  # before anything is allocated: a 10^5 px side would ask for 120 GB
    if a.checkpoint:
        model, cfg = load_any(a.checkpoint)
    else:
        cfg = model_config(a.preset, a.model)
        model = cfg.build()
    info = model_info(model, h, w)
    d = {"config": cfg.to_dict(), "params": info.params, "macs": info.macs, "gmacs": round(info.gmacs, 3), "height": h, "width": w}
    if a.json:
        print(dumps_strict(d, indent=2))
    else:
        print(f"config: {json.dumps(cfg.to_dict())}")
        print(f"params: {info.params:,}")
        print(f"MACs @ {h}x{w}: {info.macs:,} ({info.gmacs:.2f} GMACs)")
    return 0


def register(sub) -> None:
    p = sub.add_parser("info", help="params and MACs of a model config or checkpoint")
    p.add_argument("--preset", choices=PRESETS, default="drsformer")
    p.add_argument("--model", action="append", metavar="KEY=VALUE")
    p.add_argument("--checkpoint", help="read the config from a checkpoint instead")
    p.add_argument("--hw", "--size", dest="size", type=POS, nargs=2, default=[256, 256], metavar=("H", "W"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_info)
