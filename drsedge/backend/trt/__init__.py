"""TensorRT, split the way Polygraphy's ``backend/trt`` is: version dispatch, profile, build config,
ONNX preparation, loader (build), runner and provenance (sidecar), plus the trtexec recipe.

Only :mod:`.loader` and :mod:`.runner` import TensorRT (lazily, through :mod:`._import`); everything else
runs and is tested on a CPU-only machine.
"""

from .config import PRECISIONS, BuildOptions, verify_plugin_layers, weak_fp32_layers
from .plugins import check_plugin, plugin_kind
from .profile import Profile
from .provenance import check_sidecar, make_sidecar, read_sidecar
from .trtexec import trtexec_command
from .version import KNOWN_VERSIONS, BuildPath, build_path, parse_version

__all__ = [
    "KNOWN_VERSIONS",
    "PRECISIONS",
    "BuildOptions",
    "BuildPath",
    "Profile",
    "build_path",
    "check_plugin",
    "check_sidecar",
    "make_sidecar",
    "parse_version",
    "plugin_kind",
    "read_sidecar",
    "trtexec_command",
    "verify_plugin_layers",
    "weak_fp32_layers",
]
