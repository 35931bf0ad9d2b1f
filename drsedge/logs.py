"""Quieting other libraries' loggers for the length of one call, and restoring them after (library code never
changes a global log level for good: the caller's logging configuration is theirs)."""

from __future__ import annotations

import contextlib
import logging


@contextlib.contextmanager
def quiet_logger(name: str, level: int = logging.ERROR):
    """Raise the standard ``logging`` logger ``name`` (e.g. ``"nncf"``) to ``level`` inside the block."""
    log = logging.getLogger(name)
    before = log.level
    log.setLevel(max(level, before))
    try:
        yield
    finally:
        log.setLevel(before)
