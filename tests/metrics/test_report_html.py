"""report.html: self-contained (every image a base64 PNG that decodes), stage table, bars, worst-image crops, heat map."""

import base64
import io
import re

from PIL import Image

from drsedge.data import find_pairs
from drsedge.metrics.drift import Stage, evaluate_stages
from drsedge.metrics.report_html import write_html


def test_html_report_is_self_contained(tmp_path, data_dir):
    stages = [Stage("teacher", lambda x: x, "identity"), Stage("onnx_fp32", lambda x: x * 0.98, "scale"),
              Stage("onnx_int8", lambda x: (x * 0.98 * 16).round() / 16, "coarse", parent="onnx_fp32")]
    rep = evaluate_stages(stages, find_pairs(data_dir / "rain200H" / "test", 2), latency_hw=None, progress=False,
                          budgets={"onnx_int8": 0.01})
    path = write_html(rep, tmp_path, rep.worst_outputs)
    text = path.read_text()
    assert "<table>" in text and "onnx_int8" in text and "BROKEN" in text  # the coarse stage breaks a 0.01 dB budget
    assert "http" not in text.replace("http-equiv", "")  # nothing fetched from elsewhere
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", text)
    assert len(images) == 1 + (1 + 3 + 1) + 1  # bars, input + 3 stages + target, heat map
    for b64 in images:
        with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
            im.load()
            assert im.size[0] > 16 and im.size[1] > 16
    assert "|onnx_int8 − onnx_fp32|" in text
