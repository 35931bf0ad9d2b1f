"""Localize-on-failure lives in the check stage (it was CLI-only): when the INT8 stage breaks its budget, the stage
localises its drift against the FP32 ONNX and writes localize.md, for ``drsedge check --localize`` and the pipeline alike."""

import pytest
import torch

from drsedge.run_config import CheckSection
from drsedge.stages import check


@pytest.fixture(scope="module")
def fp32_onnx(tmp_path_factory):
    from drsedge.export.onnx_export import export_onnx
    from drsedge.models.config import student_config

    torch.manual_seed(0)
    return export_onnx(student_config(dim=8, num_blocks=[1, 1, 1, 1]).build(), tmp_path_factory.mktemp("m") / "s.onnx")


def test_a_broken_int8_budget_is_localised(tmp_path, data_dir, fp32_onnx):
    from drsedge.data.folders import find_pairs

    pairs = find_pairs(data_dir / "rain200L" / "test", 1)
    opts = CheckSection(budgets={"onnx_int8": -1.0}, latency_hw=[64, 64], latency_runs=1)  # a negative budget demands a gain: broken
    inputs = check.CheckInputs(pairs, onnx_fp32=fp32_onnx, onnx_int8=fp32_onnx, localize=[str(data_dir / "real")])
    res = check.run(opts, inputs, tmp_path / "a", progress=False)
    assert not res.metrics["ok"]
    text = res.artifacts["localize_md"].read_text()
    assert text.startswith("## Drift localisation") and "layers compared" in text
    assert "localize.md" in (tmp_path / "a" / "report.md").read_text()
    # without image folders, or within budget, nothing is localised
    inputs.localize = None
    assert "localize_md" not in check.run(opts, inputs, tmp_path / "b", progress=False).artifacts
    inputs.localize = [str(data_dir / "real")]
    assert "localize_md" not in check.run(CheckSection(latency_hw=[64, 64], latency_runs=1), inputs, tmp_path / "c", progress=False).artifacts
