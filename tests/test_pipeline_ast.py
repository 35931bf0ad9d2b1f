"""AST as a third family through the pipeline (drsedge/configs/ast_rain.yaml, shortened): distilled from the shipped
DRSformer teacher, exported static, INT8 with ASSA in float, drift report; and the options AST cannot take, refused at
preflight."""

import json
from pathlib import Path

import onnx
import pytest
import yaml

from drsedge.cli import main
from tests.conftest import one_error_line

pytestmark = pytest.mark.slow

CONFIG = Path(__file__).resolve().parents[1] / "drsedge" / "configs" / "ast_rain.yaml"


def _config(tmp_path, **override):
    from drsedge.run_config import load_run_config

    cfg = load_run_config(CONFIG).model_dump(mode="json")
    cfg["student"]["distill"] = {**cfg["student"]["distill"], "steps": 4, "checkpoint_every": 2}
    cfg["data"] = {**cfg["data"], "test_limit": 2}
    cfg["prune"] = {**cfg["prune"], "finetune": {**cfg["prune"]["finetune"], "steps": 2, "checkpoint_every": 1}}
    cfg["quantize"] = {**cfg["quantize"], "limit": 2}
    cfg["check"] = {**cfg["check"], "latency_runs": 1, "latency_hw": [128, 128], "budgets": {"student": 100.0, "pruned": 100.0, "onnx_fp32": 0.3, "onnx_int8": 100.0}}
    for k, v in override.items():
        cfg[k] = {**cfg[k], **v}
    cfg["run_dir"] = str(tmp_path / "run")
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path / "run.yaml"


def test_ast_pipeline_end_to_end(tmp_path, data_dir):
    from drsedge.models.checkpoint import read_config
    from drsedge.onnx_graph import module_path

    assert main(["pipeline", "--config", str(_config(tmp_path)), "--data", str(data_dir)]) == 0
    run = tmp_path / "run"
    m = json.loads((run / "manifest.json").read_text())["stages"]
    assert {"student", "prune", "export", "quantize", "check"} <= set(m) and "synth" not in m
    assert read_config(run / m["student"]["artifacts"]["model"]["path"]).family == "ast"
    pruned = read_config(run / m["prune"]["artifacts"]["model"]["path"])
    assert pruned.family == "ast" and pruned.frfn_hidden  # FRFN widths halved
    fp32 = onnx.load(str(run / m["export"]["artifacts"]["onnx"]["path"]))
    assert {p.key: p.value for p in fp32.metadata_props}["drsedge.family"] == "ast"
    assert [d.dim_value for d in fp32.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 128, 128]
    int8 = onnx.load(str(run / m["quantize"]["artifacts"]["onnx"]["path"]))
    qdq = [n for n in int8.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq and not [n.name for n in qdq if "attn" in module_path(n.name)]  # ASSA stays float
    rep = json.loads((run / m["check"]["artifacts"]["report_json"]["path"]).read_text())
    stages = {s["name"]: s for s in rep["stages"]}
    assert {"teacher", "student", "pruned", "onnx_fp32", "onnx_int8"} <= set(stages) and rep["ok"]
    assert stages["pruned"]["info"]["macs"] < stages["student"]["info"]["macs"]
    assert abs(stages["onnx_fp32"]["delta_vs_prev"]) <= 0.3  # static 128x128 tiles vs PyTorch on whole frames


@pytest.mark.parametrize("override,needle", [
    ({"prune": {"enabled": True, "scope": ["msfn"]}}, "AST prunes --scope frfn"),
    ({"export": {"size": [100, 100]}}, "multiples of 64"),
    ({"quantize": {"qat_steps": 5}}, "QAT"),
    ({"export": {"attention": "fused"}}, "no TKSA"),
])
def test_ast_options_that_cannot_apply_are_refused_before_any_stage(tmp_path, data_dir, capsys, override, needle):
    assert main(["pipeline", "--config", str(_config(tmp_path, **override)), "--data", str(data_dir)]) == 2
    one_error_line(capsys.readouterr().err, needle)
    assert not (tmp_path / "run" / "student").exists()
