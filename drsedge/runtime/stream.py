"""Derain live video and files at a measured frame rate (``drsedge stream``), without PyTorch.

Sources (OpenCV ``VideoCapture`` backends, named like jetson-utils' ``videoSource`` URIs): a video file
(``file://`` optional), a folder of frames, a V4L2 device (``v4l2:///dev/video0``, ``/dev/video0`` or ``0``),
an RTSP/HTTP URL, or a GStreamer pipeline (any string containing ``!``). Sinks: a video file (``.mp4``
mp4v, ``.avi`` MJPG, ``.mkv``), or a folder of PNG frames; ``--side-by-side`` writes input | derained.

Decode -> infer -> encode run on three threads joined by bounded queues. A live source never waits for the
model: when the inference queue is full the oldest frame is dropped and counted; files drop nothing. The
writer is released in a ``finally``, so Ctrl-C or a source that dies mid-stream still leaves a playable file.
Latency is per frame, model only (pre/post-processing included), in ms; FPS is frames written over wall time.

Size: ~320 lines on purpose: the decode/infer/encode threads, their queues and the drop and shutdown rules must
be read together to be trusted.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from drsedge.errors import DrsedgeError, first_line
from drsedge.fileio import atomic_write

from .frame_models import open_frame_model
from .limits import plan_tiles
from .onnx_np import restore_np

VIDEO_SUFFIXES = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "mp4v", ".mov": "mp4v"}
OPEN_TIMEOUT_MS = 5000  # network sources: give up opening after this long


@dataclass
class StreamStats:
    """What one ``drsedge stream`` run did (written as JSON)."""

    source: str
    output: str | None
    live: bool
    frames_read: int = 0
    frames_written: int = 0
    dropped: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    latency_ms: dict = field(default_factory=dict)  # p50 / p95 / p99 / mean
    interrupted: bool = False
    signal: str | None = None  # "SIGINT" or "SIGTERM" when interrupted by a signal
    source_error: str | None = None
    frames_announced: int | None = None  # a file's frame count from its header (a truncated file reads fewer)
    reference_mismatches: int = 0  # --reference frames whose size differs from the output (no PSNR for them)
    psnr_y: dict = field(default_factory=dict)  # per frame, when --reference clean frames are given
    flicker: dict = field(default_factory=dict)  # mean |frame_t - frame_t-1| of derained vs clean frames (8-bit levels)
    model: str = ""
    tile: int | None = None  # tile height in px (None: whole frames)
    tile_hw: list[int] | None = None  # [tile height, tile width] in px (limits.plan_tiles; None: whole frames)
    tile_reason: str = ""  # --tile, or what fixed it: an ONNX static shape, an engine profile

    def to_dict(self) -> dict:
        return asdict(self)


class _FolderSource:
    def __init__(self, folder: Path):
        from drsedge.data.folders import list_images

        self.files = list_images(folder)
        self.i = 0
        self.fps, self.total, self.live = 25.0, len(self.files), False

    def read(self):
        from drsedge.data.images import read_uint8

        if self.i >= len(self.files):
            return None
        f = self.files[self.i]
        self.i += 1
        return read_uint8(f)

    def release(self):
        pass


class _CvSource:
    def __init__(self, spec: str):
        import cv2

        self.cv2 = cv2
        s = spec.removeprefix("file://")
        live = True
        if "!" in s:
            cap = cv2.VideoCapture(s, cv2.CAP_GSTREAMER)
        elif s.startswith("v4l2://") or s.startswith("/dev/video") or s.isdigit():
            dev = s.removeprefix("v4l2://")
            cap = cv2.VideoCapture(int(dev) if dev.isdigit() else dev, cv2.CAP_V4L2)
        elif "://" in s:
            cap = cv2.VideoCapture(s, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS,
                                                       cv2.CAP_PROP_READ_TIMEOUT_MSEC, OPEN_TIMEOUT_MS])
        else:
            if not Path(s).is_file():
                raise DrsedgeError(f"{spec}: no such file, folder, device or URL")
            cap = cv2.VideoCapture(s)
            live = False
        if not cap.isOpened():
            raise DrsedgeError(f"{spec}: cannot open this source (OpenCV backends: file, V4L2, FFmpeg URL with a "
                               f"{OPEN_TIMEOUT_MS // 1000} s timeout, GStreamer); check the path, device or URL")
        self.cap, self.live = cap, live
        self.fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.total = n if n > 0 and not live else None

    def read(self):
        ok, frame = self.cap.read()
        return self.cv2.cvtColor(frame, self.cv2.COLOR_BGR2RGB) if ok else None

    def release(self):
        self.cap.release()


def open_source(spec: str):
    """A frame reader for ``spec`` (see module docstring); ``read()`` gives ``[H, W, 3]`` uint8 RGB or None at the end.

    Raises:
        DrsedgeError: the source cannot be opened.
    """
    p = Path(spec)
    if p.is_dir():
        return _FolderSource(p)
    return _CvSource(spec)


class _Sink:
    def __init__(self, out: str, fps: float):
        self.out, self.fps, self.writer, self.n, self.size = Path(out), fps, None, 0, None
        suffix = self.out.suffix.lower()
        self.video = suffix in VIDEO_SUFFIXES
        if suffix and not self.video:
            raise DrsedgeError(f"{out}: unknown output kind {suffix!r}; use a folder or one of {sorted(VIDEO_SUFFIXES)}")

    def write(self, frame: np.ndarray) -> None:
        if self.video:
            import cv2

            if self.writer is None:
                self.out.parent.mkdir(parents=True, exist_ok=True)
                h, w = frame.shape[:2]
                fourcc = cv2.VideoWriter_fourcc(*VIDEO_SUFFIXES[self.out.suffix.lower()])
                self.writer = cv2.VideoWriter(str(self.out), fourcc, self.fps, (w, h))
                if not self.writer.isOpened():
                    raise DrsedgeError(f"{self.out}: this OpenCV build cannot encode {VIDEO_SUFFIXES[self.out.suffix.lower()]} "
                                       f"into {self.out.suffix}; try .avi (MJPG) or a folder of PNG frames")
                self.size = frame.shape[:2]
            if frame.shape[:2] != self.size:  # OpenCV's VideoWriter silently drops such frames
                raise DrsedgeError(f"{self.out}: frame {self.n} is {frame.shape[1]}x{frame.shape[0]} but the video is "
                                   f"{self.size[1]}x{self.size[0]}; a video file holds one frame size: write to a folder "
                                   f"(-o DIR) instead; the {self.n} frames written are playable")
            free = shutil.disk_usage(self.out.parent).free
            if free < 2 * frame.nbytes + (1 << 20):  # OpenCV's writer fails silently on a full disk: stop before it does
                raise DrsedgeError(f"{self.out}: the disk is full ({free // 1024} KiB free) at frame {self.n}; free space or "
                                   "write elsewhere")
            self.writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        else:
            from PIL import Image

            p = self.out / f"{self.n:06d}.png"
            atomic_write(p, lambda tmp: Image.fromarray(frame).save(tmp, format="PNG"))
        self.n += 1

    def close(self) -> int | None:
        """Release the video writer (it writes the container index: the file plays even after Ctrl-C) and count the
        frames that really play back (``grab`` without decoding), because OpenCV's ``write`` reports nothing; None
        for a folder of PNG frames (each written atomically)."""
        if self.writer is None:
            return None
        self.writer.release()
        import cv2

        cap = cv2.VideoCapture(str(self.out))
        n = 0
        try:
            while n < self.n and cap.isOpened() and cap.grab():
                n += 1
        finally:
            cap.release()
        return n


def _percentiles(ms: list[float]) -> dict:
    if not ms:
        return {}
    s = sorted(ms)
    pick = lambda q: s[min(len(s) - 1, round(q * (len(s) - 1)))]
    return {"p50": pick(0.5), "p95": pick(0.95), "p99": pick(0.99), "mean": statistics.fmean(s)}


def run_stream(source: str, model_path: str, output: str | None = None, *, provider: str = "cpu", plugin: str | None = None,
               tile: int | None = None, overlap: int | None = None, side_by_side: bool = False, max_frames: int | None = None,
               reference=None, queue_size: int = 4, progress: bool = True, infer_delay_s: float = 0.0) -> StreamStats:
    """Derain ``source`` with ``model_path`` (ONNX, TensorRT engine or checkpoint: :func:`open_frame_model`) into
    ``output`` (or nowhere: measure only).

    Frames larger than the model takes (an ONNX static shape, an engine's optimization profile) are tiled with
    ``overlap`` px (None: the default of :func:`drsedge.runtime.limits.plan_tiles`, the policy ``check`` and ``derain``
    use) and averaged; ``tile`` forces a square tile side.
    ``reference``: an object with ``score(index, frame_uint8)``, ``psnr_y``, ``mismatches`` and ``flicker()``
    (:class:`drsedge.metrics.video.VideoReference`: clean frames matched by order, per-frame PSNR-Y and flicker).
    ``infer_delay_s`` slows the consumer (tests of the drop accounting). A live source that stops sending
    frames sets ``source_error`` (the output stays playable).

    Raises:
        DrsedgeError: bad source, model, output kind or codec (frames already written stay playable).
    """
    from tqdm import tqdm

    model = open_frame_model(model_path, provider, plugin)
    if output is not None:
        out = Path(output).resolve()
        src = Path(source).resolve() if Path(source).exists() else None
        if src is not None and (out == src or (src.is_dir() and src in out.parents)):
            raise DrsedgeError(f"{output}: the output would be written into the source {source}; choose another -o")
    reader = open_source(source)
    sink = _Sink(output, reader.fps) if output else None
    stats = StreamStats(source=source, output=output, live=reader.live, model=str(model_path))
    plans: dict[tuple[int, int], int | None] = {}
    q_in: queue.Queue = queue.Queue(maxsize=queue_size)
    q_out: queue.Queue = queue.Queue(maxsize=queue_size)
    stop = threading.Event()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def decode():
        try:
            while not stop.is_set():
                if max_frames is not None and stats.frames_read >= max_frames:
                    break
                frame = reader.read()
                if frame is None:
                    if reader.live:
                        stats.source_error = f"source ended or disappeared after {stats.frames_read} frames"
                    break
                stats.frames_read += 1
                item = (stats.frames_read - 1, frame)
                if reader.live:
                    while True:
                        try:
                            q_in.put_nowait(item)
                            break
                        except queue.Full:
                            try:
                                q_in.get_nowait()  # drop the oldest: a camera never waits for the model
                                with lock:
                                    stats.dropped += 1
                            except queue.Empty:
                                pass
                else:
                    while not stop.is_set():
                        try:
                            q_in.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
        except BaseException as e:  # reported by the main thread
            errors.append(e)
        finally:
            while True:  # the end marker; frames are only given up for it once the consumer has stopped
                try:
                    q_in.put(None, timeout=0.1)
                    break
                except queue.Full:
                    if stop.is_set():
                        with contextlib.suppress(queue.Empty):
                            q_in.get_nowait()

    def encode():
        try:
            while True:
                item = q_out.get()
                if item is None:
                    break
                if sink is not None:
                    sink.write(item)
                stats.frames_written += 1
        except BaseException as e:
            errors.append(e)
            stop.set()
            while q_out.get() is not None:  # keep the producer from blocking
                pass

    lat: list[float] = []
    t0 = time.perf_counter()
    threads = [threading.Thread(target=decode, daemon=True), threading.Thread(target=encode, daemon=True)]
    for t in threads:
        t.start()
    bar = tqdm(total=reader.total if max_frames is None else min(max_frames, reader.total or max_frames), disable=not progress,
               desc="stream", unit="frame", dynamic_ncols=True)
    try:
        while True:
            item = q_in.get()
            if item is None or stop.is_set():
                break
            idx, frame = item
            hw = frame.shape[:2]
            if hw not in plans:
                plans[hw] = plan_tiles(model.limits, *hw, tile, overlap, str(model_path))
                stats.tile = plans[hw].th if plans[hw] else None
                stats.tile_hw = [plans[hw].th, plans[hw].tw] if plans[hw] else None
                stats.tile_reason = "--tile" if tile else (model.limits.source if plans[hw] else "")
            t1 = time.perf_counter()
            y = restore_np(model, frame.astype(np.float32) / 255.0, tile=plans[hw])
            if infer_delay_s:
                time.sleep(infer_delay_s)
            lat.append((time.perf_counter() - t1) * 1e3)
            y8 = (y * 255.0 + 0.5).astype(np.uint8)
            if reference is not None:
                reference.score(idx, y8)
            q_out.put(np.concatenate([frame, y8], axis=1) if side_by_side else y8)
            bar.update(1)
    except KeyboardInterrupt as e:
        stats.interrupted = True
        stats.signal = getattr(e, "signal_name", "SIGINT")
        stop.set()
    finally:
        stop.set()
        bar.close()
        q_out.put(None)
        for t in threads:
            t.join(timeout=10)
        reader.release()
        playable = sink.close() if sink is not None else None
    if playable is not None and playable < stats.frames_written:
        raise DrsedgeError(f"{output}: the video writer failed (disk full or I/O error): only {playable} of the "
                           f"{stats.frames_written} frames written are playable" + (f" ({first_line(errors[0])})" if errors else ""))
    if playable is not None and errors and isinstance(errors[0], DrsedgeError):
        raise DrsedgeError(f"{errors[0]}; {playable} frames of {output} are playable") from None
    total = getattr(reader, "total", None)
    stats.frames_announced = total
    if (total and not reader.live and not stats.interrupted and not errors and stats.source_error is None
            and (max_frames is None or stats.frames_read < max_frames) and stats.frames_read < total - max(1, total // 100)):
        # the container's header announced more frames than could be decoded (1 % or 1 frame of slack for
        # containers whose count is an estimate): truncated or corrupt
        stats.source_error = f"the file announces {total} frames but only {stats.frames_read} could be decoded (truncated or corrupt)"
    stats.seconds = time.perf_counter() - t0
    stats.fps = stats.frames_written / stats.seconds if stats.seconds > 0 else 0.0
    stats.latency_ms = _percentiles(lat)
    if reference is not None:
        stats.psnr_y, stats.reference_mismatches, stats.flicker = dict(reference.psnr_y), reference.mismatches, reference.flicker()
    if errors and not isinstance(errors[0], KeyboardInterrupt):
        e = errors[0]
        raise e if isinstance(e, DrsedgeError) else DrsedgeError(f"{source}: {type(e).__name__}: {e}") from None
    return stats


def write_stats(stats: StreamStats, path: str | os.PathLike) -> Path:
    """Write the stats as strict JSON (no NaN/Infinity: an infinite PSNR-Y is the string ``"inf"``)."""
    from drsedge.jsonio import dumps_strict

    return atomic_write(path, lambda tmp: Path(tmp).write_text(dumps_strict(stats.to_dict(), indent=2)))
