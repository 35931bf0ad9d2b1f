"""Build an engine with Polygraphy's TensorRT loaders, on the path the installed TensorRT needs.

``NetworkFromOnnxPath`` (strongly typed from 10.12 on; Polygraphy >= 0.50.3 tracks TensorRT 11's API),
``CreateConfig`` and ``EngineBytesFromNetwork`` do the TensorRT calls; drsedge adds what they do not: the
plugin library loaded the way its registration needs (:func:`.plugins.load_plugin`; Polygraphy's
``LoadPlugins`` only dlopens, which registers nothing for a loadLibrary library), the per-version precision
rules, the function-stripped ONNX before 10.7, the plugin-layer count, the FP32 layers of weakly typed
FP16/INT8 engines, the plugin library serialized into version-compatible engines, and the sidecar. Nothing here
runs without TensorRT and a GPU.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from drsedge.errors import DrsedgeError, first_line
from drsedge.fileio import atomic_write
from drsedge.jsonio import dumps_strict

from ._import import import_tensorrt, installed_version
from .config import BuildOptions, int8_float_precision, verify_plugin_layers, weak_fp32_layers
from .onnx_prep import write_plugin_only_copy
from .plugins import load_plugin
from .provenance import make_sidecar
from .version import BuildPath, build_path


def plugin_only_path(engine: str) -> Path:
    """Where the function-stripped ONNX goes: next to the engine (``ENGINE.plugin_only.onnx``)."""
    return Path(str(engine) + ".plugin_only.onnx")


def parse_network(onnx_path: str, path: BuildPath, plugin: str | None, version_compatible: bool = False):  # pragma: no cover - needs TensorRT
    """``(builder, network, parser)`` from Polygraphy's ``NetworkFromOnnxPath``, after loading the plugin library.

    Raises:
        DrsedgeError: the wrong plugin library for this TensorRT, or the parser's first error, quoted in one line.
    """
    from polygraphy.backend.trt import NetworkFromOnnxPath

    if plugin:
        load_plugin(import_tensorrt(), plugin, path, version_compatible)
    kwargs = {"strongly_typed": True} if path.create_flag == "STRONGLY_TYPED" else {}
    try:
        return NetworkFromOnnxPath(str(onnx_path), **kwargs)()
    except Exception as e:  # Polygraphy raises PolygraphyException after logging the parser errors
        raise DrsedgeError(f"{onnx_path}: TensorRT {path.label} cannot parse it ({first_line(e)})") from None


def plugin_layer_names(network, trt) -> list[str]:  # pragma: no cover - needs TensorRT
    """Names of the network's plugin layers (PLUGIN, PLUGIN_V2 and, from 10.x, PLUGIN_V3)."""
    kinds = {getattr(trt.LayerType, k) for k in ("PLUGIN", "PLUGIN_V2", "PLUGIN_V3") if hasattr(trt.LayerType, k)}
    return [network.get_layer(i).name for i in range(network.num_layers) if network.get_layer(i).type in kinds]


def create_config(o: BuildOptions, path: BuildPath, trt, network=None):  # pragma: no cover - needs TensorRT
    """Polygraphy ``CreateConfig`` for ``o``: precision flags only on weakly typed TensorRT (< 10.12); the
    plugin library serialized into a version-compatible engine (``IBuilderConfig.plugins_to_serialize``,
    NVIDIA/TensorRT ``pyOnnxDoc.h`` ``get_used_vc_plugin_libraries``)."""
    from polygraphy.backend.trt import CreateConfig, PostprocessConfig
    from polygraphy.backend.trt import Profile as PgProfile

    prof = PgProfile().add(o.profile.input, min=o.profile.min, opt=o.profile.opt, max=o.profile.max)
    kw = {"profiles": [] if o.profile.static else [prof], "memory_pool_limits": {trt.MemoryPoolType.WORKSPACE: o.workspace_mib << 20}}
    if path.weak_precision_flags:
        kw["fp16"] = o.precision in ("fp16", "int8")
        kw["int8"] = o.precision == "int8"
        if o.precision in ("fp16", "int8") and o.fp16_keep_fp32 and network is not None and pin_fp32_layers(network, o, trt):
            kw["precision_constraints"] = "obey"
    if path.builder_optimization_level:
        kw["builder_optimization_level"] = o.optimization_level
    if o.hardware_compatible:
        kw["hardware_compatibility_level"] = trt.HardwareCompatibilityLevel.AMPERE_PLUS
    if o.version_compatible:
        kw["version_compatible"] = True
    if o.timing_cache:
        kw["load_timing_cache"] = o.timing_cache
    config = CreateConfig(**kw)
    if o.version_compatible and o.plugin:
        plugin = str(Path(o.plugin).resolve())

        def serialize_plugin(builder, network, cfg):
            cfg.plugins_to_serialize = [plugin]

        config = PostprocessConfig(config, serialize_plugin)
    return config


