"""The stage functions both doors call: every option reaches the library, the stage graph is well formed."""

import pytest

from drsedge.errors import BudgetError, DrsedgeError
from drsedge.pipeline import GRAPH, OPTIONAL, Pipeline
from drsedge.run_config import CheckSection, QuantizeSection, load_run_config
from drsedge.stages import check, quantize


class _Calib:
    files, digest, inputs = ["a.png"], "0" * 64, []


def test_ptq_passes_every_option(monkeypatch, tmp_path):
    """`high_precision` reached quantize_onnx from neither door on 4ce09a9's keep-float path; every option is passed now."""
    import drsedge.compress.quantize as q

    seen = {}
    monkeypatch.setattr(q, "quantize_onnx", lambda *a: seen.setdefault("ptq", a))
    monkeypatch.setattr(q, "count_qdq", lambda p: {"QuantizeLinear": 1, "DequantizeLinear": 1})
    opts = QuantizeSection(backend="modelopt", high_precision="fp16", quantize_depthwise=True, keep_float=["latent"])
    res = quantize.run(opts, quantize.QuantizeInputs(_Calib(), "in.onnx"), tmp_path / "o.onnx")
    assert seen["ptq"][3:] == ("modelopt", True, ["latent"], "fp16") and res.metrics["method"] == "ptq"


def test_a_backend_refuses_an_option_it_does_not_take(tmp_path, capsys):
    """high_precision fp16 was silently ignored by nncf and ort (they keep FP32 around the Q/DQ): refused in one line
    from both doors now."""
    from drsedge.cli import main
    from drsedge.run_config import validate_run_config

    with pytest.raises(ValueError, match="modelopt option"):
        QuantizeSection(backend="ort", high_precision="fp16")
    assert QuantizeSection(backend="modelopt", high_precision="fp16").high_precision == "fp16"
    with pytest.raises(DrsedgeError, match=r"quantize: high_precision fp16 .*modelopt option"):
        validate_run_config({"run_dir": "r", "data": {"train": ["t"], "calibration": ["c"], "test": "x"}, "teacher": {},
                             "student": {}, "quantize": {"backend": "nncf", "high_precision": "fp16"}}, "run.yaml")
    onnx = tmp_path / "m.onnx"  # the options are refused before the model is read
    assert main(["quantize", str(onnx), "--calib", str(tmp_path), "-o", str(tmp_path / "o.onnx"), "--high-precision", "fp16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--high-precision" in err[0] and not (tmp_path / "o.onnx").exists()


def test_search_passes_every_option_and_a_miss_is_a_budget_error(monkeypatch, tmp_path):
    import drsedge.compress.keep_float as kf

    seen = {}

    class Res:
        ok, steps = False, [object(), object()]

        def table(self):
            return "| table |"

    monkeypatch.setattr(kf, "search_keep_float", lambda *a, **k: (seen.update(k), Res())[1])
    opts = QuantizeSection(backend="modelopt", high_precision="fp16", budget_db=0.3, candidates=2, granularity="module", max_steps=5, min_fidelity_db=40)
    logged = []
    with pytest.raises(BudgetError, match="no INT8 model meets its targets on val after 1 keep-float step"):
        quantize.run(opts, quantize.QuantizeInputs(_Calib(), "in.onnx", validation=["pair"], validation_name="val"), tmp_path / "o.onnx",
                     log=logged.append)
    assert {k: seen[k] for k in ("high_precision", "candidates", "granularity", "max_steps", "min_fidelity_db", "budget_db")} == \
        {"high_precision": "fp16", "candidates": 2, "granularity": "module", "max_steps": 5, "min_fidelity_db": 40, "budget_db": 0.3}
    assert logged == ["| table |"] and not (tmp_path / "o.onnx").exists()
    with pytest.raises(DrsedgeError, match="need paired validation images"):
        quantize.run(opts, quantize.QuantizeInputs(_Calib(), "in.onnx"), tmp_path / "o.onnx")


def test_method_dispatch():
    assert quantize.method(QuantizeSection()) == "ptq"
    assert quantize.method(QuantizeSection(min_fidelity_db=45)) == "search"
    assert quantize.method(QuantizeSection(qat_steps=3)) == "qat"
    # QAT takes none of PTQ's options: each was silently ignored before
    for extra in ({"budget_db": 1}, {"backend": "ort"}, {"keep_float": ["latent"]}, {"quantize_depthwise": True}):
        with pytest.raises(ValueError, match="does not take"):
            QuantizeSection(qat_steps=3, **extra)


def test_a_budget_for_an_unknown_stage_is_refused(tmp_path):
    """A typo in a budget name would pass every run; a standard stage that is not measured is noted instead."""
    with pytest.raises(DrsedgeError, match="budget for onnx_int: no such stage"):
        check.evaluate(CheckSection(budgets={"onnx_int": 1.0}), check.CheckInputs([], onnx_fp32=tmp_path / "missing.onnx"))


def test_stage_graph_is_ordered_and_resolves_the_deployed_model(tmp_path, data_dir):
    names = list(GRAPH)
    for name, (inputs, _data) in GRAPH.items():
        for dep in inputs:
            for d in dep if isinstance(dep, tuple) else (dep,):
                assert names.index(d) < names.index(name), (name, d)
    assert set(OPTIONAL) <= set(GRAPH)
    cfg = load_run_config(__import__("drsedge.run_config", fromlist=["DEMO_CONFIG"]).DEMO_CONFIG,
                          {"run_dir": str(tmp_path / "r"), "data": {"root": str(data_dir)}})
    pipe = Pipeline(cfg)
    assert pipe.inputs("export") == ["prune"] and pipe.inputs("check") == ["teacher", "student", "prune", "export", "quantize"]
    off = Pipeline(cfg.model_copy(update={"prune": cfg.prune.model_copy(update={"enabled": False}),
                                          "data": cfg.data.model_copy(update={"synthetic": None})}))
    assert off.enabled == ["teacher", "student", "export", "quantize", "check"]
    assert off.inputs("export") == ["student"] and off.inputs("student") == ["teacher"]
