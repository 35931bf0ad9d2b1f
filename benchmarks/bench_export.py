"""The exported graph against the machine: upstream-structure vs deploy export, FP32 vs INT8, in ONNX Runtime and
OpenVINO CPU, with the achieved GMAC/s as a fraction of a peak measured in the same run and runtime.

    python benchmarks/bench_export.py [--models student pruned dim24] [--sizes 256x256 720x1280] [--runs 5]
                                      [--int8 ort nncf] [--runtimes ort openvino] [--baseline FILE.onnx] [--json out.json]

Models: ``student`` = the shipped student (drsedge/weights), ``pruned`` = it with the demo's pruning (MSFN, ratio 0.5,
l2; no fine-tuning: the speed depends on the widths only), ``dim24`` = a dim-24 student (random init, seed 0).
Exports: ``upstream`` = ``drsedge export --structure upstream`` (the trained module structure, not folded; node for
node the graph of main 4ce09a9 except the q/k normalisation and threshold top-k, see ``--baseline``), ``deploy`` =
the default (:mod:`drsedge.models.reparam` + onnxslim). ``--baseline FILE`` adds a file exported elsewhere (e.g. by
4ce09a9) for the shipped student. INT8: ``drsedge quantize`` of the deploy export (ORT QDQ: u8 activations, s8
per-channel weights; NNCF), calibrated on 16 crops of rain200H/train + rain200L/train (never rain100L).

GMAC/s counts the *model's* multiply-accumulates (:func:`drsedge.models.info.model_info`, conv + matmul, the
original structure), so a deploy graph that computes extra zeros (3x3 kernels as 5x5) gets no credit for them.
Peak: the same runtime running a chain of 8 large 1x1 convolutions + ReLU (256 -> 256 channels on 128x128, 8.6 GMAC;
FP32, and INT8 as a QDQ graph quantized by ONNX Runtime, u8 activations / s8 weights, which both runtimes run as
integer convs with VNNI; the chain amortises the Quantize/Dequantize at its ends), timed in the same interleaved
rounds, medians and p95 over the rounds. One runtime at a time (its variants and peaks interleaved), ONNX Runtime's
memory arena off above 512x512 (RAM), OpenVINO at f32 inference precision.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _timing import interleaved_rounds

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PEAK_C, PEAK_HW, PEAK_DEPTH = 256, 128, 8


def _models(names: list[str]):
    import torch

    from drsedge.compress.prune import prune_model
    from drsedge.models import load_any, student_config
    from drsedge.weights import resolve

    out = {}
    shipped, cfg = load_any(resolve("shipped:student"))
    for n in names:
        if n == "student":
            out[n] = shipped
        elif n == "pruned":
            out[n] = prune_model(shipped, cfg, 0.5, "l2", ("msfn",))[0].eval()
        elif n == "dim24":
            torch.manual_seed(0)
            out[n] = student_config(dim=24, num_blocks=[1, 2, 2, 2]).build().eval()
        else:
            raise SystemExit(f"unknown model {n!r}: use student, pruned, dim24")
    return out


def _peak_models(tmp: Path):
    """A chain of large 1x1 convs + ReLU as an FP32 ONNX and its INT8 QDQ form (ONNX Runtime static quantization, u8/s8)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    rng = np.random.default_rng(1)
    nodes, inits, x = [], [], "image"
    for i in range(PEAK_DEPTH):
        inits.append(numpy_helper.from_array(rng.standard_normal((PEAK_C, PEAK_C, 1, 1)).astype(np.float32) * 0.06, f"w{i}"))
        nodes += [helper.make_node("Conv", [x, f"w{i}"], [f"c{i}"]), helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        x = f"r{i}"
    nodes.append(helper.make_node("Identity", [x], ["y"]))
    g = helper.make_graph(
        nodes, "peak", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, PEAK_C, PEAK_HW, PEAK_HW])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, PEAK_C, PEAK_HW, PEAK_HW])], inits)
    fp32 = tmp / "peak_fp32.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), fp32)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"image": np.random.default_rng(2).random((1, PEAK_C, PEAK_HW, PEAK_HW), dtype=np.float32)}])

        def get_next(self):
            return next(self.it, None)

    int8 = tmp / "peak_int8.onnx"
    quantize_static(str(fp32), str(int8), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=True)
    return {"fp32": fp32, "int8": int8}, PEAK_DEPTH * PEAK_C * PEAK_C * PEAK_HW * PEAK_HW


def _runner(runtime: str, path: Path, arena: bool):
    from drsedge.runtime.onnx_np import OnnxModel
    from drsedge.runtime.openvino_np import OpenVinoModel

    return OnnxModel(path, arena=arena) if runtime == "ort" else OpenVinoModel(path)


def _raw_call(runtime: str, path: Path):
    """A zero-overhead call for any input shape (the peak conv has 256 channels, not 3)."""
    if runtime == "ort":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3
        s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        name = s.get_inputs()[0].name
        return lambda x: s.run(None, {name: x})
    import openvino as ov

    # f32 as OpenVinoModel: on AMX/AVX512-BF16 CPUs OpenVINO's default inference precision is bf16
    c = ov.Core().compile_model(str(path), "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"})
    req = c.create_infer_request()
    return lambda x: req.infer({0: x})


def _timed(fns: dict, runs: int) -> dict[str, tuple[float, float]]:
    """Interleaved rounds after one warm-up: name -> (median ms, p95 ms)."""
    return {k: (statistics.median(v), float(np.percentile(v, 95))) for k, v in interleaved_rounds(fns, runs).items()}


