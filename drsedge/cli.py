"""``drsedge`` command line: dispatch only. Each subcommand lives in :mod:`drsedge.tools` (parser + run), the way
Polygraphy's ``tools/`` are split; the library does the work."""

from __future__ import annotations

import argparse
import json
import os
import sys

import yaml

from drsedge.errors import BudgetError, DrsedgeError, Terminated, first_line, raise_terminated
from drsedge.tools import ORDER
from drsedge.tools.args import EXIT_BUDGET

# modules of the `full` extra: a torch-free install (`drsedge[runtime]`) runs stream/derain/metrics only
FULL_ONLY = {"torch", "onnx", "onnxscript", "nncf", "safetensors", "polygraphy", "scipy", "matplotlib", "onnxconverter_common"}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``drsedge COMMAND: error: ...``, exit 2) instead of usage + error."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="drsedge", description="DRSformer deraining: distill, export, quantize and measure the drift of every step.")
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    for module in ORDER:
        module.register(sub)
    return ap


def _user_error(e: BaseException) -> str | None:
    """A one-line message for exceptions that mean bad input or environment (not a drsedge bug), else None."""
    from PIL import Image

    if isinstance(e, ModuleNotFoundError) and (e.name or "").split(".")[0] in FULL_ONLY:
        return f"this command needs {e.name}, which the torch-free install lacks: pip install 'drsedge[full]' (torch first, see README)"
    if isinstance(e, Image.DecompressionBombError):
        return f"image too large ({first_line(e)}); resize it"
    if isinstance(e, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, FileExistsError)):
        return f"{e.filename or 'path'}: {e.strerror or first_line(e)}; check the path and its permissions"
    from drsedge.fileio import is_disk_full

    if is_disk_full(e):
        where = getattr(e, "filename", None)
        return f"{where + ': ' if where else ''}the disk is full (or over quota); free space or write the outputs elsewhere (-o)"
    if isinstance(e, OSError):
        return f"{e.filename + ': ' if getattr(e, 'filename', None) else ''}{first_line(e)} (file system or device error)"
    if isinstance(e, MemoryError):
        return "out of memory; use smaller images, --tile, or a smaller batch"
    if isinstance(e, (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError)):
        return f"unreadable config or metadata ({first_line(e)})"
    return None


def main(argv: list[str] | None = None) -> int:
    import signal
    import threading

    args = build_parser().parse_args(argv)
    previous = None
    if threading.current_thread() is threading.main_thread():  # SIGTERM stops every command like Ctrl-C (exit 143)
        previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        from drsedge.data.heldout import leave_out_copies

        with leave_out_copies(getattr(args, "skip_held_out_copies", False)):
            return args.fn(args)
    except Terminated:
        print("drsedge: terminated by SIGTERM; finished files are intact, no partial file was left, and training or a pipeline "
              "resumes where it stopped (--resume / the same command)", file=sys.stderr)
        return 143
    except BudgetError as e:
        print(f"drsedge: budget broken: {e}", file=sys.stderr)
        return EXIT_BUDGET
    except DrsedgeError as e:
        print(f"drsedge: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("drsedge: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the CLI boundary: never a traceback for a user (DRSEDGE_DEBUG=1 shows it)
        if os.environ.get("DRSEDGE_DEBUG"):
            raise
        msg = _user_error(e) or f"{type(e).__name__}: {first_line(e)} (unexpected; rerun with DRSEDGE_DEBUG=1 for the traceback)"
        print(f"drsedge: error: {msg}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
