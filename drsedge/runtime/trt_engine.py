"""TensorRT engines: build options, the equivalent ``trtexec`` command, and the JSON sidecar.

An engine is only valid for the TensorRT version and GPU it was built with
(unless built version-/hardware-compatible). Every engine drsedge writes gets
``<engine>.json`` beside it (TensorRT version, GPU name and compute capability,
precision, optimization profile, sha256 of the ONNX and of the plugin library,
build flags, build seconds), and :func:`check_sidecar` refuses an engine whose
sidecar does not match the running TensorRT / GPU with a one-line reason.

Nothing here needs a GPU except :func:`build_engine` itself.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from drsedge.errors import DrsedgeError
from drsedge.fileio import sha256

PRECISIONS = ("fp32", "fp16", "int8")
INPUT_NAME = "image"
# Layers kept in FP32 inside FP16 engines by default: LayerNorm statistics and the q/k L2 normalisation
# overflow easily in FP16 (ONNX node-name fragments as exported by drsedge).
FP16_UNSAFE_PATTERNS = ("norm1/body", "norm2/body", "ReduceL2", "LpNormalization", "attn/Div")


@dataclass
class Shapes:
    """Optimization profile for the image input, each ``(N, 3, H, W)``."""

    min: tuple[int, int, int, int] = (1, 3, 64, 64)
    opt: tuple[int, int, int, int] = (1, 3, 256, 256)
    max: tuple[int, int, int, int] = (1, 3, 720, 1280)

    def check(self) -> None:
        """Raises DrsedgeError unless min <= opt <= max element-wise and H, W are multiples of 8."""
        for name, s in (("min", self.min), ("opt", self.opt), ("max", self.max)):
            if len(s) != 4 or s[1] != 3:
                raise DrsedgeError(f"profile {name} shape {s} must be N x 3 x H x W")
            if s[2] % 8 or s[3] % 8:
                raise DrsedgeError(f"profile {name} shape {s}: H and W must be multiples of 8 (the model downsamples 3 times)")
        if not all(a <= b <= c for a, b, c in zip(self.min, self.opt, self.max)):
            raise DrsedgeError(f"profile opt {self.opt} is outside min {self.min} / max {self.max}")

    @staticmethod
    def parse(text: str) -> tuple[int, int, int, int]:
        """``"1x3x256x256"`` -> ``(1, 3, 256, 256)``; raises DrsedgeError on bad text."""
        try:
            dims = tuple(int(t) for t in text.lower().split("x"))
        except ValueError:
            dims = ()
        if len(dims) != 4:
            raise DrsedgeError(f"shape {text!r}: expected NxCxHxW, e.g. 1x3x256x256")
        return dims  # type: ignore[return-value]


@dataclass
class BuildOptions:
    """What ``drsedge build-engine`` builds; mirrors trtexec flags."""

    onnx: str
    engine: str
    precision: str = "fp16"
    plugin: str | None = None
    shapes: Shapes = field(default_factory=Shapes)
    timing_cache: str | None = None
    optimization_level: int = 3
    workspace_mib: int = 1024
    hardware_compatible: bool = False
    version_compatible: bool = False
    fp16_keep_fp32: bool = True  # keep FP16_UNSAFE_PATTERNS layers in FP32 (FP16 engines)

    def validate(self) -> None:
        """Check everything that can be checked without TensorRT or a GPU.

        Raises:
            DrsedgeError: unknown precision, missing/unparsable ONNX, a custom op without a plugin
                library, a missing plugin file, INT8 without Q/DQ nodes, bad profile, bad levels.
        """
        if self.precision not in PRECISIONS:
            raise DrsedgeError(f"precision {self.precision!r}: use one of {PRECISIONS}")
        if not 0 <= self.optimization_level <= 5:
            raise DrsedgeError(f"builder optimization level {self.optimization_level} must be in 0..5")
        if self.workspace_mib <= 0:
            raise DrsedgeError("workspace limit must be > 0 MiB")
        self.shapes.check()
        ops = onnx_op_types(self.onnx)
        custom = sorted({f"{d}::{t}" for d, t in ops if d not in ("", "ai.onnx")})
        if custom and not self.plugin:
            raise DrsedgeError(
                f"{self.onnx}: has custom op(s) {custom} but no plugin library; pass --plugin "
                "native/topk_sparse_softmax/build/libdrsedge_trt_plugin.so (see its README to build it)"
            )
        if self.plugin and not Path(self.plugin).is_file():
            raise DrsedgeError(f"{self.plugin}: plugin library not found; build it with native/topk_sparse_softmax/build.sh")
        has_qdq = any(t == "QuantizeLinear" for _, t in ops)
        if self.precision == "int8" and not has_qdq:
            raise DrsedgeError(
                f"{self.onnx}: INT8 engines use explicit quantization; give the Q/DQ model from `drsedge quantize`"
            )


def onnx_op_types(path: str | os.PathLike) -> set[tuple[str, str]]:
    """``{(domain, op_type)}`` of the graph's nodes. Raises DrsedgeError on a missing or unparsable file."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise DrsedgeError(f"{path}: ONNX file not found")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise DrsedgeError(f"{path}: not a valid ONNX model ({str(e).splitlines()[0][:120]})") from None
    return {(n.domain, n.op_type) for n in model.graph.node}


