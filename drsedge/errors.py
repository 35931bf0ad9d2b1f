"""Exception types the CLI turns into a one-line message and exit code 2.

Callers that must tell failures apart catch the subclasses; the CLI catches :class:`DrsedgeError`.
"""


class DrsedgeError(Exception):
    """Bad user input (file, folder, checkpoint, config). ``str(err)`` is the whole message: what and what to do."""


class NonFiniteError(DrsedgeError):
    """A loss, weight or model output is NaN or Inf; nothing was written."""


class BudgetError(DrsedgeError):
    """A measured budget could not be met (the keep-float search found no INT8 model within its targets); nothing was
    written. The CLI exits with 3 (``EXIT_BUDGET``) instead of 2."""


class StaleStateError(DrsedgeError):
    """A resume file belongs to another run (different config, data or seed)."""


class TensorRTMissingError(DrsedgeError):
    """The TensorRT Python bindings (or a GPU) are not available here."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``systemctl stop``, ``docker stop``, Kubernetes) raised like Ctrl-C, so every long command stops
    the same way: the current write finishes or is discarded (atomic writes), resumable state stays on disk, and
    the CLI says so and exits 143 (128 + 15, the shell's convention)."""

    signal_name = "SIGTERM"


def raise_terminated(signum, frame):
    """A ``signal.signal(SIGTERM, ...)`` handler: raise :class:`Terminated` in the main thread."""
    raise Terminated()


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first non-empty line of ``str(exc)`` (or its type name), at most ``limit`` characters: the one
    trimming rule for quoting another library's error inside a drsedge message."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 1] + "…"


def unknown_keys(cls, d: dict) -> tuple[list[str], list[str]]:
    """The keys of ``d`` that are not fields of dataclass ``cls``, and its field names (both sorted): the one check
    behind "unknown ... option(s)" messages of config mappings."""
    import dataclasses

    names = sorted(f.name for f in dataclasses.fields(cls))
    return sorted(set(d) - set(names)), names
