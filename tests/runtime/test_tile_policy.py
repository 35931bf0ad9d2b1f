"""One tiling policy: ``check`` (the torch-tensor runner), ``derain`` and ``stream`` feed a frame larger than a static
export to it identically (:func:`drsedge.runtime.limits.plan_tiles`). They used to differ: the runners tiled a static
192 export with a 48 px overlap, derain and stream with 32; a non-square static export was refused by derain and
stream."""

import numpy as np
import pytest
import torch

from drsedge.cli import main


class TileMean(torch.nn.Module):
    """Each output pixel mixes in the mean of the tile it was computed on: any difference in tiling shows."""

    def forward(self, x):
        return (0.7 * x + 0.3 * x.mean(dim=(2, 3), keepdim=True)).clamp(0, 1)


@pytest.mark.parametrize("hw", [(192, 192), (128, 192)])
def test_check_derain_and_stream_tile_a_static_export_alike(tmp_path, data_dir, hw):
    from PIL import Image

    from drsedge.data.images import read_image, read_uint8, to_tensor, to_uint8
    from drsedge.runtime.runners import OrtRunner
    from drsedge.runtime.tiling import restore

    onnx = tmp_path / "static.onnx"
    torch.onnx.export(TileMean(), torch.zeros(1, 3, *hw), onnx, input_names=["input"], output_names=["output"], opset_version=17,
                      dynamo=False)
    frames = tmp_path / "frames"
    frames.mkdir()
    Image.open(data_dir / "real" / "1.png").convert("RGB").crop((0, 0, 480, 320)).save(frames / "000.png")
    x = to_tensor(read_image(frames / "000.png"))

    check = to_uint8(restore(OrtRunner(onnx), x))  # the drift report's path
    assert main(["derain", str(onnx), str(frames / "000.png"), "-o", str(tmp_path / "d.png")]) == 0
    assert main(["stream", str(frames), "-o", str(tmp_path / "s"), "--model", str(onnx), "--quiet"]) == 0
    derain, stream = read_uint8(tmp_path / "d.png"), read_uint8(tmp_path / "s" / "000000.png")
    assert check.shape == derain.shape == stream.shape == (320, 480, 3)
    np.testing.assert_array_equal(derain, check)
    np.testing.assert_array_equal(stream, check)
    whole = to_uint8(TileMean()(x))  # and the tiling is real: the tile means differ from the frame's
    assert np.abs(check.astype(int) - whole.astype(int)).max() > 2
