"""The runner base enforces its contract: every backend's output is checked once by ``FrameModel.__call__`` (a backend
cannot forget it), one latency record for all, and models close as context managers."""

import numpy as np
import pytest

from drsedge.errors import DrsedgeError, NonFiniteError
from drsedge.runtime.base import FrameModel, latency_summary
from drsedge.runtime.limits import ShapeLimits


class Backend(FrameModel):
    """A backend that returns what it is told to, and checks nothing itself."""

    def __init__(self, out):
        self.path, self.limits, self.out, self.seen = "fake.onnx", ShapeLimits((64, 64), (64, 64), "static 64x64"), out, []

    def _infer(self, x):
        self.seen.append((x.dtype, x.flags["C_CONTIGUOUS"]))
        return self.out(x)


def test_the_base_checks_every_backends_output():
    x = np.zeros((1, 3, 64, 64), np.float64)[..., ::-1]  # float64 and not contiguous: the base fixes both
    m = Backend(lambda x: x * 0.5)
    assert m(x).dtype == np.float32 and m.seen == [(np.float32, True)]
    with pytest.raises(NonFiniteError, match="fake.onnx: output holds NaN"):
        Backend(lambda x: x * np.nan)(x)
    with pytest.raises(DrsedgeError, match="output shape .* differs"):
        Backend(lambda x: x[..., :32])(x)
    with pytest.raises(TypeError):
        type("NoInfer", (FrameModel,), {})()  # a backend without _infer cannot be built


def test_one_latency_record_and_the_limits_are_respected():
    m = Backend(lambda x: x)
    rec = m.latency_ms(64, 64, runs=3, warmup=0)
    assert set(rec) == {"height", "width", "runs", "median_ms", "p95_ms"} and rec["runs"] == 3
    with pytest.raises(DrsedgeError, match="latency size 128x128 is outside"):
        m.latency_ms(128, 128)
    assert latency_summary([4.0, 1.0, 3.0, 2.0], 8, 8) == {"height": 8, "width": 8, "runs": 4, "median_ms": 2.5, "p95_ms": 4.0}


def test_ort_model_closes_as_a_context_manager(tmp_path):
    import torch

    from drsedge.runtime.onnx_np import OnnxModel
    from drsedge.runtime.runners import OrtRunner

    onnx_model = tmp_path / "conv.onnx"
    torch.onnx.export(torch.nn.Conv2d(3, 3, 3, padding=1), torch.zeros(1, 3, 64, 64), onnx_model, input_names=["input"],
                      output_names=["output"], opset_version=17, dynamo=False,
                      dynamic_axes={"input": {2: "h", 3: "w"}, "output": {2: "h", 3: "w"}})

    with OnnxModel(onnx_model) as m:
        assert m(np.zeros((1, 3, 64, 64), np.float32)).shape == (1, 3, 64, 64)
    assert m.closed and m.session is None
    lat = OrtRunner(onnx_model).latency_ms(64, 64, runs=2)  # a runner without its own timer: wall time, same record
    assert set(lat) == {"height", "width", "runs", "median_ms", "p95_ms"}
