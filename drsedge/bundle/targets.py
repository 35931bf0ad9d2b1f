"""Where a bundle goes: a JetPack release or a TensorRT version, and what the device has.

JetPack -> TensorRT / CUDA / Python / Ubuntu, from NVIDIA's JetPack release notes (JetPack 5.1.x: L4T 35.x; 6.0: L4T
36.3; 6.1 and 6.2: L4T 36.4.x; 7.0: L4T 38.2) and ``../shared/notes/tensorrt.md``. A ``trt-X.Y`` target is a desktop or
server GPU with that TensorRT (Python and CUDA as installed there).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from drsedge.errors import DrsedgeError


@dataclass(frozen=True)
class Target:
    """One device the bundle is for."""

    name: str
    tensorrt: str  # "X.Y": picks the build path (drsedge.backend.trt.version.build_path)
    cuda: str | None
    python: str | None
    ubuntu: str | None
    jetson: bool
    runs_drsedge: bool  # Python >= 3.10 there: `drsedge stream/derain` with the engine; else trtexec only

    def to_dict(self) -> dict:
        return asdict(self)


JETPACKS = {
    "jetpack-5.1": Target("jetpack-5.1", "8.5", "11.4", "3.8", "20.04", True, False),
    "jetpack-6.0": Target("jetpack-6.0", "8.6", "12.2", "3.10", "22.04", True, True),
    "jetpack-6.1": Target("jetpack-6.1", "10.3", "12.6", "3.10", "22.04", True, True),
    "jetpack-6.2": Target("jetpack-6.2", "10.3", "12.6", "3.10", "22.04", True, True),
    "jetpack-7": Target("jetpack-7", "10.13", "13.0", "3.12", "24.04", True, True),
}
TARGET_HELP = ", ".join(JETPACKS) + ", or trt-X.Y (a desktop GPU with TensorRT X.Y, e.g. trt-10.13, trt-11.4)"


def resolve_target(name: str) -> Target:
    """``jetpack-…`` or ``trt-X.Y`` -> :class:`Target`.

    Raises:
        DrsedgeError: an unknown name, or a TensorRT older than 8.5.
    """
    from drsedge.backend.trt.version import parse_version

    if name in JETPACKS:
        return JETPACKS[name]
    m = re.fullmatch(r"trt-(\d+\.\d+)", name or "")
    if not m:
        raise DrsedgeError(f"--target {name!r}: use one of {TARGET_HELP}")
    major, minor = parse_version(m.group(1))
    return Target(name, f"{major}.{minor}", None, None, None, False, True)