def fp16_unsafe_nodes(path: str | os.PathLike) -> list[str]:
    """ONNX node names of the FP16-unsafe layers (LayerNorm statistics, q/k L2-normalisation).

    Empty for an export made with ``--fp16-safe`` (metadata ``drsedge.fp16_safe = "1"``): its
    reductions are bounded (:mod:`drsedge.models.fp16_safe`) and need no FP32 layers.
    TensorRT's ONNX parser names each layer after its node, so these names address the layers.
    ``drsedge fp16-check`` measures which of them actually overflow on real images.
    """
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    if any(p.key == "drsedge.fp16_safe" and p.value == "1" for p in model.metadata_props):
        return []
    return [
        n.name for n in model.graph.node
        if n.name and n.op_type != "Constant" and any(p in n.name or p == n.op_type for p in FP16_UNSAFE_PATTERNS)
    ]


def _shape(s) -> str:
    return "x".join(str(d) for d in s)


def trtexec_command(o: BuildOptions, tensorrt_major: int = 10) -> str:
    """The ``trtexec`` command line equivalent to ``o`` (for building by hand on a Jetson).

    ``--staticPlugins`` loads the self-registering plugin library; TensorRT 8.x trtexec calls that flag
    ``--plugins``. ``--builderOptimizationLevel``/``--hardwareCompatibilityLevel`` exist from 8.6 on.
    """
    args = ["trtexec", f"--onnx={o.onnx}", f"--saveEngine={o.engine}"]
    if o.plugin:
        static = str(Path(o.plugin).with_name(Path(o.plugin).name.replace("libdrsedge_trt_plugin.so", "libdrsedge_trt_plugin_static.so")))
        args.append(f"--staticPlugins={static}" if tensorrt_major >= 10 else f"--plugins={static}")
    args += [f"--minShapes={INPUT_NAME}:{_shape(o.shapes.min)}", f"--optShapes={INPUT_NAME}:{_shape(o.shapes.opt)}",
             f"--maxShapes={INPUT_NAME}:{_shape(o.shapes.max)}"]
    if o.precision in ("fp16", "int8"):
        args.append("--fp16")
    if o.precision == "int8":
        args.append("--int8")  # explicit Q/DQ: scales come from the ONNX, no calibrator
    if o.precision == "fp16" and o.fp16_keep_fp32:
        keep = fp16_unsafe_nodes(o.onnx)
        if keep:
            args += ["--precisionConstraints=obey", "--layerPrecisions=" + ",".join(f"{n}:fp32" for n in keep)]
    if o.timing_cache:
        args.append(f"--timingCacheFile={o.timing_cache}")
    args += [f"--builderOptimizationLevel={o.optimization_level}", f"--memPoolSize=workspace:{o.workspace_mib}M"]
    if o.hardware_compatible:
        args.append("--hardwareCompatibilityLevel=ampere+")
    if o.version_compatible:
        args.append("--versionCompatible")
    return " ".join(shlex.quote(a) for a in args)


