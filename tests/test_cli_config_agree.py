"""The two doors agree: every CLI flag that has a run-config field offers the same choices and the same default
(the flags take them from the section with :func:`drsedge.run_config.cli_choice`; this catches a flag that restates one)."""

import types
import typing

import pytest

from drsedge import run_config
from drsedge.cli import build_parser

# (command, flag dest) -> (run-config section class, field); the synthetic preset differs on purpose (CLI "light": a
# quick look; pipeline "mixed": training data), so it is not listed; quantize --crop defaults to None on purpose (a static
# export's own size, else QuantizeSection.size: tests/compress/test_quantize.py).
PAIRS = {
    ("export", "exporter"): (run_config.ExportSection, "exporter"),
    ("export", "attention"): (run_config.ExportSection, "attention"),
    ("export", "structure"): (run_config.ExportSection, "structure"),
    ("export", "opset"): (run_config.ExportSection, "opset"),
    ("quantize", "backend"): (run_config.QuantizeSection, "backend"),
    ("quantize", "high_precision"): (run_config.QuantizeSection, "high_precision"),
    ("prune", "importance"): (run_config.PruneSection, "importance"),
    ("prune", "scope"): (run_config.PruneSection, "scope"),
    ("prune", "ratio"): (run_config.PruneSection, "ratio"),
    ("prune", "iterations"): (run_config.PruneSection, "iterations"),
    ("export", "limit"): (run_config.ExportSection, "fp16_frames"),
    ("quantize", "limit"): (run_config.QuantizeSection, "limit"),
    ("quantize", "val_limit"): (run_config.QuantizeSection, "val_limit"),
    ("quantize", "max_steps"): (run_config.QuantizeSection, "max_steps"),
    ("quantize", "candidates"): (run_config.QuantizeSection, "candidates"),
    ("quantize", "granularity"): (run_config.QuantizeSection, "granularity"),
    ("check", "latency_size"): (run_config.CheckSection, "latency_hw"),
    ("check", "latency_runs"): (run_config.CheckSection, "latency_runs"),
}


def _action(cmd: str, dest: str):
    sub = next(a for a in build_parser()._actions if a.dest == "cmd")
    return next(a for a in sub.choices[cmd]._actions if a.dest == dest)


def _literal_values(tp) -> set:
    while typing.get_origin(tp) in (list, typing.Union, types.UnionType):  # list[...], X | None, Optional[X]
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    return set(typing.get_args(tp)) if typing.get_origin(tp) is typing.Literal else set()


@pytest.mark.parametrize("cmd,dest", sorted(PAIRS))
def test_cli_choices_and_defaults_match_the_run_config(cmd, dest):
    section, field = PAIRS[(cmd, dest)]
    info = section.model_fields[field]
    action = _action(cmd, dest)
    if action.choices is not None:
        assert set(action.choices) == _literal_values(info.annotation), (cmd, dest)
    default = info.default
    assert action.default == default or (isinstance(default, list) and list(action.default or []) == default), (cmd, dest, action.default, default)
