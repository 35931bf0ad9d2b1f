"""Model weights shipped with drsedge (each ``NAME.safetensors`` has ``NAME.md``, its model card).

``shipped:teacher`` / ``shipped:student`` in a run config or on the command line name them.
"""

from __future__ import annotations

from pathlib import Path

from drsedge.errors import DrsedgeError

WEIGHTS_DIR = Path(__file__).parent
SHIPPED = {"teacher": "drsformer_rain_teacher.safetensors", "student": "drsformer_rain_student.safetensors"}
PREFIX = "shipped:"


def shipped_path(name: str) -> Path:
    """Path of a shipped checkpoint (``"teacher"`` or ``"student"``).

    Raises:
        DrsedgeError: unknown name, or the file is not in this installation.
    """
    if name not in SHIPPED:
        raise DrsedgeError(f"unknown shipped model {name!r}; choose one of {sorted(SHIPPED)}")
    p = WEIGHTS_DIR / SHIPPED[name]
    if not p.is_file():
        raise DrsedgeError(f"{p}: shipped {name} weights are missing from this installation; reinstall drsedge or pass a checkpoint")
    return p


def resolve(checkpoint: str | None) -> str | None:
    """``"shipped:teacher"`` -> its path; any other value unchanged."""
    if isinstance(checkpoint, str) and checkpoint.startswith(PREFIX):
        return str(shipped_path(checkpoint[len(PREFIX):]))
    return checkpoint
