"""The weights shipped in drsedge/weights load strictly, have a model card, and derain: on three rain200H/test pairs
each scores above its rainy input (a fast check; the headline numbers on rain100L are in the model cards)."""

import json

import pytest

from drsedge.data import find_pairs
from drsedge.data.images import read_image, read_uint8, to_tensor, to_uint8
from drsedge.metrics import psnr_y
from drsedge.models.checkpoint import load_model
from drsedge.runtime import TorchRunner, restore
from drsedge.weights import SHIPPED, shipped_path


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_weights_load_and_derain(name, data_dir):
    path = shipped_path(name)
    card = path.with_suffix(".md")
    assert card.is_file() and "rain100L" in card.read_text()
    assert path.stat().st_size <= 20 * 2**20
    model, cfg = load_model(path)  # load_checkpoint is strict: every key and shape must match the stored config
    assert json.loads(json.dumps(cfg.to_dict()))["mefc"] is False
    runner = TorchRunner(model, name)
    for pair in find_pairs(data_dir / "rain200H" / "test"):
        x = to_tensor(read_image(pair.rainy))
        gt = read_uint8(pair.clean)
        assert psnr_y(to_uint8(restore(runner, x)), gt) > psnr_y(to_uint8(x), gt), pair.name
