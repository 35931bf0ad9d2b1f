"""NVIDIA ModelOpt ONNX post-training quantization (``modelopt.onnx.quantization.quantize``), the TensorRT-style
Q/DQ placement, run on a CPU.

Install without ModelOpt's ``[onnx]`` extra (it pins older onnx/onnxruntime and pulls CUDA wheels; see
``../shared/notes/tensorrt.md``): ``pip install -e ".[modelopt]"`` = ``nvidia-modelopt`` plus the three modules its
ONNX path imports (``onnx_graphsurgeon``, ``onnxslim``, ``lief``). What this module does around the call, and why
(ModelOpt 0.47.0 sources, ``modelopt/onnx/``):

- runs ModelOpt in a child process: ModelOpt patches ``onnxruntime.quantization`` process-wide
  (``ort_patching.patch_ort_modules``), after which ONNX Runtime's own ``quantize_static`` (the ``ort`` backend)
  fails in the same process;
- quantizes a private copy in a temporary folder: ``quantize()`` rewrites its input in place
  (``trt_utils.py``: ``infer_shapes_path(onnx_path)``) and writes ``*_named.onnx`` / ``*_opset19.onnx`` beside it;
- ModelOpt's opset-19 upgrade (``onnx.version_converter``) drops model-local functions: it gets the unfused graph
  (:mod:`drsedge.compress.fused_qdq`, as every backend);
- ``calibration_method="max"``: measured on the demo student, one 256^2 rain200H/test crop, INT8 vs FP32
  output 39.0 dB with max vs 24.4 dB with ModelOpt's default ``entropy``;
- ``calibration_eps=["cpu"]`` (the default also tries CUDA and TensorRT); ``high_precision_dtype`` ``fp32`` for CPU
  targets, ``fp16`` for TensorRT targets (ModelOpt's default);
- the same float policy as the other backends (attention score path, depthwise convs, ``keep_float`` modules)
  through ``nodes_to_exclude`` (exact names) and ``op_types_to_exclude``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

from drsedge.choices import HIGH_PRECISIONS
from drsedge.errors import DrsedgeError, first_line

MISSING = ('NVIDIA ModelOpt is not installed: pip install -e ".[modelopt]" (nvidia-modelopt without its [onnx] extra, '
           "which would pull CUDA wheels and older onnx/onnxruntime)")
HIGH_PRECISION = HIGH_PRECISIONS


def to_opset19(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` at default-domain opset 19 with its model-local functions kept (``onnx.version_converter`` drops
    them); a model already at >= 19 is returned unchanged."""
    from onnx import version_converter

    cur = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if cur >= 19:
        return model
    funcs = list(model.functions)
    bare = onnx.ModelProto()
    bare.CopyFrom(model)
    del bare.functions[:]
    out = version_converter.convert_version(bare, 19)
    for f in funcs:
        for o in f.opset_import:
            if o.domain in ("", "ai.onnx"):
                o.version = 19
    out.functions.extend(funcs)
    # value_info of every tensor, through the functions too: ModelOpt's own pass needs the shape of what a fused node feeds
    return onnx.shape_inference.infer_shapes(out)


def modelopt_quantize(model: onnx.ModelProto, dst_tmp: str, calib_inputs: list[np.ndarray], skip_nodes: list[str],
                      skip_types: list[str], high_precision: str = "fp32") -> None:
    """Write the ModelOpt INT8 Q/DQ model of ``model`` to ``dst_tmp``.

    ``calib_inputs``: ``[1, 3, S, S]`` float32 crops in [0, 1], all the same size.

    Raises:
        DrsedgeError: ModelOpt missing, calibration crops of different sizes, or ModelOpt failing (first line).
    """
    if high_precision not in HIGH_PRECISION:
        raise DrsedgeError(f"high-precision dtype {high_precision!r}: use one of {HIGH_PRECISION}")
    import importlib.util

    if importlib.util.find_spec("modelopt") is None:
        raise DrsedgeError(MISSING)
    shapes = {x.shape for x in calib_inputs}
    if len(shapes) != 1:
        raise DrsedgeError(f"ModelOpt calibration needs crops of one size; got {sorted(shapes)}")
    std_types = [t for t in skip_types if t != "TopKSparseSoftmax"]  # ModelOpt checks op-type spelling
    with tempfile.TemporaryDirectory(prefix="drsedge-modelopt-") as d:
        src, out = os.path.join(d, "model.onnx"), os.path.join(d, "model.int8.onnx")  # ModelOpt writes intermediates beside both
        onnx.save(to_opset19(model), src)
        np.save(os.path.join(d, "calib.npy"), np.concatenate(calib_inputs, 0).astype(np.float32))
        job = {"src": src, "out": out, "input": model.graph.input[0].name, "high_precision": high_precision,
               "op_types_to_exclude": std_types or None, "nodes_to_exclude": [f"^{re.escape(n)}$" for n in skip_nodes] or None}
        Path(d, "job.json").write_text(json.dumps(job))
        # A child process: ModelOpt patches onnxruntime.quantization process-wide (ort_patching.patch_ort_modules),
        # after which ONNX Runtime's own quantize_static fails ("Quantization parameters are not specified ...").
        r = subprocess.run([sys.executable, "-m", __name__, d], capture_output=True, text=True)
        if r.returncode != 0:
            lines = [ln for ln in r.stderr.splitlines() if ln.startswith("drsedge-modelopt: ")]
            why = lines[-1].removeprefix("drsedge-modelopt: ") if lines else (r.stderr.strip().splitlines() or ["no output"])[-1][:160]
            raise DrsedgeError(f"ModelOpt quantization failed ({why})")
        if not Path(out).is_file():
            raise DrsedgeError("ModelOpt quantization wrote no model")
        shutil.move(out, dst_tmp)


def _worker(d: str) -> int:
    """The child process: one ``modelopt.onnx.quantization.quantize`` call described by ``d/job.json``."""
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("modelopt").setLevel(logging.WARNING)
    job = json.loads(Path(d, "job.json").read_text())
    try:
        from modelopt.onnx.quantization import quantize

        quantize(onnx_path=job["src"], quantize_mode="int8", calibration_data={job["input"]: np.load(os.path.join(d, "calib.npy"))},
                 calibration_method="max", calibration_eps=["cpu"], high_precision_dtype=job["high_precision"],
                 op_types_to_exclude=job["op_types_to_exclude"], nodes_to_exclude=job["nodes_to_exclude"], output_path=job["out"])
    except Exception as e:  # ModelOpt raises plain exceptions and asserts
        print(f"drsedge-modelopt: {first_line(e, 160)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1]))
