"""The JSON sidecar ``ENGINE.json``: what an engine was built from, with, and for.

An engine is valid only for the TensorRT version and GPU it was built with (unless built version- or
hardware-compatible; NVIDIA TensorRT docs, "Version Compatibility" / "Hardware Compatibility").
:func:`check_sidecar` refuses a mismatch in one line.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path

from drsedge.errors import DrsedgeError
from drsedge.fileio import sha256


def make_sidecar(o, tensorrt_version: str, gpu_name: str, compute_capability: str, build_seconds: float,
                 build_path: dict | None = None, plugin_layers: int | None = None, parsed_onnx: str | None = None,
                 verified: dict | None = None) -> dict:
    """The sidecar of an engine built from :class:`~drsedge.backend.trt.config.BuildOptions` ``o``."""
    return {
        "tensorrt_version": tensorrt_version,
        "gpu_name": gpu_name,
        "compute_capability": compute_capability,
        "precision": o.precision,
        "build_path": build_path,
        "profile": {"input": o.profile.input, "min": list(o.profile.min), "opt": list(o.profile.opt), "max": list(o.profile.max)},
        "onnx": str(o.onnx),
        "onnx_sha256": sha256(o.onnx),
        "parsed_onnx": parsed_onnx,
        "plugin": o.plugin,
        "plugin_sha256": sha256(o.plugin) if o.plugin and not o.plugin_on_device else None,  # a bundle's is built on the device
        "plugin_layers": plugin_layers,
        "flags": {k: v for k, v in asdict(o).items() if k not in ("onnx", "engine", "plugin", "profile")},
        "verified": verified or {},
        "build_seconds": round(build_seconds, 1),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def check_sidecar(sidecar: dict, tensorrt_version: str, compute_capability: str, plugin: str | None = None, engine: str = "engine") -> None:
    """Refuse an engine built for another TensorRT / GPU / plugin build.

    TensorRT must match exactly unless the engine is version-compatible (then :func:`runs_version_compatible`);
    the compute capability must match unless it is hardware-compatible (then >= 8.0 is required).

    Raises:
        DrsedgeError: one line naming the engine and the mismatch.
    """
    flags = sidecar.get("flags", {})
    built = sidecar.get("tensorrt_version", "?")
    if flags.get("version_compatible"):
        if not runs_version_compatible(built, tensorrt_version):
            raise DrsedgeError(f"{engine}: version-compatible engine built with TensorRT {built} cannot run on {tensorrt_version} "
                               "(a runtime at least as new, same major, or 8 -> 10 / 10 -> 11); rebuild it here")
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


def _release(v: str) -> tuple[int, ...]:
    import re

    return tuple(int(x) for x in re.findall(r"\d+", str(v))[:3]) or (0,)


def runs_version_compatible(built: str, runtime: str) -> bool:
    """Whether a version-compatible engine built with TensorRT ``built`` runs on TensorRT ``runtime``.

    NVIDIA, "Engine Compatibility" (TensorRT 11.1 docs) and the 11.4 support matrix: engines built version-compatible
    run on the same or a newer runtime of the same major (from 8.6), and across majors only 8 -> 10 and 10 -> 11;
    "engines built with newer versions ... do not work with older runtimes".
    """
    b, r = _release(built), _release(runtime)
    if r < b:
        return False
    return r[0] == b[0] or (b[0], r[0]) in ((8, 10), (10, 11))


def read_sidecar(engine: str | os.PathLike) -> dict:
    """Load ``<engine>.json``; raises DrsedgeError when it is missing or corrupt."""
    p = Path(str(engine) + ".json")
    try:
        d = json.loads(p.read_text())
    except FileNotFoundError:
        raise DrsedgeError(f"{engine}: no sidecar {p.name}; drsedge only runs engines it built (rebuild with `drsedge build-engine`)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DrsedgeError(f"{p}: corrupt sidecar ({e})") from None
    if not isinstance(d, dict):
        raise DrsedgeError(f"{p}: corrupt sidecar (not a JSON object)")
    return d
