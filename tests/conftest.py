"""Shared fixtures: ../shared (data, upstream fixtures) next to the repository; tests skip with the reason when absent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = (REPO / ".." / "shared").resolve()
DATA = SHARED / "data"
FIXTURES = SHARED / "fixtures" / "drsformer_parity"


def one_error_line(err: str, *needles: str) -> str:
    """The CLI's error output is exactly one ``drsedge: error: ...`` line (progress bars may precede it), no traceback,
    holding every needle; returns the line. The one helper for "exactly one error line" (issue 22)."""
    lines = [ln for ln in err.strip().splitlines() if "error:" in ln or ln.startswith("drsedge: ")]
    assert len(lines) == 1 and "Traceback" not in err and err.strip().splitlines()[-1] == lines[0], err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def static_conv_onnx(path: Path, side: int = 64) -> Path:
    """A one-Conv ONNX with a static ``[1, 3, side, side]`` input (the shape a UDR-S2Former export has), random weights
    (seed 0), opset 17: the smallest static export for the CLI's static-shape rules."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).normal(0, 0.1, (3, 3, 3, 3)).astype(np.float32), "w")
    g = helper.make_graph([helper.make_node("Conv", ["image", "w"], ["out"], pads=[1, 1, 1, 1])], "g",
                          [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, side, side])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, side, side])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)
    return path


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent (tests that need ../shared skip without it)")
    return path


@pytest.fixture
def data_dir() -> Path:
    return need(DATA)


@pytest.fixture
def fixtures_dir() -> Path:
    return need(FIXTURES)


@pytest.fixture
def fixture_config(fixtures_dir) -> dict:
    return json.loads((fixtures_dir / "config.json").read_text())


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
