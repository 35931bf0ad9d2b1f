"""The ``trtexec`` command equivalent to a build, per TensorRT generation (for building by hand on a Jetson).

Flags by version (trtexec ``sampleOptions.cpp`` at each release; TensorRT docs "Migrating trtexec Usage
from TensorRT 10.x to 11.x"): the self-registering plugin library loads with ``--plugins`` on 8.5 and
``--staticPlugins`` from 8.6, the loadLibrary one with ``--dynamicPlugins`` (>= 8.6; with
``--setPluginsToSerialize`` for version-compatible engines, v8.6.1 ``sampleEngines.cpp``);
``--fp16``/``--int8`` exist on 8.x and 10.x and are removed in 11.x; drsedge adds ``--stronglyTyped`` on
10.12-10.x (it is a no-op in 11.x); ``--builderOptimizationLevel``, ``--hardwareCompatibilityLevel`` and
``--versionCompatible`` exist from 8.6; ``--memPoolSize=workspace:N`` is in MiB on every version.
"""

from __future__ import annotations

import shlex

from .config import BuildOptions, weak_fp32_layers
from .plugins import check_plugin
from .version import BuildPath


def trtexec_command(o: BuildOptions, path: BuildPath, onnx: str | None = None) -> str:
    """The trtexec command line for ``o`` on TensorRT ``path.version``; ``onnx`` overrides the parsed file
    (the function-stripped copy before 10.7).

    Raises:
        DrsedgeError: the plugin library is the wrong one for this version (:func:`.plugins.check_plugin`).
    """
    args = ["trtexec", f"--onnx={onnx or o.onnx}", f"--saveEngine={o.engine}"]
    if o.plugin:
        if check_plugin(o.plugin, path, o.version_compatible, o.plugin_on_device) == "static":
            args.append(f"{path.trtexec_plugin_flag}={o.plugin}")
        else:
            args.append(f"--dynamicPlugins={o.plugin}")
            if o.version_compatible:
                args.append(f"--setPluginsToSerialize={o.plugin}")
    if not o.profile.static:  # a static-shape ONNX takes no shapes (trtexec: "Static model does not take explicit shapes")
        args += [f"--minShapes={o.profile.shape_arg('min')}", f"--optShapes={o.profile.shape_arg('opt')}",
                 f"--maxShapes={o.profile.shape_arg('max')}"]
    if path.weak_precision_flags:
        if o.precision in ("fp16", "int8"):
            args.append("--fp16")
        if o.precision == "int8":
            args.append("--int8")  # explicit Q/DQ: scales come from the ONNX, no calibrator
        if o.precision in ("fp16", "int8") and o.fp16_keep_fp32:
            keep = weak_fp32_layers(o.onnx)
            if keep:
                args += ["--precisionConstraints=obey", "--layerPrecisions=" + ",".join(f"{n}:fp32" for n in keep)]
    if path.trtexec_strongly_typed:
        args.append("--stronglyTyped")
    if o.timing_cache:
        args.append(f"--timingCacheFile={o.timing_cache}")
    if path.builder_optimization_level:
        args.append(f"--builderOptimizationLevel={o.optimization_level}")
    args.append(f"--memPoolSize=workspace:{o.workspace_mib}")
    if o.hardware_compatible:
        args.append("--hardwareCompatibilityLevel=ampere+")
    if o.version_compatible:
        args.append("--versionCompatible")
    return " ".join(shlex.quote(a) for a in args)


def trtexec_recipe(o: BuildOptions, path: BuildPath) -> tuple[str, list[str]]:
    """``(trtexec line, notes)`` for ``o`` on TensorRT ``path``: the one source of the printed line and of a bundle's
    ``build_engine.sh``. Validates ``o`` first; before 10.7 with fused nodes it writes the function-stripped copy
    ``ENGINE.plugin_only.onnx`` (:func:`.onnx_prep.write_plugin_only_copy`) and the line parses that.

    Raises:
        DrsedgeError: the checks of :meth:`BuildOptions.validate`.
    """
    from .config import int8_float_precision
    from .loader import plugin_only_path
    from .onnx_prep import write_plugin_only_copy

    info = o.validate(path)
    notes, onnx = [], None
    if path.strip_local_functions and info["fused_nodes"]:
        onnx = str(write_plugin_only_copy(o.onnx, plugin_only_path(o.engine)))
        notes.append(f"TensorRT {path.label} would import the fused op's model-local function instead of the plugin "
                     f"(10.0-10.6 parse it first; 8.x cannot parse it at all): build from the function-stripped copy {onnx}")
    if o.precision == "int8":
        notes.append(f"INT8 engine: the layers that stay float run in {int8_float_precision(path, info).upper()} on TensorRT {path.label}")
    return trtexec_command(o, path, onnx), notes
