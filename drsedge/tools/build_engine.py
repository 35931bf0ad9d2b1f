"""``drsedge build-engine``: TensorRT engines (and the trtexec recipe per TensorRT version)."""

from __future__ import annotations

import sys

from drsedge.backend.trt.profile import DEFAULT_SHAPES

from .args import POS, add_plugin_arg, int_type


def cmd_build_engine(a) -> int:
    from drsedge.backend.trt import BuildOptions, Profile, build_path

    given = any(v is not None for v in (a.min_shape, a.opt_shape, a.max_shape))
    prof = Profile(*(Profile.parse(v or d) for v, d in ((a.min_shape, DEFAULT_SHAPES[0]), (a.opt_shape, DEFAULT_SHAPES[1]),
                                                        (a.max_shape, DEFAULT_SHAPES[2]))))
    o = BuildOptions(
        onnx=a.onnx, engine=a.output, precision=a.precision, plugin=a.plugin, profile=prof, timing_cache=a.timing_cache,
        optimization_level=a.optimization_level, workspace_mib=a.workspace, hardware_compatible=a.hardware_compatibility,
        version_compatible=a.version_compatible, fp16_keep_fp32=not a.fp16_all_layers, profile_given=given,
    )
    if a.print_trtexec:
        from drsedge.backend.trt.trtexec import trtexec_recipe

        o.plugin_on_device = True  # the library is built on the device: its kind may come from its name (review-2 N5)
        path = build_path(a.trt_version)
        line, notes = trtexec_recipe(o, path)
        for note in notes:
            print(f"# {note}", file=sys.stderr)
        print(line)
        return 0
    from drsedge.backend.trt.loader import build_engine

    engine, side = build_engine(o)
    print(f"engine: {engine} (TensorRT {side['tensorrt_version']}, {'strongly' if side['build_path']['strongly_typed'] else 'weakly'} typed, "
          f"{side['gpu_name']} sm_{side['compute_capability']}, {side['precision']}, {side['plugin_layers']} plugin layer(s), "
          f"{side['build_seconds']} s); sidecar: {engine}.json")
    return 0


def register(sub) -> None:
    p = sub.add_parser("build-engine", help="TensorRT engine (FP32/FP16/INT8) from an ONNX file, with a JSON sidecar")
    p.add_argument("onnx", help="FP32 ONNX (fp32 engines; fp16 on TensorRT < 10.12), FP16 ONNX (fp16 engines, "
                   "`drsedge export --precision fp16`) or the Q/DQ INT8 ONNX (int8 engines)")
    p.add_argument("-o", "--output", required=True, help="engine path; the sidecar is written to OUTPUT.json")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16")
    add_plugin_arg(p)
    p.add_argument("--min-shape", help=f"optimization profile (dynamic ONNX only; default {DEFAULT_SHAPES[0]})")
    p.add_argument("--opt-shape", help=f"default {DEFAULT_SHAPES[1]}")
    p.add_argument("--max-shape", help=f"default {DEFAULT_SHAPES[2]}")
    p.add_argument("--timing-cache", help="timing cache file, read if present and written back")
    p.add_argument("--optimization-level", type=int_type(0), default=3, help="builder optimization level 0..5")
    p.add_argument("--workspace", type=POS, default=1024, help="workspace limit in MiB")
    p.add_argument("--hardware-compatibility", action="store_true", help="Ampere+ hardware-compatible engine (TensorRT >= 8.6)")
    p.add_argument("--version-compatible", action="store_true", help="version-compatible engine (TensorRT >= 8.6)")
    p.add_argument("--fp16-all-layers", action="store_true",
                   help="weakly typed TensorRT (< 10.12): pin no layer to FP32 in FP16/INT8 engines (neither LayerNorm / q,k "
                        "normalisation nor the TKSA core and fused nodes)")
    p.add_argument("--print-trtexec", action="store_true",
                   help="print the equivalent trtexec command instead of building (no TensorRT needed; --plugin may name the "
                        "library as build.sh writes it on the device, e.g. build/libdrsedge_trt_plugin_static.so)")
    p.add_argument("--trt-version", default="10.13", metavar="X.Y",
                   help="TensorRT version the printed trtexec command targets (8.5 ... 11.x; default 10.13, JetPack 7)")
    p.set_defaults(fn=cmd_build_engine)
