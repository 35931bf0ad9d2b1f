#!/usr/bin/env python3
"""verify.py of a drsedge device bundle: does the engine built on this device compute what was measured at bundling?

Runs the engine (``trtexec``) or the bundle's ONNX (``--runner onnxruntime``) on every golden frame, compares each
output with the FP32 ONNX output stored beside the frame, and exits 0 only when every frame meets its tolerance.
Python >= 3.8 and numpy only (JetPack 5's system Python is 3.8; checked with ``vermin --target=3.8-``); no drsedge.

    python3 verify.py                       # trtexec on PATH or /usr/src/tensorrt/bin/trtexec, engine model.engine
    python3 verify.py --runner onnxruntime  # the same check with ONNX Runtime (the development machine, CI)
    python3 verify.py sidecar build.log     # build_engine.sh: model.engine.json from trtexec's log

Golden files (``manifest.json`` "golden"): ``golden/NAME.in.f32`` and ``golden/NAME.ref.f32``, raw little-endian
float32 ``[1, 3, H, W]`` (the layout ``trtexec --loadInputs`` reads), RGB in [0, 1]. ``trtexec --exportOutput``
writes ``[{"name": ..., "dimensions": "1x3xHxW", "values": [...]}]`` (NVIDIA/TensorRT ``samples/common/
sampleReporting.cpp``, ``exportJSONOutput``), floats at ostream precision, NaN as ``nan``.

Fidelity: PSNR-Y in dB of the output against the FP32 reference, both clipped to [0, 1], Y = (65.481 R + 128.553 G
+ 24.966 B + 16) / 255 (ITU-R BT.601, as MATLAB's ``rgb2ycbcr``), peak 1; and the max absolute difference over RGB.
Exit codes: 0 every frame passes, 1 a frame misses its tolerance, 2 the bundle or the runner is unusable.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TRTEXEC_DEFAULT = "/usr/src/tensorrt/bin/trtexec"  # JetPack's TensorRT samples package puts trtexec here

CAUSES = {
    "any": [
        "the engine was built from another ONNX than this bundle's (rebuild with ./build_engine.sh)",
        "the plugin library is not this bundle's build, or trtexec did not load it (see build.log)",
    ],
    "fp16": ["a layer ran in FP16 that the bundle pins to FP32 (weakly typed TensorRT ignored the precision constraints)"],
    "int8": ["the engine's INT8 scales are not the Q/DQ ONNX's (an implicit-calibration engine, or another INT8 ONNX)",
             "a layer ran in FP16 that the bundle pins to FP32 (weakly typed TensorRT ignored the precision constraints)"],
}


class BundleError(Exception):
    """The bundle or the runner cannot be used: exit 2 with one line."""


def psnr_y(out, ref):
    """PSNR-Y (dB, peak 1) of ``out`` against ``ref``, both ``[1, 3, H, W]`` RGB, clipped to [0, 1]; inf when equal."""
    w = np.array([65.481, 128.553, 24.966], dtype=np.float64).reshape(1, 3, 1, 1) / 255.0
    y1 = (np.clip(out.astype(np.float64), 0, 1) * w).sum(1) + 16.0 / 255.0
    y2 = (np.clip(ref.astype(np.float64), 0, 1) * w).sum(1) + 16.0 / 255.0
    mse = float(np.mean((y1 - y2) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def fidelity(out, ref):
    """``(PSNR-Y dB, max abs)`` of ``out`` vs ``ref``; ``(nan, nan)`` when ``out`` holds NaN or Inf."""
    if not np.isfinite(out).all():
        return float("nan"), float("nan")
    return psnr_y(out, ref), float(np.max(np.abs(out.astype(np.float64) - ref.astype(np.float64))))


def read_raw(path, shape):
    data = np.fromfile(path, dtype="<f4")
    if data.size != int(np.prod(shape)):
        raise BundleError("{}: {} floats, expected {} for shape {}; the bundle is damaged (re-copy it)".format(
            path, data.size, int(np.prod(shape)), "x".join(map(str, shape))))
    return data.reshape(shape)


def parse_trtexec_json(text, name):
    """The output tensor ``name`` from ``trtexec --exportOutput`` JSON, as float32 of its stated dimensions."""
    text = re.sub(r"(?<![\w.])-?nan\b", "NaN", text, flags=re.I)
    text = re.sub(r"(?<![\w.])(-?)inf\b", r"\1Infinity", text, flags=re.I)
    try:
        tensors = json.loads(text)
    except ValueError as e:
        raise BundleError(f"trtexec's --exportOutput file is not JSON ({e}); is this trtexec from TensorRT >= 8.5?") from None
    for t in tensors:
        if t.get("name") == name or len(tensors) == 1:
            dims = [int(d) for d in str(t["dimensions"]).split("x") if d]
            values = np.asarray(t["values"], dtype=np.float32)
            if values.size != int(np.prod(dims)):
                raise BundleError("trtexec output {}: {} values for dimensions {}".format(name, values.size, t["dimensions"]))
            return values.reshape(dims)
    raise BundleError("trtexec wrote no output named {!r} (outputs: {})".format(name, [t.get("name") for t in tensors]))


def find_trtexec(given):
    if given:
        return given
    return shutil.which("trtexec") or (TRTEXEC_DEFAULT if os.path.exists(TRTEXEC_DEFAULT) else None)


def run_trtexec(m, frame, args, work):
    exe = find_trtexec(args.trtexec)
    if not exe:
        raise BundleError(f"trtexec not found on PATH nor at {TRTEXEC_DEFAULT}; pass --trtexec PATH")
    engine = args.engine or os.path.join(HERE, m["engine"])
    if not os.path.isfile(engine):
        raise BundleError(f"{engine}: no engine; build it first with ./build_engine.sh")
    out_json = os.path.join(work, frame["name"] + ".json")
    cmd = [exe, "--loadEngine=" + engine, "--loadInputs={}:{}".format(m["input"], os.path.join(HERE, frame["input"])),
           "--exportOutput=" + out_json, "--iterations=1", "--warmUp=0", "--duration=0"]
    if m.get("plugin_flag"):
        cmd.append("{}={}".format(m["plugin_flag"], os.path.join(HERE, m["plugin"])))
    if m.get("dynamic"):
        cmd.append("--shapes={}:{}".format(m["input"], "x".join(map(str, frame["shape"]))))
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0 or not os.path.isfile(out_json):
        tail = [ln for ln in r.stdout.splitlines() if "Error" in ln or "error" in ln][-1:] or r.stdout.splitlines()[-1:]
        raise BundleError("trtexec failed on {} (exit {}): {}".format(frame["name"], r.returncode, tail[0] if tail else "no output"))
    with open(out_json) as f:
        return parse_trtexec_json(f.read(), m["output"])


def run_onnxruntime(m, frame, args, session=[]):  # noqa: B006 - one session per process
    try:
        import onnxruntime as ort
    except ImportError:
        raise BundleError("--runner onnxruntime needs onnxruntime (pip install onnxruntime)") from None
    if not session:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1  # the same result on every machine
        session.append(ort.InferenceSession(os.path.join(HERE, m.get("ort_onnx", m["onnx"])), so, providers=["CPUExecutionProvider"]))
    x = read_raw(os.path.join(HERE, frame["input"]), frame["shape"])
    return session[0].run(None, {m["input"]: x})[0]


def check(args):
    try:
        with open(os.path.join(HERE, "manifest.json")) as f:
            m = json.load(f)
    except (OSError, ValueError) as e:
        raise BundleError(f"{HERE}: cannot read manifest.json ({e}); run verify.py from an unpacked bundle") from None
    tol = m["tolerance"]
    rows, failed = [], []
    work = tempfile.mkdtemp(prefix="drsedge-verify-")
    try:
        for frame in m["golden"]:
            ref = read_raw(os.path.join(HERE, frame["reference"]), frame["shape"])
            out = run_onnxruntime(m, frame, args) if args.runner == "onnxruntime" else run_trtexec(m, frame, args, work)
            if tuple(out.shape) != tuple(ref.shape):
                raise BundleError("{}: output shape {} != reference {}".format(frame["name"], list(out.shape), list(ref.shape)))
            p, mx = fidelity(out, ref)
            ok = p == p and p >= tol["psnr_y_db"] and mx <= tol["max_abs"]
            rows.append((frame["name"], p, mx, ok))
            if not ok:
                failed.append((frame["name"], p, mx))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("{:<14} {:>12} {:>10}  (tolerance: PSNR-Y >= {:.2f} dB, max abs <= {:.4f}; {} {} on {})".format(
        "frame", "PSNR-Y dB", "max abs", tol["psnr_y_db"], tol["max_abs"], m["precision"], args.runner, m["target"]["name"]))
    for name, p, mx, ok in rows:
        print("{:<14} {:>12.2f} {:>10.5f}  {}".format(name, p, mx, "ok" if ok else "FAIL"))
    if not failed:
        print(f"PASS: {len(rows)} frame(s) within tolerance")
        return 0
    for name, p, mx in failed:
        if p != p:
            print(f"FAIL {name}: the output holds NaN or Inf")
        else:
            print("FAIL {}: PSNR-Y {:.2f} dB (tolerance {:.2f}, short by {:.2f} dB), max abs {:.5f} (tolerance {:.5f})".format(
                name, p, tol["psnr_y_db"], max(0.0, tol["psnr_y_db"] - p), mx, tol["max_abs"]))
    print("likely causes:")
    for cause in CAUSES["any"] + CAUSES.get(m["precision"], []):
        print("  - " + cause)
    return 1


def write_sidecar(log_path):
    """``model.engine.json`` from trtexec's build log: TensorRT version and GPU read on this device."""
    with open(os.path.join(HERE, "manifest.json")) as f:
        m = json.load(f)
    with open(log_path, errors="replace") as f:
        log = f.read()

    def grab(pattern):
        found = re.search(pattern, log)
        return found.group(1).strip() if found else None

    version = grab(r"TensorRT version:\s*([0-9][0-9.]*)")
    gpu = grab(r"Selected Device:\s*(.+)") or grab(r"Device:\s*\"?([^\"\n]+)")
    cc = grab(r"Compute Capability:\s*([0-9]+\.[0-9]+)")
    if not (version and gpu and cc):
        raise BundleError(f"{log_path}: trtexec's log names no TensorRT version / device; was the build successful?")
    engine = os.path.join(HERE, m["engine"])
    digest = hashlib.sha256()
    with open(os.path.join(HERE, m["onnx"]), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    side = dict(m["sidecar"], tensorrt_version=version, gpu_name=gpu, compute_capability=cc, onnx_sha256=digest.hexdigest(),
                built_by="bundle build_engine.sh")
    tmp = engine + ".json.tmp"
    with open(tmp, "w") as f:
        json.dump(side, f, indent=2)
    os.replace(tmp, engine + ".json")
    print("sidecar: {} (TensorRT {}, {}, sm_{})".format(engine + ".json", version, gpu, cc.replace(".", "")))
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["sidecar"]:
            if len(argv) != 2:
                raise BundleError("usage: verify.py sidecar BUILD_LOG")
            return write_sidecar(argv[1])
        ap = argparse.ArgumentParser(description="Check the engine against the bundle's golden frames.")
        ap.add_argument("--runner", choices=("trtexec", "onnxruntime"), default="trtexec")
        ap.add_argument("--engine", help="engine file (default: the bundle's model.engine)")
        ap.add_argument("--trtexec", help=f"trtexec binary (default: on PATH, else {TRTEXEC_DEFAULT})")
        return check(ap.parse_args(argv))
    except BundleError as e:
        print("verify.py: " + str(e), file=sys.stderr)
        return 2
    except (KeyError, TypeError, IndexError) as e:  # a manifest edited or cut short
        print(f"verify.py: manifest.json is incomplete or damaged ({type(e).__name__}: {e}); re-copy the bundle", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
