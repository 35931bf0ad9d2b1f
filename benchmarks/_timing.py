"""Interleaved timing: every variant runs once per round, so machine noise hits all of them alike."""

from __future__ import annotations

import statistics
import time


def interleaved_rounds(variants: dict, runs: int = 7, warmup: int = 1) -> dict[str, list[float]]:
    """``variants``: name -> zero-arg callable. Returns name -> the ms of each of ``runs`` rounds (after ``warmup``)."""
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(runs):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return times


def interleaved(variants: dict, runs: int = 7, warmup: int = 1) -> dict[str, float]:
    """``variants``: name -> zero-arg callable. Returns name -> median ms over ``runs`` rounds."""
    return {k: statistics.median(v) for k, v in interleaved_rounds(variants, runs, warmup).items()}


def table(title: str, medians: dict[str, float], baseline: str) -> str:
    base = medians[baseline]
    rows = [f"## {title}", "", "| variant | median ms | ratio vs " + baseline + " |", "|---|---|---|"]
    rows += [f"| {k} | {v:.2f} | {v / base:.2f}x |" for k, v in medians.items()]
    return "\n".join(rows) + "\n"
