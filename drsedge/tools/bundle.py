"""``drsedge bundle``: the device bundle (engine recipe, plugin sources, golden frames, verifier) and its check."""

from __future__ import annotations

from drsedge.choices import ATTENTION_EXPORTS

from .args import POS, float_type


def _hw(text: str) -> tuple[int, int]:
    import argparse

    try:
        h, w = (int(v) for v in text.lower().split("x"))
        if h <= 0 or w <= 0:
            raise ValueError
        return h, w
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give HxW, e.g. 256x256") from None


def cmd_bundle(a) -> int:
    from drsedge.bundle import BundleOptions, check_bundle, make_bundle
    from drsedge.errors import DrsedgeError

    if a.check:
        if a.model:
            raise DrsedgeError("--check DIR takes no MODEL; give one or the other")
        print(check_bundle(a.check), end="")
        print(f"bundle {a.check}: every file matches its sha256; verify.py --runner onnxruntime passed")
        return 0
    if not a.model or not a.output or not a.target:
        raise DrsedgeError("bundle: give MODEL -o DIR --target TARGET --images DIR... (or --check DIR)")
    out = make_bundle(BundleOptions(model=a.model, out=a.output, target=a.target, precision=a.precision, images=a.images or [],
                                    frames=a.frames, size=a.size, attention=a.attention, margin_db=a.margin))
    print(f"bundle: {out} ({a.precision}, {a.target}); copy it to the device, then ./build_engine.sh && python3 verify.py")
    return 0


def register(sub) -> None:
    from drsedge.bundle.targets import TARGET_HELP

    p = sub.add_parser("bundle", help="one folder for the device: the ONNX its TensorRT parses, plugin sources, build_engine.sh, "
                       "golden frames with tolerances and verify.py (Python 3.8 + numpy)")
    p.add_argument("model", nargs="?", help="FP32 ONNX, checkpoint (shipped:student too) or pipeline run directory")
    p.add_argument("-o", "--output", help="bundle folder (new, empty, or an earlier bundle, which is replaced)")
    p.add_argument("--target", help=TARGET_HELP)
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16")
    p.add_argument("--images", nargs="+", help="folders of real frames: golden frames (and FP16/INT8 calibration when derived)")
    p.add_argument("--frames", type=POS, default=4, help="golden frames (default 4)")
    p.add_argument("--size", type=_hw, help="golden frame size HxW inside the profile (default: the profile's opt, 256x256; "
                   "static exports: their size)")
    p.add_argument("--attention", choices=ATTENTION_EXPORTS, default="native", help="checkpoints: the export to bundle")
    p.add_argument("--margin", type=float_type(0.0, hi=40.0), default=3.0, help="dB below the fidelity measured here that the device may reach (default 3)")
    p.add_argument("--check", metavar="DIR", help="verify a bundle here: every sha256, then verify.py --runner onnxruntime")
    p.set_defaults(fn=cmd_bundle)
