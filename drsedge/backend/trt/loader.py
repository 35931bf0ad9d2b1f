"""Build an engine with Polygraphy's TensorRT loaders, on the path the installed TensorRT needs.

``NetworkFromOnnxPath`` (strongly typed from 10.12 on; Polygraphy >= 0.50.3 tracks TensorRT 11's API),
``LoadPlugins``, ``CreateConfig`` and ``EngineFromNetwork`` do the TensorRT calls; drsedge adds what they
do not: the per-version precision rules, the function-stripped ONNX before 10.7, the plugin-layer count,
the FP32 layers of weakly typed FP16 engines, and the sidecar. Nothing here runs without TensorRT and a GPU.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from drsedge.errors import DrsedgeError, first_line
from drsedge.fileio import atomic_write

from ._import import import_tensorrt, installed_version
from .config import BuildOptions, fp16_unsafe_nodes, verify_plugin_layers
from .onnx_prep import write_plugin_only_copy
from .provenance import make_sidecar
from .version import BuildPath, build_path


def plugin_only_path(engine: str) -> Path:
    """Where the function-stripped ONNX goes: next to the engine (``ENGINE.plugin_only.onnx``)."""
    return Path(str(engine) + ".plugin_only.onnx")


def parse_network(onnx_path: str, path: BuildPath, plugin: str | None):  # pragma: no cover - needs TensorRT
    """``(builder, network, parser)`` from Polygraphy's ``NetworkFromOnnxPath`` with the plugin library loaded.

    Raises:
        DrsedgeError: the parser's first error, quoted in one line.
    """
    from polygraphy.backend.trt import LoadPlugins, NetworkFromOnnxPath

    kwargs = {"strongly_typed": True} if path.create_flag == "STRONGLY_TYPED" else {}
    src = LoadPlugins(plugins=[plugin], obj=str(onnx_path)) if plugin else str(onnx_path)
    try:
        return NetworkFromOnnxPath(src, **kwargs)()
    except Exception as e:  # Polygraphy raises PolygraphyException after logging the parser errors
        raise DrsedgeError(f"{onnx_path}: TensorRT {path.label} cannot parse it ({first_line(e)})") from None


def plugin_layer_names(network, trt) -> list[str]:  # pragma: no cover - needs TensorRT
    """Names of the network's plugin layers (PLUGIN, PLUGIN_V2 and, from 10.x, PLUGIN_V3)."""
    kinds = {getattr(trt.LayerType, k) for k in ("PLUGIN", "PLUGIN_V2", "PLUGIN_V3") if hasattr(trt.LayerType, k)}
    return [network.get_layer(i).name for i in range(network.num_layers) if network.get_layer(i).type in kinds]


def create_config(o: BuildOptions, path: BuildPath, trt, network=None):  # pragma: no cover - needs TensorRT
    """Polygraphy ``CreateConfig`` for ``o``: precision flags only on weakly typed TensorRT (< 10.12)."""
    from polygraphy.backend.trt import CreateConfig
    from polygraphy.backend.trt import Profile as PgProfile

    prof = PgProfile().add(o.profile.input, min=o.profile.min, opt=o.profile.opt, max=o.profile.max)
    kw = {"profiles": [prof], "memory_pool_limits": {trt.MemoryPoolType.WORKSPACE: o.workspace_mib << 20}}
    if path.weak_precision_flags:
        kw["fp16"] = o.precision in ("fp16", "int8")
        kw["int8"] = o.precision == "int8"
        if o.precision == "fp16" and o.fp16_keep_fp32 and network is not None and _pin_fp32_layers(network, o, trt):
            kw["precision_constraints"] = "obey"
    if path.builder_optimization_level:
        kw["builder_optimization_level"] = o.optimization_level
    if o.hardware_compatible:
        kw["hardware_compatibility_level"] = trt.HardwareCompatibilityLevel.AMPERE_PLUS
    if o.version_compatible:
        kw["version_compatible"] = True
    if o.timing_cache:
        kw["load_timing_cache"] = o.timing_cache
    return CreateConfig(**kw)


def _pin_fp32_layers(network, o: BuildOptions, trt) -> int:  # pragma: no cover - needs TensorRT
    keep = set(fp16_unsafe_nodes(o.onnx))
    n = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.name in keep:
            layer.precision = trt.float32
            for j in range(layer.num_outputs):
                layer.set_output_type(j, trt.float32)
            n += 1
    return n


def build_engine(o: BuildOptions) -> tuple[Path, dict]:  # pragma: no cover - needs a GPU and TensorRT
    """Build ``o.engine`` and ``o.engine.json`` (atomically; nothing is left behind on failure).

    Raises:
        TensorRTMissingError: no TensorRT bindings.
        DrsedgeError: unsupported TensorRT version, the checks of :meth:`BuildOptions.validate`, parser errors,
            fused nodes that did not become plugin layers, a failed build, or no GPU.
    """
    trt = import_tensorrt()
    version = installed_version(trt)
    path = build_path(version)
    info = o.validate(path)
    from polygraphy.backend.trt import EngineFromNetwork

    t0 = time.time()
    parse_from, stripped = o.onnx, None
    if path.strip_local_functions and info["fused_nodes"]:
        stripped = write_plugin_only_copy(o.onnx, plugin_only_path(o.engine))
        parse_from = str(stripped)
    try:
        builder, network, parser = parse_network(parse_from, path, o.plugin)
        plugins = plugin_layer_names(network, trt)
        verify_plugin_layers(info["fused_nodes"], plugins, str(o.onnx))
        config = create_config(o, path, trt, network)
        try:
            engine = EngineFromNetwork((builder, network, parser), config=config, save_timing_cache=o.timing_cache)()
        except Exception as e:
            raise DrsedgeError(f"{o.onnx}: TensorRT {path.label} engine build failed ({first_line(e)})") from None
        blob = engine.serialize()
    except BaseException:
        if stripped is not None:
            Path(stripped).unlink(missing_ok=True)
        raise
    import torch

    props = torch.cuda.get_device_properties(0)
    verified = {"parsed": True, "built": True, "plugin_layers_counted": True, "run": False}
    side = make_sidecar(o, version, props.name, f"{props.major}.{props.minor}", time.time() - t0, path.to_dict(), len(plugins),
                        str(stripped) if stripped else None, verified)
    out = atomic_write(o.engine, lambda tmp: Path(tmp).write_bytes(bytes(blob)))
    atomic_write(str(out) + ".json", lambda tmp: Path(tmp).write_text(json.dumps(side, indent=2)))
    return out, side