def pin_fp32_layers(network, o: BuildOptions, trt) -> int:  # pragma: no cover - needs TensorRT
    """Pin :func:`weak_fp32_layers` to FP32 (precision and float outputs); returns how many layers were pinned.

    Shape layers and non-float outputs are skipped: TensorRT keeps them INT32/INT64 and reports an error for any
    other request (``NvInfer.h`` ``ILayer::setOutputType``; NVIDIA/TensorRT#3177).
    """
    keep = set(weak_fp32_layers(o.onnx))
    floats = (trt.float32, trt.float16)
    n = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.name not in keep or layer.type == trt.LayerType.SHAPE:
            continue
        outs = [j for j in range(layer.num_outputs) if layer.get_output(j).dtype in floats]
        if not outs:
            continue
        layer.precision = trt.float32
        for j in outs:
            layer.set_output_type(j, trt.float32)
        n += 1
    return n


def gpu_identity() -> tuple[str, str]:
    """``(GPU name, "major.minor")`` of device 0 from cuda-python (no PyTorch needed).

    Raises:
        DrsedgeError: no cuda-python or no visible GPU.
    """
    from .cuda_rt import cudart, no_gpu_message

    rt = cudart()
    err, dev = rt.cudaGetDevice()
    if int(err) != 0:
        raise DrsedgeError(no_gpu_message(err, "TensorRT engines are built on the GPU that runs them"))
    err, props = rt.cudaGetDeviceProperties(dev)
    if int(err) != 0:
        raise DrsedgeError(f"cannot read the GPU's properties ({err})")
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return name.rstrip("\0"), f"{props.major}.{props.minor}"


def build_engine(o: BuildOptions) -> tuple[Path, dict]:  # pragma: no cover - needs a GPU and TensorRT
    """Build ``o.engine`` and ``o.engine.json`` (atomically; nothing is left behind on failure).

    Raises:
        TensorRTMissingError: no TensorRT bindings.
        DrsedgeError: unsupported TensorRT version, the checks of :meth:`BuildOptions.validate`, no GPU, the wrong
            plugin library, parser errors, fused nodes that did not become plugin layers, or a failed build.
    """
    trt = import_tensorrt()
    version = installed_version(trt)
    path = build_path(version)
    info = o.validate(path)
    gpu_name, cc = gpu_identity()  # before the build: a machine without a GPU fails here, not after minutes
    from polygraphy.backend.trt import EngineBytesFromNetwork

    if o.precision == "int8" and int8_float_precision(path, info) == "fp32":
        print(f"note: TensorRT {path.label} is strongly typed: this FP32 Q/DQ graph gives an INT8+FP32 engine (weakly typed "
              "TensorRT builds INT8+FP16 from it); for INT8+FP16 quantize with --backend modelopt --high-precision fp16",
              file=sys.stderr)
    t0 = time.time()
    parse_from, stripped = o.onnx, None
    if path.strip_local_functions and info["fused_nodes"]:
        stripped = write_plugin_only_copy(o.onnx, plugin_only_path(o.engine))
        parse_from = str(stripped)
    try:
        builder, network, parser = parse_network(parse_from, path, o.plugin, o.version_compatible)
        plugins = plugin_layer_names(network, trt)
        verify_plugin_layers(info["fused_nodes"], plugins, str(o.onnx))
        config = create_config(o, path, trt, network)
        try:
            blob = EngineBytesFromNetwork((builder, network, parser), config=config, save_timing_cache=o.timing_cache)()
        except Exception as e:
            raise DrsedgeError(f"{o.onnx}: TensorRT {path.label} engine build failed ({first_line(e)})") from None
        if blob is None:
            raise DrsedgeError(f"{o.onnx}: TensorRT {path.label} engine build failed (no engine; see TensorRT's log above)")
    except BaseException:
        if stripped is not None:
            Path(stripped).unlink(missing_ok=True)
        raise
    verified = {"parsed": True, "built": True, "plugin_layers_counted": True, "run": False}
    side = make_sidecar(o, version, gpu_name, cc, time.time() - t0, path.to_dict(), len(plugins),
                        str(stripped) if stripped else None, verified)
    if o.precision == "int8":
        side["int8_float_precision"] = int8_float_precision(path, info)
    out = atomic_write(o.engine, lambda tmp: Path(tmp).write_bytes(bytes(blob)))
    atomic_write(str(out) + ".json", lambda tmp: Path(tmp).write_text(dumps_strict(side, indent=2)))
    return out, side