def make_sidecar(o: BuildOptions, tensorrt_version: str, gpu_name: str, compute_capability: str, build_seconds: float) -> dict:
    """The JSON sidecar written next to an engine."""
    return {
        "tensorrt_version": tensorrt_version,
        "gpu_name": gpu_name,
        "compute_capability": compute_capability,
        "precision": o.precision,
        "profile": {"input": INPUT_NAME, "min": list(o.shapes.min), "opt": list(o.shapes.opt), "max": list(o.shapes.max)},
        "onnx": o.onnx,
        "onnx_sha256": sha256(o.onnx),
        "plugin": o.plugin,
        "plugin_sha256": sha256(o.plugin) if o.plugin else None,
        "flags": {k: v for k, v in asdict(o).items() if k not in ("onnx", "engine", "plugin", "shapes")},
        "build_seconds": round(build_seconds, 1),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def check_sidecar(sidecar: dict, tensorrt_version: str, compute_capability: str, plugin: str | None = None, engine: str = "engine") -> None:
    """Refuse an engine built for another TensorRT / GPU / plugin build.

    TensorRT must match exactly unless the engine is version-compatible (then the major must match);
    the compute capability must match unless it is hardware-compatible (then >= 8.0 is required).

    Raises:
        DrsedgeError: one line naming the engine and the mismatch.
    """
    flags = sidecar.get("flags", {})
    built = sidecar.get("tensorrt_version", "?")
    if flags.get("version_compatible"):
        if built.split(".")[0] != tensorrt_version.split(".")[0]:
            raise DrsedgeError(f"{engine}: built with TensorRT {built}, running {tensorrt_version}: version-compatible engines need the same major")
    elif built != tensorrt_version:
        raise DrsedgeError(f"{engine}: built with TensorRT {built}, running {tensorrt_version}; rebuild it with `drsedge build-engine`")
    cc = sidecar.get("compute_capability", "?")
    if flags.get("hardware_compatible"):
        if float(compute_capability) < 8.0:
            raise DrsedgeError(f"{engine}: hardware-compatible (Ampere+) engine cannot run on compute capability {compute_capability}")
    elif cc != compute_capability:
        raise DrsedgeError(f"{engine}: built for compute capability {cc} ({sidecar.get('gpu_name')}), this GPU is {compute_capability}; rebuild it here")
    want = sidecar.get("plugin_sha256")
    if want:
        if not plugin or not Path(plugin).is_file():
            raise DrsedgeError(f"{engine}: needs the plugin library it was built with ({sidecar.get('plugin')}); pass --plugin")
        if sha256(plugin) != want:
            raise DrsedgeError(f"{engine}: plugin library {plugin} differs from the one it was built with (sha256 mismatch); rebuild the engine")


def read_sidecar(engine: str | os.PathLike) -> dict:
    """Load ``<engine>.json``; raises DrsedgeError when it is missing or corrupt."""
    p = Path(str(engine) + ".json")
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise DrsedgeError(f"{engine}: no sidecar {p.name}; drsedge only runs engines it built (rebuild with `drsedge build-engine`)") from None
    except json.JSONDecodeError as e:
        raise DrsedgeError(f"{p}: corrupt sidecar ({e})") from None


def build_engine(o: BuildOptions) -> tuple[Path, dict]:  # pragma: no cover - needs a GPU and TensorRT
    """Build the engine with the TensorRT Python API; writes ``o.engine`` and its sidecar atomically.

    Raises:
        DrsedgeError: TensorRT missing, no GPU, parser errors (first one quoted), build failure.
    """
    o.validate()
    try:
        import tensorrt as trt
    except ImportError:
        raise DrsedgeError("TensorRT Python bindings missing: pip install -e '.[trt]' (needs an NVIDIA GPU to build)") from None
    from drsedge.fileio import atomic_write

    t0 = time.time()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    if o.plugin:
        builder.get_plugin_registry().load_library(str(o.plugin))
    major = int(trt.__version__.split(".")[0])
    network = builder.create_network(0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(o.onnx)):
        err = parser.get_error(0) if parser.num_errors else "unknown error"
        raise DrsedgeError(f"{o.onnx}: TensorRT cannot parse it ({err})")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, o.workspace_mib << 20)
    if hasattr(config, "builder_optimization_level"):
        config.builder_optimization_level = o.optimization_level
    if o.precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if o.precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
    if o.precision == "fp16" and o.fp16_keep_fp32:
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        keep = set(fp16_unsafe_nodes(o.onnx))
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            if layer.name in keep:
                layer.precision = trt.float32
                for j in range(layer.num_outputs):
                    layer.set_output_type(j, trt.float32)
    if o.hardware_compatible and hasattr(trt, "HardwareCompatibilityLevel"):
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
    if o.version_compatible and hasattr(trt.BuilderFlag, "VERSION_COMPATIBLE"):
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
    cache = None
    if o.timing_cache:
        data = Path(o.timing_cache).read_bytes() if Path(o.timing_cache).is_file() else b""
        cache = config.create_timing_cache(data)
        config.set_timing_cache(cache, ignore_mismatch=False)
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, o.shapes.min, o.shapes.opt, o.shapes.max)
    config.add_optimization_profile(profile)
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise DrsedgeError(f"{o.onnx}: TensorRT engine build failed (see the TensorRT log above)")
    engine = atomic_write(o.engine, lambda tmp: Path(tmp).write_bytes(bytes(blob)))
    if cache is not None:
        atomic_write(o.timing_cache, lambda tmp: Path(tmp).write_bytes(bytes(cache.serialize())))
    import torch

    props = torch.cuda.get_device_properties(0)
    side = make_sidecar(o, trt.__version__, props.name, f"{props.major}.{props.minor}", time.time() - t0)
    atomic_write(str(engine) + ".json", lambda tmp: Path(tmp).write_text(json.dumps(side, indent=2)))
    return engine, side


