"""Strict JSON (RFC 8259) for every file and ``--json`` output drsedge writes.

Python's ``json`` writes bare ``Infinity``/``NaN`` by default, which JSON parsers outside Python reject.
drsedge writes ``"inf"`` / ``"-inf"`` for infinite values (a PSNR of identical images is +inf dB) and ``null``
for NaN, and serializes with ``allow_nan=False`` so nothing non-finite slips through.
"""

from __future__ import annotations

import json
import math


def finite_or_marker(obj):
    """``obj`` with every float ``inf``/``-inf`` replaced by the string ``"inf"``/``"-inf"`` and NaN by ``None``
    (recursively through dicts, lists and tuples)."""
    if isinstance(obj, float):
        if math.isnan(obj):
            return None
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    if isinstance(obj, dict):
        return {k: finite_or_marker(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_marker(v) for v in obj]
    return obj


def dumps_strict(obj, **kwargs) -> str:
    """``json.dumps`` of :func:`finite_or_marker` ``(obj)`` with ``allow_nan=False``."""
    return json.dumps(finite_or_marker(obj), allow_nan=False, **kwargs)
