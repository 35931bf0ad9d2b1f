"""``drsedge bundle --check DIR``: the sha256 of every file, then ``verify.py --runner onnxruntime``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from drsedge.errors import DrsedgeError


def check_bundle(d: str | Path) -> str:
    """Verify ``d``'s files against its manifest and run its ``verify.py`` with ONNX Runtime; returns verify's table.

    Raises:
        DrsedgeError: not a bundle, a missing or changed file, or verify.py failing (its last line quoted).
    """
    from drsedge.fileio import sha256

    from .make import MARK

    d = Path(d)
    try:
        m = json.loads((d / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        raise DrsedgeError(f"{d}: not a drsedge bundle (manifest.json unreadable: {e}); make one with `drsedge bundle`") from None
    if MARK not in m or not isinstance(m.get("files"), dict):
        raise DrsedgeError(f"{d}: manifest.json is not a drsedge bundle's; make one with `drsedge bundle`")
    root = d.resolve()
    for rel, digest in m["files"].items():
        p = d / str(rel)
        if root not in p.resolve().parents:
            raise DrsedgeError(f"{d}: manifest.json lists {rel!r}, outside the bundle; the manifest is not a bundle's")
        if not p.is_file():
            raise DrsedgeError(f"{p}: listed in the bundle's manifest but missing; re-copy the bundle")
        if sha256(p) != digest:
            raise DrsedgeError(f"{p}: sha256 differs from the bundle's manifest (changed after bundling); re-make or re-copy the bundle")
    r = subprocess.run([sys.executable, str(d / "verify.py"), "--runner", "onnxruntime"], capture_output=True, text=True)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or r.stdout.strip().splitlines() or ["no output"])[-1]
        raise DrsedgeError(f"{d}: verify.py --runner onnxruntime failed (exit {r.returncode}): {last}")
    return r.stdout