class TrtRunner:  # pragma: no cover - needs a GPU and TensorRT
    """A TensorRT engine with the runner API of :class:`drsedge.runtime.OrtRunner` (TensorRT >= 8.5 tensor API).

    ``runner(x [B, 3, H, W] float32)`` returns a CPU float32 tensor; ``latency_ms`` times with CUDA events.

    Raises:
        DrsedgeError: no GPU / TensorRT, a sidecar that does not match this TensorRT or GPU, or a plugin
            library that is missing or differs from the one the engine was built with.
    """

    def __init__(self, engine: str | os.PathLike, name: str = "trt", plugin: str | None = None):
        import torch

        if not torch.cuda.is_available():
            raise DrsedgeError(f"{engine}: running a TensorRT engine needs a CUDA GPU")
        try:
            import tensorrt as trt
        except ImportError:
            raise DrsedgeError("TensorRT Python bindings missing: pip install -e '.[trt]'") from None
        side = read_sidecar(engine)
        props = torch.cuda.get_device_properties(0)
        check_sidecar(side, trt.__version__, f"{props.major}.{props.minor}", plugin, str(engine))
        self.logger = trt.Logger(trt.Logger.WARNING)
        if plugin:
            trt.get_plugin_registry().load_library(str(plugin))
        runtime = trt.Runtime(self.logger)
        if side.get("flags", {}).get("version_compatible"):
            runtime.engine_host_code_allowed = True
        self.engine = runtime.deserialize_cuda_engine(Path(engine).read_bytes())
        if self.engine is None:
            raise DrsedgeError(f"{engine}: TensorRT could not deserialize it")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        self.name, self.path, self.sidecar = name, Path(engine), side
        self._torch, self._trt = torch, trt

    def _dtype(self, tensor_name):
        t = self.engine.get_tensor_dtype(tensor_name)
        return self._torch.float16 if t == self._trt.float16 else self._torch.float32

    def run_cuda(self, x):
        torch = self._torch
        x = x.to(device="cuda", dtype=self._dtype(self.input)).contiguous()
        self.context.set_input_shape(self.input, tuple(x.shape))
        out = torch.empty(tuple(self.context.get_tensor_shape(self.output)), dtype=self._dtype(self.output), device="cuda")
        self.context.set_tensor_address(self.input, x.data_ptr())
        self.context.set_tensor_address(self.output, out.data_ptr())
        if not self.context.execute_async_v3(torch.cuda.current_stream().cuda_stream):
            raise DrsedgeError(f"{self.path}: TensorRT execution failed")
        return out

    def __call__(self, x):
        return self.run_cuda(x).float().cpu()

    def latency_ms(self, height: int = 256, width: int = 256, runs: int = 50, warmup: int = 10) -> dict:
        """Median / p95 GPU time (CUDA events) of one ``[1, 3, height, width]`` inference, input already on the GPU."""
        torch = self._torch
        x = torch.rand(1, 3, height, width, device="cuda")
        for _ in range(warmup):
            self.run_cuda(x)
        times = []
        for _ in range(runs):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            self.run_cuda(x)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        times.sort()
        return {"height": height, "width": width, "runs": runs, "median_ms": times[len(times) // 2],
                "p95_ms": times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]}
