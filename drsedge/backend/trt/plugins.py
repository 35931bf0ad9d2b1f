"""Loading the ``drsedge::TopKSparseSoftmax`` plugin library: the one way for the whole package.

``native/topk_sparse_softmax`` builds two libraries, and a process must load exactly one of them:

* ``libdrsedge_trt_plugin_static.so`` registers its creator when it is dlopen'ed (load-time registration, as
  ``REGISTER_TENSORRT_PLUGIN`` does): ``ctypes.CDLL`` in Python, ``trtexec --plugins`` (8.5) /
  ``--staticPlugins`` (>= 8.6). It is the only library on TensorRT 8.5, which has no
  ``IPluginRegistry::loadLibrary`` (NVIDIA/TensorRT tag 8.5.2 ``include/``, Python bindings without
  ``load_library``).
* ``libdrsedge_trt_plugin.so`` exports ``getCreators`` (>= 10) / ``getPluginCreators`` (8.6), which only
  ``IPluginRegistry::loadLibrary`` reads (``trt.get_plugin_registry().load_library``, ``trtexec --dynamicPlugins``;
  NVIDIA/TensorRT ``samples/trtexec/README.md``). Plain dlopen (Polygraphy's ``LoadPlugins`` is ``ctypes.CDLL``)
  registers nothing. It is the library a version-compatible engine serializes (``plugins_to_serialize``;
  ``pyOnnxDoc.h``, ``get_used_vc_plugin_libraries``).

Each library says which it is in the string ``drsedge-plugin-registration:static|dynamic`` (``registration.cpp``),
read from the file here without loading it. Loading both in one process would register the creator twice
(``loadLibrary`` "will fail and return nullptr if any of the plugins are already registered",
``NvInferRuntimeCommon.h`` 10.3), so the second, different library is refused in one line.
"""

from __future__ import annotations

import os
from pathlib import Path

from drsedge.errors import DrsedgeError

from .version import BuildPath

MARKER = b"drsedge-plugin-registration:"
STATIC_NAME, DYNAMIC_NAME = "libdrsedge_trt_plugin_static.so", "libdrsedge_trt_plugin.so"
BUILD_HINT = "build it with native/topk_sparse_softmax/build.sh (see its README)"
PLUGIN_HINT = (f"native/topk_sparse_softmax/build/{STATIC_NAME} (any TensorRT) or {DYNAMIC_NAME} (TensorRT >= 8.6, "
               f"loaded with IPluginRegistry::loadLibrary; needed for --version-compatible); {BUILD_HINT}")

_loaded: dict[str, str] = {}  # this process: real path -> kind of the one plugin library loaded


def plugin_kind(path: str | os.PathLike, on_device: bool = False) -> str:
    """``"static"`` (self-registering) or ``"dynamic"`` (``loadLibrary``), read from the library's marker string.

    ``on_device``: the path names the library where it will be built (a Jetson's ``trtexec`` line, a bundle); when
    the file is not on this machine its kind comes from its file name (``STATIC_NAME`` / ``DYNAMIC_NAME``).

    Raises:
        DrsedgeError: the file is missing (and, ``on_device``, its name is neither library's), unreadable, or not a
            drsedge plugin library (no marker: an older build or another library).
    """
    p = Path(path)
    if on_device and not p.exists() and p.name in (STATIC_NAME, DYNAMIC_NAME):
        return "static" if p.name == STATIC_NAME else "dynamic"
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        if on_device:
            raise DrsedgeError(f"{path}: not on this machine and not named {STATIC_NAME} or {DYNAMIC_NAME}, so its kind is unknown; "
                               f"name the library as native/topk_sparse_softmax/build.sh writes it") from None
        raise DrsedgeError(f"{path}: plugin library not found; {BUILD_HINT}") from None
    except OSError as e:
        raise DrsedgeError(f"{path}: cannot read the plugin library ({e.strerror or e})") from None
    i = data.find(MARKER)
    if i < 0:
        raise DrsedgeError(f"{path}: not a drsedge TopKSparseSoftmax plugin library (or built before the registration "
                           f"marker); rebuild it: {BUILD_HINT}")
    kind = data[i + len(MARKER): i + len(MARKER) + 7].decode("ascii", "replace").rstrip("\0")
    if kind not in ("static", "dynamic"):
        raise DrsedgeError(f"{path}: unreadable plugin registration marker; rebuild it: {BUILD_HINT}")
    return kind


def check_plugin(path: str | os.PathLike, bp: BuildPath, version_compatible: bool = False, on_device: bool = False) -> str:
    """The library's kind if it is the right one for TensorRT ``bp`` (and a version-compatible build);
    ``on_device`` as in :func:`plugin_kind`.

    Raises:
        DrsedgeError: one line naming the library and the one to pass instead.
    """
    kind = plugin_kind(path, on_device)
    if kind == "dynamic" and not bp.plugin_load_library:
        raise DrsedgeError(f"{path}: TensorRT {bp.label} has no IPluginRegistry::loadLibrary, so this library would never "
                           f"register its creator; pass {Path(path).with_name(STATIC_NAME)}")
    if kind == "static" and version_compatible:
        raise DrsedgeError(f"{path}: version-compatible engines serialize the plugin library, which must be the "
                           f"loadLibrary one; pass {Path(path).with_name(DYNAMIC_NAME)}")
    return kind


def load_plugin(trt, path: str | os.PathLike, bp: BuildPath, version_compatible: bool = False):  # pragma: no cover - needs TensorRT
    """Register the plugin's creator with TensorRT's global registry, once per process; returns the library kind.

    Static library: ``ctypes.CDLL`` (load-time registration). Dynamic library:
    ``trt.get_plugin_registry().load_library`` (>= 8.6). The same library again is a no-op.

    Raises:
        DrsedgeError: the wrong library for this TensorRT (:func:`check_plugin`), another plugin library already
            loaded in this process, or TensorRT refused it.
    """
    kind = check_plugin(path, bp, version_compatible)
    real = os.path.realpath(path)
    if real in _loaded:
        return kind
    if _loaded:
        other = next(iter(_loaded))
        raise DrsedgeError(f"{path}: this process already loaded the plugin library {other}; loading a second one would "
                           "register TopKSparseSoftmax twice; pass the same --plugin everywhere")
    if kind == "static":
        import ctypes

        try:
            ctypes.CDLL(real)
        except OSError as e:
            raise DrsedgeError(f"{path}: cannot load the plugin library ({e}); was it built for this TensorRT/CUDA?") from None
    else:
        handle = trt.get_plugin_registry().load_library(real)
        if handle is None:
            raise DrsedgeError(f"{path}: TensorRT's IPluginRegistry::loadLibrary refused it (built for another TensorRT, "
                               "or TopKSparseSoftmax already registered)")
    _loaded[real] = kind
    return kind