def ort_layout_counts(path: Path) -> dict:
    """Node count of ONNX Runtime's optimized graph (ORT_ENABLE_ALL, CPU) and its layout/copy nodes: ReorderInput /
    ReorderOutput (NCHWc conversions) and Slice / Concat on feature maps inside a transformer block (by node name)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as d:
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.optimized_model_filepath = str(Path(d) / "opt.onnx")
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        m = onnx.load(so.optimized_model_filepath)
    ops = collections.Counter(n.op_type for n in m.graph.node)
    in_block = [n for n in m.graph.node if n.op_type in ("Slice", "Concat", "Split") and any(f"{lv}." in n.name for lv in (
        "encoder_level", "decoder_level", "latent"))]
    shape_only = [n for n in in_block if n.op_type == "Concat" and "Unsqueeze" in "".join(n.input)]  # int64 shape vectors
    return {"nodes": len(m.graph.node), "ReorderInput": ops["ReorderInput"], "ReorderOutput": ops["ReorderOutput"],
            "block_slice_concat": len(in_block) - len(shape_only), "block_shape_concat": len(shape_only)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["student", "pruned", "dim24"])
    ap.add_argument("--sizes", nargs="+", default=["256x256", "720x1280"])
    ap.add_argument("--runtimes", nargs="+", default=["ort", "openvino"])
    ap.add_argument("--int8", nargs="*", default=["ort", "nncf"], help="quantize backends for the INT8 rows (none: FP32 only)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--baseline", help="an ONNX of the shipped student exported elsewhere (e.g. by main 4ce09a9)")
    ap.add_argument("--json")
    a = ap.parse_args()

    import onnx

    from drsedge.export import export_onnx
    from drsedge.models.info import model_info

    tmp = Path(tempfile.mkdtemp(prefix="bench-export-"))
    peak_paths, peak_macs = _peak_models(tmp)
    calib = None
    if a.int8:
        from drsedge.calibration import calibration_set

        calib = calibration_set([DATA / "rain200H" / "train", DATA / "rain200L" / "train"], size=128, limit=16)
    results: dict = {"peak": {}, "models": {}}
    for name, model in _models(a.models).items():
        paths = {"upstream": export_onnx(model, tmp / f"{name}_upstream.onnx", structure="upstream"),
                 "deploy": export_onnx(model, tmp / f"{name}_deploy.onnx")}
        if a.baseline and name == "student":
            paths = {"baseline": Path(a.baseline), **paths}
        for b in a.int8 or []:
            from drsedge.compress.quantize import quantize_onnx

            paths[f"int8 {b}"] = quantize_onnx(paths["deploy"], tmp / f"{name}_int8_{b}.onnx", calib, b)
        info = {k: {"onnx_nodes": len(onnx.load(str(p)).graph.node), **ort_layout_counts(p)} for k, p in paths.items()}
        res = results["models"][name] = {"graphs": info, "sizes": {}}
        for size in a.sizes:
            h, w = (int(v) for v in size.split("x"))
            macs = model_info(model, h, w).macs
            x = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
            px = np.random.default_rng(0).random((1, PEAK_C, PEAK_HW, PEAK_HW), dtype=np.float32)
            t = {}
            for rt in a.runtimes:  # one runtime's sessions at a time, and no ORT arena above 512^2: a dim-24 student
                fns, runners = {}, []  # at 720p with eight sessions open ran this 24 GiB machine out of memory
                for k, p in paths.items():
                    try:
                        r = _runner(rt, p, arena=h * w <= 512 * 512)
                    except Exception as e:  # OpenVINO refuses signed-INT8 activation Q/DQ (NNCF, ModelOpt): see README
                        print(f"{rt} {k}: not run ({str(e).splitlines()[0][:140]})", file=sys.stderr)
                        continue
                    runners.append(r)
                    fns[f"{rt}|{k}"] = lambda r=r: r(x)
                for prec, p in peak_paths.items():
                    call = _raw_call(rt, p)
                    fns[f"{rt}|peak {prec}"] = lambda f=call: f(px)
                t.update(_timed(fns, a.runs))
                del runners, fns
            res["sizes"][size] = {"gmacs": macs / 1e9, "ms": t}
            for rt in a.runtimes:
                for prec in peak_paths:
                    results["peak"].setdefault(rt, {}).setdefault(prec, []).append(peak_macs / t[f"{rt}|peak {prec}"][0] / 1e6)
            _print_size(name, size, macs, t, a.runtimes, list(paths), peak_macs, info)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))
    return 0


def _print_size(name, size, macs, t, runtimes, keys, peak_macs, info) -> None:
    print(f"\n## {name} at {size}: {macs / 1e9:.2f} GMAC (model, original structure)\n")
    print("| runtime | graph | ONNX nodes | ORT-optimized nodes (Reorder in/out) | ms median | ms p95 | GMAC/s | % of peak | "
          "speed-up vs upstream |")
    print("|---|---|---|---|---|---|---|---|---|")
    for rt in runtimes:
        peak32, peak8 = (peak_macs / t[f"{rt}|peak {p}"][0] / 1e6 for p in ("fp32", "int8"))
        base = t[f"{rt}|upstream"][0]
        for k in keys:
            if f"{rt}|{k}" not in t:
                print(f"| {rt} | {k} | – | – | not run (refused by the runtime) | | | | |")
                continue
            med, p95 = t[f"{rt}|{k}"]
            gmacs = macs / med / 1e6
            peak = peak8 if k.startswith("int8") else peak32
            g = info[k]
            print(f"| {rt} | {k} | {g['onnx_nodes']} | {g['nodes']} ({g['ReorderInput']}/{g['ReorderOutput']}) | {med:.1f} | {p95:.1f} | "
                  f"{gmacs:.1f} | {gmacs / peak:.1%} of {'INT8' if k.startswith('int8') else 'FP32'} {peak:.0f} | {base / med:.2f}x |")
    print()


if __name__ == "__main__":
    sys.exit(main())
