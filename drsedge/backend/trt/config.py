"""What ``drsedge build-engine`` builds (:class:`BuildOptions`) and everything checkable without TensorRT.

Precision rules per TensorRT generation (:mod:`.version`):

* weak typing (< 10.12): ``fp16`` sets ``BuilderFlag.FP16``; ``int8`` sets FP16 + INT8 flags on an explicit Q/DQ
  ONNX (INT8 + FP16 engine). Both keep :func:`weak_fp32_layers` in FP32 with obeyed precision constraints: the
  FP16-unsafe layers (LayerNorm statistics, q/k L2-normalisation; none for ``--fp16-safe`` exports) and the TKSA
  core (:func:`drsedge.onnx_graph.attention_core`, the fused nodes), because a weakly typed builder otherwise
  picks each layer's precision itself (``NvInfer.h``, ``ILayer::setPrecision``) and the FP16 ONNX's islands are
  not binding before 10.12. Only layers with float outputs are pinned (shape layers stay INT32/INT64).
* strong typing (>= 10.12, the only mode of 11.x): no precision flags; the ONNX decides. ``fp16`` needs an
  FP16 ONNX (``drsedge export --precision fp16``), ``fp32`` an FP32 one, ``int8`` a Q/DQ ONNX, whose float parts
  are FP32 unless it was quantized with ``--high-precision fp16`` (:func:`int8_float_precision`: INT8 + FP32 there,
  INT8 + FP16 on weak typing, from the same file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from drsedge.errors import DrsedgeError

from .plugins import PLUGIN_HINT, check_plugin
from .profile import Profile
from .version import BuildPath

PRECISIONS = ("fp32", "fp16", "int8")
NEVER_PINNED = ("Constant", "QuantizeLinear", "DequantizeLinear", "Cast")  # op types weak_fp32_layers leaves to TensorRT
# Layers kept in FP32 inside weakly typed FP16 engines: LayerNorm statistics and the q/k L2 normalisation
# overflow easily in FP16 (ONNX node-name fragments as exported by drsedge; TensorRT#4493, #4355).


@dataclass
class BuildOptions:
    """One engine build; mirrors trtexec's flags."""

    onnx: str
    engine: str
    precision: str = "fp16"
    plugin: str | None = None
    profile: Profile = field(default_factory=Profile)
    timing_cache: str | None = None
    optimization_level: int = 3
    workspace_mib: int = 1024
    hardware_compatible: bool = False
    version_compatible: bool = False
    profile_given: bool = False  # the user set the shapes (--min/--opt/--max-shape): a static ONNX refuses other shapes
    fp16_keep_fp32: bool = True  # weak typing only: keep weak_fp32_layers() in FP32
    plugin_on_device: bool = False  # the plugin path names the library on the device (a printed trtexec line, a bundle)

    def validate(self, path: BuildPath | None = None) -> dict:
        """Check everything that can be checked without TensorRT or a GPU; returns the ONNX inspection.

        ``path`` (the installed or targeted TensorRT's :class:`BuildPath`) adds the per-version rules.

        Raises:
            DrsedgeError: unknown precision, missing/unparsable ONNX or no N x 3 x H x W input, bad profile,
                an output that would overwrite the ONNX, a custom op without a plugin library, INT8 without
                Q/DQ, FP16 on a strongly typed TensorRT from an ONNX without FP16 tensors (and the reverse),
                compatibility flags on TensorRT 8.5, or a node the target TensorRT cannot build
                (:mod:`drsedge.backend.trt.op_support`), or on strongly typed TensorRT a fused node fed types the plugin
                does not take (:mod:`.plugin_types`).
        """
        from drsedge.fileio import refuse_overwrite

        from .onnx_prep import inspect

        if self.precision not in PRECISIONS:
            raise DrsedgeError(f"precision {self.precision!r}: use one of {PRECISIONS}")
        if not 0 <= self.optimization_level <= 5:
            raise DrsedgeError(f"builder optimization level {self.optimization_level} must be in 0..5")
        if self.workspace_mib <= 0:
            raise DrsedgeError("workspace limit must be > 0 MiB")
        refuse_overwrite(self.engine, [self.onnx, self.plugin], "engine")
        info = inspect(self.onnx)
        if info["static_shape"]:  # fixed input dims: TensorRT takes no optimization profile (trtexec refuses shapes)
            st = info["static_shape"]
            given = (tuple(self.profile.min), tuple(self.profile.opt), tuple(self.profile.max))
            if self.profile_given and given != (tuple(st),) * 3:
                raise DrsedgeError(f"{self.onnx}: a static export {'x'.join(map(str, st))} takes no shape profile; drop "
                                   "--min-shape/--opt-shape/--max-shape (or export at the size you want: export --size)")
            self.profile = Profile(st, st, st, info["input"], static=True)
        else:
            self.profile = Profile(self.profile.min, self.profile.opt, self.profile.max, info["input"])
            self.profile.check(info["rank"])
        if info["custom_ops"] and not self.plugin:
            raise DrsedgeError(f"{self.onnx}: has custom op(s) {info['custom_ops']} but no plugin library; pass --plugin {PLUGIN_HINT}")
        if self.plugin and not self.plugin_on_device and not Path(self.plugin).is_file():
            raise DrsedgeError(f"{self.plugin}: plugin library not found; build it with native/topk_sparse_softmax (see its README)")
        if path is not None and (self.hardware_compatible or self.version_compatible) and not path.compatibility_flags:
            # before the plugin check: on 8.5 its advice (the loadLibrary library) would be refused next
            raise DrsedgeError(f"TensorRT {path.label} has no hardware/version-compatible engines (TensorRT >= 8.6); drop those flags")
        if self.plugin and path is not None:
            check_plugin(self.plugin, path, self.version_compatible, self.plugin_on_device)
        if self.precision == "int8" and not info["qdq"]:
            raise DrsedgeError(f"{self.onnx}: INT8 engines use explicit quantization; give the Q/DQ model from `drsedge quantize`")
        if path is not None:
            from .op_support import check_op_support

            check_op_support(self.onnx, path.version)  # TopK K > 3840, ops newer than the target: refused before building
            if info["fused_nodes"]:
                from drsedge.onnx_io import load_onnx

                from .plugin_types import check_plugin_types

                check_plugin_types(load_onnx(self.onnx, external_data=False), path, self.onnx)
            fp16_graph = "float16" in info["float_types"]
            if path.strongly_typed and self.precision == "fp16" and not fp16_graph:
                raise DrsedgeError(
                    f"{self.onnx}: TensorRT {path.label} builds strongly typed networks, so FP16 must be in the ONNX and this one is FP32-only; "
                    f"make the FP16 ONNX with `drsedge export MODEL --precision fp16 --images DIR -o student_fp16.onnx` and build from it")
            if path.strongly_typed and self.precision == "fp32" and fp16_graph:
                raise DrsedgeError(f"{self.onnx}: holds FP16 tensors; TensorRT {path.label} (strongly typed) would build an FP16 engine; "
                                   "build --precision fp16 from it, or fp32 from the FP32 export")
        return info


