"""``drsedge stream``: derain a video file, a folder of frames, a camera or a network stream (torch-free)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from drsedge.errors import DrsedgeError

from .args import MULT8, POS


def cmd_stream(a) -> int:
    from drsedge.runtime.stream import run_stream, write_stats

    if not str(a.model).endswith(".onnx"):
        raise DrsedgeError(f"{a.model}: stream runs ONNX models (ONNX Runtime: --provider cpu, cuda or tensorrt); "
                           "export a checkpoint with `drsedge export MODEL -o model.onnx` first")
    stats = run_stream(a.source, a.model, a.output, provider=a.provider, tile=a.tile, side_by_side=a.side_by_side,
                       max_frames=a.max_frames, reference=a.reference, progress=not a.quiet)
    stats_path = a.stats or (str(a.output) + ".json" if a.output else "stream_stats.json")
    write_stats(stats, stats_path)
    lat = stats.latency_ms
    print(f"{stats.frames_written} frames in {stats.seconds:.1f} s: {stats.fps:.2f} FPS; latency p50 {lat.get('p50', 0):.1f} / "
          f"p95 {lat.get('p95', 0):.1f} / p99 {lat.get('p99', 0):.1f} ms; dropped {stats.dropped}"
          + (f"; mean PSNR-Y {sum(stats.psnr_y.values()) / len(stats.psnr_y):.2f} dB" if stats.psnr_y else "")
          + (f"; flicker {stats.flicker['derained']:.2f} vs clean {stats.flicker['clean']:.2f}" if stats.flicker else ""))
    print(f"stats: {stats_path}" + (f"; output: {a.output}" if a.output else ""))
    if stats.source_error:
        print(f"drsedge: {stats.source_error}", file=sys.stderr)
    if stats.interrupted:
        print("drsedge: interrupted; the frames written so far are playable", file=sys.stderr)
        return 130
    return 0


def register(sub) -> None:
    p = sub.add_parser("stream", help="derain a video file, frame folder, V4L2 camera, RTSP/HTTP URL or GStreamer pipeline")
    p.add_argument("source", help="video file, folder of frames, v4l2:///dev/video0, rtsp://..., or a GStreamer pipeline")
    p.add_argument("-o", "--output", help="video file (.mp4, .avi, .mkv) or folder of PNG frames; omit to only measure")
    p.add_argument("--model", required=True, help="ONNX model (drsedge export)")
    p.add_argument("--provider", choices=("cpu", "cuda", "tensorrt"), default="cpu", help="ONNX Runtime execution provider")
    p.add_argument("--tile", type=MULT8, help="tile frames larger than this (px, multiple of 8), overlapping tiles averaged")
    p.add_argument("--side-by-side", action="store_true", help="write input | derained")
    p.add_argument("--max-frames", type=POS)
    p.add_argument("--reference", metavar="DIR", help="clean frames in the same order: per-frame PSNR-Y and temporal flicker")
    p.add_argument("--stats", help="stats JSON path (default OUTPUT.json, or stream_stats.json)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(fn=cmd_stream)


__all__ = ["Path", "cmd_stream", "json", "register"]
