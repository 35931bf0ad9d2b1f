"""``drsedge stream``: derain a video file, a folder of frames, a camera or a network stream (torch-free)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from drsedge.errors import raise_terminated

from .args import POS, add_plugin_arg
from .args.tiling import add_tiling_args


def cmd_stream(a) -> int:
    import signal
    import threading

    from drsedge.fileio import refuse_overwrite
    from drsedge.runtime.stream import run_stream, write_stats

    stats_path = a.stats or (str(a.output) + ".json" if a.output else "stream_stats.json")
    inputs = [a.source, a.reference, a.plugin, a.output] + ([a.model] if Path(a.model).exists() else [])
    refuse_overwrite(stats_path, inputs, "stats file (--stats)")
    if a.output:
        refuse_overwrite(a.output, [a.source, a.reference, a.plugin] + ([a.model] if Path(a.model).exists() else []))
    reference = None
    if a.reference:
        from drsedge.metrics.video import VideoReference

        reference = VideoReference(a.reference)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, raise_terminated)  # finish the frame, close the file
    try:
        stats = run_stream(a.source, a.model, a.output, provider=a.provider, plugin=a.plugin, tile=a.tile, overlap=a.tile_overlap,
                           side_by_side=a.side_by_side, max_frames=a.max_frames, reference=reference, progress=not a.quiet)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    write_stats(stats, stats_path)
    lat = stats.latency_ms
    print(f"{stats.frames_written} frames in {stats.seconds:.1f} s: {stats.fps:.2f} FPS; latency p50 {lat.get('p50', 0):.1f} / "
          f"p95 {lat.get('p95', 0):.1f} / p99 {lat.get('p99', 0):.1f} ms; dropped {stats.dropped}"
          + (f"; mean PSNR-Y {sum(stats.psnr_y.values()) / len(stats.psnr_y):.2f} dB" if stats.psnr_y else "")
          + (f"; flicker {stats.flicker['derained']:.2f} vs clean {stats.flicker['clean']:.2f}" if stats.flicker else ""))
    print(f"stats: {stats_path}" + (f"; output: {a.output}" if a.output else "")
          + (f"; tiles of {'x'.join(map(str, stats.tile_hw)) if stats.tile_hw[0] != stats.tile_hw[1] else stats.tile} px ({stats.tile_reason})" if stats.tile else ""))
    if stats.reference_mismatches:
        print(f"drsedge: {a.reference}: {stats.reference_mismatches} reference frame(s) differ in size from the output; "
              "no PSNR-Y for them (give clean frames of the source's size)", file=sys.stderr)
    if stats.interrupted:
        print(f"drsedge: interrupted by {stats.signal or 'SIGINT'}; the {stats.frames_written} frames written are playable; "
              f"stats: {stats_path}", file=sys.stderr)
        return 143 if stats.signal == "SIGTERM" else 130
    if stats.source_error:
        print(f"drsedge: {a.source}: {stats.source_error}; the {stats.frames_written} frames written are playable", file=sys.stderr)
        return 2
    return 0


def register(sub) -> None:
    p = sub.add_parser("stream", help="derain a video file, frame folder, V4L2 camera, RTSP/HTTP URL or GStreamer pipeline")
    p.add_argument("source", help="video file, folder of frames, v4l2:///dev/video0, rtsp://..., or a GStreamer pipeline")
    p.add_argument("-o", "--output", help="video file (.mp4, .avi, .mkv) or folder of PNG frames; omit to only measure")
    p.add_argument("--model", required=True, help="ONNX model (drsedge export), TensorRT engine (.engine/.plan with its .json "
                   "sidecar, drsedge build-engine) or checkpoint (.safetensors, upstream .pth, shipped:student)")
    p.add_argument("--provider", choices=("cpu", "cuda", "tensorrt", "openvino"), default="cpu",
                   help="ONNX models: ONNX Runtime execution provider, or openvino (OpenVINO CPU runtime; INT8 Q/DQ runs as INT8)")
    add_plugin_arg(p)
    add_tiling_args(p)
    p.add_argument("--side-by-side", action="store_true", help="write input | derained")
    p.add_argument("--max-frames", type=POS)
    p.add_argument("--reference", metavar="DIR", help="clean frames in the same order: per-frame PSNR-Y and temporal flicker")
    p.add_argument("--stats", help="stats JSON path (default OUTPUT.json, or stream_stats.json)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(fn=cmd_stream)


__all__ = ["Path", "cmd_stream", "json", "register"]
