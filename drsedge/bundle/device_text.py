"""The text files of a bundle meant for the device: ``build_engine.sh`` and ``README.md``."""

from __future__ import annotations

from .targets import Target

TRTEXEC_DEFAULT = "/usr/src/tensorrt/bin/trtexec"


def trtexec_line_of(script: str) -> str:
    """The ``trtexec`` line inside a ``build_engine.sh`` written by :func:`build_script`, as ``--print-trtexec`` prints it."""
    for ln in script.splitlines():
        if ln.startswith('"$TRTEXEC" '):
            return "trtexec " + ln[len('"$TRTEXEC" '):].split(" 2>&1 | tee build.log")[0]
    raise ValueError("no trtexec line")


def build_script(line: str, fused: bool, target: Target) -> str:
    """``build_engine.sh``: the plugin (fused exports), then ``line`` (from ``trtexec_recipe``), then the sidecar."""
    assert line.startswith("trtexec ")
    plugin = ('# The plugin, built for this board (build.sh reads the SoC from the device tree; CMake >= 3.18, nvcc from CUDA_HOME)\n'
              'BUILD_DIR="$PWD/plugin/build" bash plugin/build.sh\n') if fused else ""
    return f"""#!/usr/bin/env bash
# Build model.engine on the device ({target.name}: TensorRT {target.tensorrt}), then check it: python3 verify.py
# Written by `drsedge bundle`; the trtexec line is the one `drsedge build-engine --print-trtexec --trt-version {target.tensorrt}` prints.
set -euo pipefail
cd "$(dirname "$0")"
TRTEXEC=${{TRTEXEC:-$(command -v trtexec || echo {TRTEXEC_DEFAULT})}}
if [ ! -x "$TRTEXEC" ]; then
  echo "build_engine.sh: trtexec not found on PATH nor at {TRTEXEC_DEFAULT}; install TensorRT's samples or set TRTEXEC=/path/to/trtexec" >&2
  exit 2
fi
{plugin}"$TRTEXEC" {line[len("trtexec "):]} 2>&1 | tee build.log
python3 verify.py sidecar build.log
echo "engine: model.engine; next: python3 verify.py"
"""


def readme(m: dict, fused: bool) -> str:
    """The device-side README: three commands (build, verify, run) and what each failure means."""
    t = m["target"]
    tol = m["tolerance"]
    plugin_arg = f" --plugin {m['plugin']}" if fused else ""
    if t["runs_drsedge"]:
        cuda_py = "'cuda-python>=13,<14'" if (t.get("cuda") or "").startswith("13") else "'cuda-python>=12,<13'"
        run = f"""```bash
# once: drsedge's runtime beside JetPack's own TensorRT bindings (python3-libnvinfer), no PyTorch
python3 -m venv --system-site-packages ~/drsedge-venv && . ~/drsedge-venv/bin/activate
pip install -e 'DRSEDGE_CHECKOUT[runtime]' {cuda_py}
drsedge stream v4l2:///dev/video0 --model model.engine{plugin_arg} -o derained.mp4
drsedge derain model.engine FRAMES_DIR{plugin_arg} -o derained/
```"""
        if not t["jetson"]:
            run = run.replace("JetPack's own TensorRT bindings (python3-libnvinfer)", "this machine's TensorRT Python bindings")
    else:
        run = (f"JetPack {t['name'].split('-')[1]} has Python {t['python']}; drsedge needs Python >= 3.10, so it does not run here. "
               "Run the engine with `trtexec --loadEngine=model.engine` (timing) or from your own TensorRT C++/Python application, "
               f"loading `{m['plugin'] or 'no plugin'}` first. `verify.py` runs on Python 3.8.")
    return f"""# drsedge device bundle: {m['precision'].upper()} engine for {t['name']} (TensorRT {t['tensorrt']})

Made by drsedge {m['drsedge_version']} from `{m['model']}`. Every file's sha256 is in `manifest.json`.

## 1. Build (on this device)
```bash
./build_engine.sh          # {'plugin, then ' if fused else ''}trtexec -> model.engine + model.engine.json (GPU read here)
```
Failures: `trtexec not found` (install TensorRT's samples; JetPack has it at /usr/src/tensorrt/bin); `CMake ... too old`
(`python3 -m pip install --user 'cmake>=3.18'`); `nvcc not found` (set CUDA_HOME); a parser error naming
`TopKSparseSoftmax` (the plugin library did not load: check plugin/build).

## 2. Verify (on this device)
```bash
python3 verify.py          # each golden frame: PSNR-Y >= {tol['psnr_y_db']} dB and max abs <= {tol['max_abs']} vs the FP32 ONNX
```
Exit 0: the engine computes what was measured at bundling. Exit 1: a frame missed its tolerance; the table names it and
the likely causes (another ONNX, another plugin build, FP16 where FP32 was pinned, INT8 scales not from the Q/DQ ONNX).
Exit 2: the bundle or trtexec is unusable (the line says which).

## 3. Run
{run}
"""


