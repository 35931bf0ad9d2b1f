"""``drsedge metrics``: PSNR-Y / SSIM-Y of a prediction folder against a target folder."""

from __future__ import annotations

from drsedge.jsonio import dumps_strict


def cmd_metrics(a) -> int:
    from drsedge.metrics.folder import evaluate_folders

    m = evaluate_folders(a.pred_dir, a.target_dir, a.convention)
    if a.json:
        print(dumps_strict(m.to_dict(), indent=2))
    else:
        for name, v in m.per_image.items():
            print(f"{name}: PSNR {v['psnr']:.2f} dB  SSIM {v['ssim']:.4f}")
        print(f"mean over {len(m.per_image)} images ({a.convention}): PSNR {m.psnr:.2f} dB  SSIM {m.ssim:.4f}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("metrics", help="PSNR-Y/SSIM-Y of a prediction folder against a target folder")
    p.add_argument("pred_dir")
    p.add_argument("target_dir")
    p.add_argument("--convention", choices=("matlab", "basicsr", "udr"), default="matlab",
                   help="matlab: DRSformer's script; basicsr: float Y; udr: UDR-S2Former's test.py (R/B swapped, for its numbers only)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_metrics)
