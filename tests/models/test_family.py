"""The family registry: every family is found by config, module, upstream state_dict and ONNX metadata; a new family is
one entry plus its model file, and runs the pipeline with no other change (docs/families.md)."""

import json

import pytest
import torch
import yaml

from drsedge.cli import main
from drsedge.errors import DrsedgeError
from drsedge.models.family import FAMILIES, Family, family_named, family_of_config, family_of_model, family_of_state, register

TOY = Family(name="toy", label="Toy CNN", config="tests.models.toy_family:ToyConfig", module="tests.models.toy_family:ToyNet",
             state_keys=("head.weight", "tail.weight"), config_from_state="tests.models.toy_family:config_from_state",
             static_export=False, size_multiple=8, parity="max_abs", tksa=False, prune_scopes=(), default_prune_scopes=(),
             int8_float_modules=(), output_conv="tail")


@pytest.fixture
def toy():
    register(TOY)
    try:
        yield TOY
    finally:
        FAMILIES.pop("toy", None)


def test_each_family_is_found_by_config_module_and_state():
    from drsedge.models.ast import PRESETS
    from drsedge.models.config import student_config
    from drsedge.models.udr_config import udr_small_config

    for cfg, name in ((student_config(dim=8, num_blocks=[1, 1, 1, 1]), "drsformer"), (udr_small_config(), "udr_s2former"),
                      (PRESETS["ast-small"], "ast")):
        model = cfg.build()
        assert family_of_config(cfg).name == family_of_model(model).name == family_of_state(model.state_dict()).name == name
    with pytest.raises(DrsedgeError, match="use one of"):
        family_named("nerd_rain")
    with pytest.raises(ValueError, match="already registered"):
        register(FAMILIES["ast"])


@pytest.mark.slow
def test_a_new_family_runs_the_pipeline_with_one_registry_entry(toy, tmp_path, data_dir):
    """The worked example: a toy CNN student distilled from the shipped DRSformer teacher, exported (dynamic H/W),
    quantized and reported, with nothing but the entry above and tests/models/toy_family.py."""
    cfg = {"run_dir": str(tmp_path / "run"), "seed": 0,
           "data": {"root": None, "skip_held_out_copies": True, "train": ["rain200L/train"], "calibration": ["rain200L/train/input"],
                    "test": "rain100L", "test_limit": 2},
           "teacher": {"checkpoint": "shipped:teacher"},
           "student": {"model": {"family": "toy", "width": 8}, "distill": {"steps": 4, "batch_size": 2, "patch": 32, "checkpoint_every": 2}},
           "prune": {"enabled": False},
           "export": {"fp16": False},
           "quantize": {"backend": "nncf", "size": 64, "limit": 2},
           "check": {"latency_runs": 1, "latency_hw": [64, 64], "budgets": {"student": 100.0, "onnx_fp32": 0.05, "onnx_int8": 100.0}}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["pipeline", "--config", str(tmp_path / "run.yaml"), "--data", str(data_dir)]) == 0
    m = json.loads((tmp_path / "run" / "manifest.json").read_text())["stages"]
    rep = json.loads((tmp_path / "run" / m["check"]["artifacts"]["report_json"]["path"]).read_text())
    assert {s["name"] for s in rep["stages"]} >= {"student", "onnx_fp32", "onnx_int8"} and rep["ok"]
    from drsedge.models.checkpoint import load_any

    model, c = load_any(tmp_path / "run" / m["student"]["artifacts"]["model"]["path"])
    assert c.family == "toy" and type(model).__name__ == "ToyNet"
    with torch.no_grad():
        assert model(torch.rand(1, 3, 24, 40)).shape == (1, 3, 24, 40)


def test_the_run_config_prune_scopes_are_the_families_scopes():
    """prune.scope's schema choices (run_config.PruneSection) are exactly the union of the registry's scopes."""
    import typing

    from drsedge.run_config import PruneSection

    ann = PruneSection.model_fields["scope"].annotation
    lit = next(a for a in typing.get_args(ann) if typing.get_origin(a) is list)
    choices = set(typing.get_args(typing.get_args(lit)[0]))
    assert choices == {s for f in FAMILIES.values() for s in f.prune_scopes}


def test_cli_presets_are_drsformers_and_the_registrys():
    """tools/args.PRESETS is a literal (the CLI imports no model code at start); it must list every registered family's
    presets, and each resolves to that family's config."""
    from drsedge.tools.args import PRESETS, model_config

    registry = {name for f in FAMILIES.values() for name in f.preset_configs() if name != "student"}
    assert registry <= set(PRESETS)
    assert set(PRESETS) - registry == {"drsformer", "drsformer-nomefc", "drsformer-upstream", "student"}
    for f in FAMILIES.values():
        for name in f.preset_configs():
            if name != "student":
                assert family_of_config(model_config(name, None)).name == f.name
        if f.name != "drsformer":
            assert family_of_config(model_config("student", [f"family={f.name}"])).name == f.name