def weak_fp32_layers(onnx_path) -> list[str]:
    """Layers a weakly typed (< 10.12) FP16 or INT8 engine keeps in FP32, in graph order.

    :func:`drsedge.onnx_graph.fp16_unsafe_nodes`, the TKSA core (:func:`drsedge.onnx_graph.attention_core`: top-k selection flips
    on FP16 rounding, 28-47 dB vs 54-84 dB of fidelity measured on the FP16 ONNX) and the fused
    ``TopKSparseSoftmax`` nodes and UDR-S2Former's ranking (:func:`drsedge.onnx_graph.rank_path_nodes`: the
    bisection threshold and the rank masks), restricted to float-valued nodes (:func:`drsedge.onnx_graph.float_valued_nodes`).
    """
    from drsedge.onnx_graph import attention_core, float_valued_nodes, fp16_unsafe_nodes, fused_nodes, rank_path_nodes
    from drsedge.onnx_io import load_onnx

    model = load_onnx(onnx_path, external_data=False)
    floats = float_valued_nodes(model)
    want = set(fp16_unsafe_nodes(model)) | (set(rank_path_nodes(model)) & floats) | (set(attention_core(model)) & floats) | set(fused_nodes(model))
    # Q/DQ and Casts never: IDequantizeLayer "only supports DataType::kINT8 precision" (8.6.1 NvInfer.h), and with
    # OBEY a precision without an implementation fails the build (review-2 N4); a Cast's type is its job.
    return [n.name for n in model.graph.node if n.name in want and n.op_type not in NEVER_PINNED]


def int8_float_precision(path: BuildPath, info: dict) -> str:
    """What the non-quantized layers of an INT8 engine run in: ``"fp16"`` or ``"fp32"``.

    Weak typing sets ``BuilderFlag.FP16`` with INT8 (FP16 where TensorRT finds it faster, FP32 layers pinned by
    :func:`weak_fp32_layers`); strong typing takes the float type from the Q/DQ graph
    (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``: "every tensor ... has a data type defined in the network").
    """
    if not path.strongly_typed:
        return "fp16"
    return "fp16" if "float16" in info["float_types"] else "fp32"


def verify_plugin_layers(fused: list[str], plugin_layers: list[str], source: str) -> None:
    """The parsed network must hold one plugin layer per fused ONNX node (layers are named after their nodes).

    Raises:
        DrsedgeError: one line naming the first fused node that did not become a plugin layer.
    """
    if len(plugin_layers) == len(fused) and set(fused) <= set(plugin_layers):
        return
    missing = [n for n in fused if n not in set(plugin_layers)]
    first = missing[0] if missing else (fused[len(plugin_layers)] if len(fused) > len(plugin_layers) else plugin_layers[0])
    raise DrsedgeError(
        f"{source}: {len(fused)} TopKSparseSoftmax node(s) but {len(plugin_layers)} plugin layer(s) in the parsed network; "
        f"node {first!r} was imported as something else (its local function or a built-in op); "
        "load the plugin library (--plugin) and, before TensorRT 10.7, build from the function-stripped copy")
