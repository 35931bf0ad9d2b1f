"""What a stage returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class StageResult:
    """The files a stage wrote (name -> path; the pipeline's manifest hashes them) and its measurements (JSON-able:
    dB, counts, seconds), plus ``detail``: objects a caller may print (a report, a search table), never recorded."""

    artifacts: dict[str, Path]
    metrics: dict[str, Any] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)
