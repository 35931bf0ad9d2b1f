"""File helpers shared by every stage: atomic writes (no partial artifact) and content hashes."""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
import time
from pathlib import Path

from drsedge.errors import DrsedgeError

STALE_TMP_SECONDS = 3600  # a temporary older than this is a leftover of a killed run


def current_umask() -> int:
    """The process umask, read without changing it (``/proc/self/status``, Linux >= 4.7); elsewhere set and
    restored at once."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(tmp_path)`` then rename onto ``path``, so no partial file is ever left at ``path``.

    The file gets the mode ``open()`` would give it: an existing file's mode is kept, a new one is
    ``0o666 & ~umask`` (``mkstemp`` alone would make every artifact 0600, unreadable by a service running as
    another user).
    """
    path = Path(path)
    if path.is_dir():
        raise DrsedgeError(f"{path}: is a folder, and this output is a file; name a file (-o/--output), e.g. {path / 'out'}{path.suffix}")
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~current_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    try:
        try:
            write(tmp)
        except Exception as e:
            if is_disk_full(e):
                raise DrsedgeError(f"{path}: the disk is full (or over quota) while writing it; nothing was written there. "
                                   f"Free space on {path.parent} or write the output elsewhere") from None
            raise
        if os.path.exists(tmp):
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
# how writers that are not Python's own file objects report ENOSPC: torch.save (PytorchStreamWriter "file write failed",
# or its zip writer's "unexpected pos N vs M" when a short write moved the file position), safetensors (Rust
# io::ErrorKind::StorageFull / os error 28), protobuf/onnx (OSError)
DISK_FULL_TEXT = ("No space left on device", "StorageFull", "os error 28", "Disk quota exceeded", "file write failed", "unexpected pos ")


def is_disk_full(e: BaseException) -> bool:
    """True when ``e`` (or what it was raised from) means the file system is full, whichever writer raised it."""
    while e is not None:
        if isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS:
            return True
        if any(t in str(e) for t in DISK_FULL_TEXT):
            return True
        e = e.__cause__ or e.__context__
    return False


def sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _writer_pid(tmp_name: str, target_name: str) -> int | None:
    """The PID in a temporary's name ``.NAME.PID-XXXX.tmp...`` (None for names without one: older drsedge versions)."""
    rest = tmp_name[len(target_name) + 2 :]
    head = rest.split("-", 1)[0]
    return int(head) if head.isdigit() and "-" in rest else None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _is_leftover(tmp: Path, target_name: str, now: float) -> bool:
    pid = _writer_pid(tmp.name, target_name)
    if pid is not None:
        return not _alive(pid)  # a killed writer's file, whatever its age; a live writer's is left alone
    return now - tmp.stat().st_mtime > STALE_TMP_SECONDS


def remove_stale_temporaries(path: str | os.PathLike) -> int:
    """Delete leftovers ``.NAME.PID-*.tmp*`` of :func:`atomic_write` for ``path`` whose writer process is gone (a
    SIGKILL mid-write leaves them; ONNX Runtime's ``.pre.onnx`` beside one included), whatever their age; names
    without a PID (older versions) once older than :data:`STALE_TMP_SECONDS`. Returns how many were removed."""
    path = Path(path)
    now, n = time.time(), 0
    for tmp in path.parent.glob(f".{glob_escape(path.name)}.*.tmp*"):
        try:
            if _is_leftover(tmp, path.name, now):
                tmp.unlink()
                n += 1
        except (OSError, ValueError):
            pass
    return n


def glob_escape(name: str) -> str:
    """``name`` with glob metacharacters escaped (a file called ``a[1].onnx``)."""
    import glob

    return glob.escape(name)


def sweep_temporaries(folder: str | os.PathLike) -> int:
    """:func:`remove_stale_temporaries` for every output under ``folder`` (a run directory a pipeline resumes in: a
    re-run skips finished stages, so their outputs' leftovers would never be swept by the next write)."""
    import re

    n, now = 0, time.time()
    pat = re.compile(r"^\.(.+)\.(\d+)-[^.]*\.tmp")
    for root, _dirs, files in os.walk(folder):
        for f in files:
            m = pat.match(f)
            if m:
                try:
                    if _is_leftover(Path(root, f), m.group(1), now):
                        os.unlink(os.path.join(root, f))
                        n += 1
                except (OSError, ValueError):
                    pass
    return n


def refuse_inside(out_dir: str | os.PathLike, inputs, what: str = "output folder") -> None:
    """Refuse an output folder that is, lies inside, or contains one of the input folders ``inputs`` (links
    resolved): a run directory written into a data folder would mix its artifacts into the data a later run reads,
    and one above a data folder would let a stage's own folder (``synth/``, ``teacher/``) land on the data.

    Raises:
        DrsedgeError: one line naming the output folder and the input folder it would be written into or over.
    """
    out = Path(out_dir).resolve()
    for i in inputs:
        src = Path(i).resolve()
        if out == src or src in out.parents:
            raise DrsedgeError(f"{out_dir}: the {what} would be written into the input folder {i}; choose a folder outside the data")
        if out in src.parents:
            raise DrsedgeError(f"{out_dir}: the {what} contains the input folder {i}, so its stages could write over the data; "
                               "choose a folder outside the data")


STAGE_MARK = ".drsedge-stage"  # written into every folder a pipeline stage creates: only such a folder is ever cleared


def owned_stage_dir(path: str | os.PathLike, clear: bool = False) -> Path:
    """Create the stage folder ``path`` (marked with :data:`STAGE_MARK`), or reuse it when an earlier run of the stage
    made it; with ``clear``, its old contents are removed first. A non-empty folder the stage did not create is
    never cleared or written into.

    Raises:
        DrsedgeError: ``path`` exists, is not empty and has no mark (a user's folder in the run directory).
    """
    import shutil

    path = Path(path)
    mark = path / STAGE_MARK
    if path.exists() and not mark.is_file() and (not path.is_dir() or any(path.iterdir())):
        raise DrsedgeError(f"{path}: this folder was not made by drsedge, and the stage would write into it; move it out "
                           "of the run directory or choose another run_dir")
    if clear and path.is_dir() and mark.is_file():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    mark.touch()
    return path


def refuse_overwrite(output: str | os.PathLike, inputs, what: str = "output") -> None:
    """Refuse an ``output`` path that is one of ``inputs`` (files or folders, links resolved), or, for a
    folder output, one that equals an input folder: outputs never overwrite inputs.

    Raises:
        DrsedgeError: one line naming the output and the input it would overwrite.
    """
    out = Path(output).resolve()
    for i in inputs:
        if i is None:
            continue
        src = Path(i).resolve()
        if out == src:
            raise DrsedgeError(f"{output}: the {what} would overwrite the input {i}; choose another -o/--output")
        if Path(output).exists() and Path(i).exists() and os.path.samefile(output, i):
            raise DrsedgeError(f"{output}: the {what} is the same file as the input {i}; choose another -o/--output")
