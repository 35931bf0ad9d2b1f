"""The two doors agree: every CLI flag that has a run-config field offers the same choices and the same default
(the flags take them from the section with :func:`drsedge.run_config.cli_choice`; this catches a flag that restates one),
and the CLI's ``distill`` builds the same student as the pipeline for the same model options.

The test walks every command of the parser: a command is either tied to its run-config sections (then each flag
whose dest names a field, or is renamed in ``RENAMED``, is compared) or listed in ``NO_SECTION``; a new command must
be put in one of the two."""

import types
import typing

import pytest

from drsedge import run_config
from drsedge.cli import build_parser

SECTIONS = {
    "synth-rain": [run_config.SyntheticSection],
    "export": [run_config.ExportSection],
    "quantize": [run_config.QuantizeSection],
    "qat": [run_config.QuantizeSection],
    "prune": [run_config.PruneSection],
    "distill": [run_config.PruneTeacherInit],  # --init prune-teacher's options
    "check": [run_config.CheckSection],
}
# commands with no run-config section of their own (the pipeline runs them through the sections above, or not at all)
NO_SECTION = {"info", "metrics", "train-teacher", "fp16-check", "localize", "compare", "pipeline", "demo", "build-engine",
              "bundle", "derain", "stream"}
# (command, flag dest) -> field, where the flag's name is not the field's
RENAMED = {
    ("export", "limit"): "fp16_frames",
    ("quantize", "budget"): "budget_db",
    ("quantize", "min_fidelity"): "min_fidelity_db",
    ("qat", "lr"): "qat_lr",
    ("qat", "batch_size"): "qat_batch_size",
    ("qat", "patch"): "qat_patch",
    ("check", "latency_size"): "latency_hw",
}
# differences on purpose, each with its reason
EXEMPT = {
    ("synth-rain", "preset"): "CLI 'light' is a quick look; the pipeline's 'mixed' is training data",
    ("quantize", "size"): "None: a static export's own size, else QuantizeSection.size (tests/compress/test_quantize.py)",
    ("export", "size"): "None on both; the CLI flag takes H W, the section a list",
    ("check", "budget"): "the CLI parses STAGE=DB pairs into the section's dict",
    ("distill", "scope"): "None: PruneTeacherInit's default scopes (the flag has no list of its own)",
}


def _commands() -> dict:
    sub = next(a for a in build_parser()._actions if a.dest == "cmd")
    return sub.choices


def _pairs() -> list[tuple[str, str, type, str]]:
    out = []
    for cmd, parser in _commands().items():
        for section in SECTIONS.get(cmd, []):
            for action in parser._actions:
                field = RENAMED.get((cmd, action.dest), action.dest)
                if field in section.model_fields and (cmd, action.dest) not in EXEMPT:
                    out.append((cmd, action.dest, section, field))
    return out


def test_every_command_is_classified():
    assert set(_commands()) == set(SECTIONS) | NO_SECTION, "put a new command in SECTIONS or NO_SECTION"
    assert not set(SECTIONS) & NO_SECTION


def test_the_walk_covers_the_renamed_and_the_known_flags():
    found = {(c, d) for c, d, _, _ in _pairs()}
    assert set(RENAMED) <= found
    for known in [("qat", "limit"), ("qat", "size"), ("quantize", "limit"), ("prune", "ratio"), ("distill", "importance"),
                  ("export", "opset"), ("check", "latency_runs")]:
        assert known in found, known


def _literal_values(tp) -> set:
    while typing.get_origin(tp) in (list, typing.Union, types.UnionType):  # list[...], X | None, Optional[X]
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    return set(typing.get_args(tp)) if typing.get_origin(tp) is typing.Literal else set()


@pytest.mark.parametrize("cmd,dest,section,field", _pairs(), ids=lambda v: getattr(v, "__name__", str(v)))
def test_cli_choices_and_defaults_match_the_run_config(cmd, dest, section, field):
    info = section.model_fields[field]
    action = next(a for a in _commands()[cmd]._actions if a.dest == dest)
    if action.choices is not None:
        assert set(action.choices) == _literal_values(info.annotation), (cmd, dest)
    if info.is_required():  # a required field has no default to agree with
        return
    default = info.default
    assert action.default == default or (isinstance(default, list) and list(action.default or []) == default), (cmd, dest, action.default, default)


@pytest.mark.parametrize("flags", [[], ["dim=8"], ["dim=8", "num_blocks=[1,1,1,1]"], ["family=udr_s2former"],
                                   ["family=ast", "embed_dim=8"]])
def test_cli_and_pipeline_build_the_same_student(flags):
    """``drsedge distill --model K=V ...`` and a run config's ``student.model: {K: V}`` name the same architecture."""
    from drsedge.run_config import RunConfig
    from drsedge.stages.preflight import student_config
    from drsedge.tools.args import kv, model_config

    cli = model_config("student", flags)
    cfg = RunConfig.model_validate({"run_dir": "r", "data": {"train": ["t"], "calibration": ["c"], "test": "x"},
                                    "teacher": {"checkpoint": "shipped:teacher"}, "student": {"model": kv(flags) or None}})
    assert student_config(cfg).to_dict() == cli.to_dict()
    assert type(cli).__name__ == {"udr_s2former": "UDRConfig", "ast": "ASTConfig"}.get(kv(flags).get("family"), "ModelConfig")


def test_every_choice_list_is_written_once():
    """The schema's Literals, the CLI's choices and the library's checks take their lists from drsedge/choices.py; no
    module spells one out again (a tuple, list or set literal of the same strings), and the families agree."""
    import ast
    from pathlib import Path

    from drsedge import choices
    from drsedge.models.family import FAMILIES

    lists = {frozenset(v): k for k, v in vars(choices).items() if k.isupper()}
    found = []
    for f in Path(choices.__file__).parent.rglob("*.py"):
        if f.name == "choices.py":
            continue
        for n in ast.walk(ast.parse(f.read_text())):
            if isinstance(n, (ast.Tuple, ast.List, ast.Set)) and len(n.elts) > 1 and all(
                    isinstance(e, ast.Constant) and isinstance(e.value, str) for e in n.elts):
                key = frozenset(e.value for e in n.elts)
                if key in lists:
                    found.append(f"{f.name}:{n.lineno} restates choices.{lists[key]}")
    assert not found, found
    builtin = [FAMILIES[n] for n in ("drsformer", "udr_s2former", "ast")]
    assert set(choices.PRUNE_SCOPES) == set().union(*(f.prune_scopes for f in builtin))
    assert FAMILIES["drsformer"].prune_scopes == choices.DRSFORMER_PRUNE_SCOPES
