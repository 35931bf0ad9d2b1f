"""Which build path each TensorRT generation gets: a pure function of the version string.

Sources (checked facts in ``../shared/notes/tensorrt.md``):

* TensorRT 11.x removed weak typing: no ``BuilderFlag.FP16/INT8/BF16``, no precision constraints, no
  ``--fp16/--int8/--best`` in trtexec; every network is strongly typed and precision lives in the ONNX
  (FP16 tensors and Casts, Q/DQ for INT8). ``NetworkDefinitionCreationFlag.EXPLICIT_BATCH`` is gone;
  ``STRONGLY_TYPED`` is deprecated and ignored (NVIDIA, "Migrating from TensorRT 10.x to 11.x").
* 10.12-10.x: strong typing is opt-in (``STRONGLY_TYPED``, ``trtexec --stronglyTyped``); weak typing is
  deprecated there, so drsedge takes the strongly typed path from 10.12 on.
* The fused op's model-local function: TensorRT 8.5/8.6 parsers have no local-function support at all
  (onnx-tensorrt changelog 9.0 EA "Added support for ONNX local functions"; 8.5-GA/8.6-GA ``ModelImporter.cpp``
  has no ``LocalFunctionImporter``), so the node goes to the plugin registry there; 10.0-10.6 import the
  function *before* trying the registry (onnx-tensorrt 10.1-GA ``ModelImporter.cpp``; NVIDIA/TensorRT#4113;
  fixed by onnx-tensorrt PR #1004 in 10.7 GA). drsedge parses the function-stripped copy below 10.7: needed on
  10.0-10.6, harmless on 8.x (the parsed file is then the same on every JetPack before 7).
* Plugin libraries (:mod:`.plugins`): the self-registering library loads with trtexec ``--plugins`` on 8.5 and
  ``--staticPlugins`` from 8.6 (v8.6.1 ``sampleOptions.cpp``, which deprecates ``--plugins``); the loadLibrary
  library (``--dynamicPlugins``, ``IPluginRegistry::loadLibrary``, ``--setPluginsToSerialize``) exists from 8.6.
* INT8 is explicit quantization (Q/DQ in the ONNX) on every version; drsedge never uses a calibrator.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from drsedge.errors import DrsedgeError

MIN_VERSION = (8, 5)


def parse_version(text: str) -> tuple[int, int]:
    """``"10.13.0.35"``, ``"8.6.1.post1"``, ``"11.4"`` -> ``(major, minor)``.

    Raises:
        DrsedgeError: not a version string, or older than 8.5.
    """
    m = re.match(r"^\s*(\d+)\.(\d+)", str(text))
    if not m:
        raise DrsedgeError(f"TensorRT version {text!r} is not MAJOR.MINOR[.PATCH]")
    v = (int(m.group(1)), int(m.group(2)))
    if v < MIN_VERSION:
        raise DrsedgeError(f"TensorRT {text} is not supported; drsedge needs TensorRT >= 8.5 (JetPack 5.1 or newer)")
    return v


@dataclass(frozen=True)
class BuildPath:
    """How drsedge builds on one TensorRT version (see the module docstring for the sources)."""

    version: tuple[int, int]
    strongly_typed: bool  # precision comes from the ONNX graph; no precision flags
    create_flag: str | None  # NetworkDefinitionCreationFlag to set: "EXPLICIT_BATCH" (8.x), "STRONGLY_TYPED" (10.12-10.x) or None
    weak_precision_flags: bool  # BuilderFlag.FP16/INT8 and per-layer precisions exist and are used
    strip_local_functions: bool  # parser would import the fused op's local function instead of the plugin
    trtexec_plugin_flag: str  # trtexec flag for the self-registering library: "--plugins" (8.5) or "--staticPlugins"
    plugin_load_library: bool  # IPluginRegistry::loadLibrary exists (>= 8.6): the dynamic library can be used
    trtexec_strongly_typed: bool  # print --stronglyTyped (10.12-10.x; a no-op in 11.x, so omitted there)
    builder_optimization_level: bool  # >= 8.6
    compatibility_flags: bool  # hardware/version compatibility, >= 8.6

    @property
    def label(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["version"] = self.label
        return d


def build_path(version: str) -> BuildPath:
    """The build path for TensorRT ``version`` (e.g. ``tensorrt.__version__``).

    Raises:
        DrsedgeError: unparsable or < 8.5.
    """
    v = parse_version(version)
    strong = v >= (10, 12)
    return BuildPath(
        version=v,
        strongly_typed=strong,
        create_flag="EXPLICIT_BATCH" if v < (10, 0) else ("STRONGLY_TYPED" if strong and v < (11, 0) else None),
        weak_precision_flags=not strong,
        strip_local_functions=v < (10, 7),
        trtexec_plugin_flag="--plugins" if v < (8, 6) else "--staticPlugins",
        plugin_load_library=v >= (8, 6),
        trtexec_strongly_typed=strong and v < (11, 0),
        builder_optimization_level=v >= (8, 6),
        compatibility_flags=v >= (8, 6),
    )


# The versions users have (JetPack 5.1, 6.0, 6.1/6.2, 7.x; desktop pip) and the ones the dispatch changes at.
KNOWN_VERSIONS = ("8.5", "8.6", "10.3", "10.7", "10.12", "10.13", "11.1", "11.4")
