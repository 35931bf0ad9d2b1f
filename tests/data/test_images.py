"""Image decode: gray, RGBA, 16-bit, JPEG accepted; corrupt/truncated/tiny rejected with the file named."""

import numpy as np
import pytest
from PIL import Image

from drsedge.data import read_image, read_uint8
from drsedge.errors import DrsedgeError


def test_real_gray_png_becomes_rgb(data_dir):
    img = read_image(data_dir / "real" / "7.png")  # PNG mode L (SOURCES.md)
    assert img.shape == (321, 481, 3) and img.dtype == np.float32
    assert np.array_equal(img[..., 0], img[..., 2])


def test_8bit_png_is_bit_exact(data_dir):
    path = data_dir / "rain200H" / "test" / "input" / "1.png"
    assert np.array_equal(read_uint8(path), np.asarray(Image.open(path).convert("RGB")))


def test_rgba_16bit_and_jpeg(tmp_path):
    rgb = (np.arange(16 * 12 * 3) % 256).astype(np.uint8).reshape(12, 16, 3)
    Image.fromarray(np.dstack([rgb, np.full((12, 16), 7, np.uint8)])).save(tmp_path / "a.png")
    assert np.array_equal(read_uint8(tmp_path / "a.png"), rgb)
    gray16 = (np.arange(12 * 16, dtype=np.uint16) * 300).reshape(12, 16)
    Image.fromarray(gray16).save(tmp_path / "g16.png")
    img = read_image(tmp_path / "g16.png")
    np.testing.assert_allclose(img[..., 1], gray16 / 65535.0, atol=1e-6)
    Image.fromarray(rgb).save(tmp_path / "c.jpg", quality=95)
    assert np.abs(read_uint8(tmp_path / "c.jpg").astype(int) - rgb).mean() < 20


def test_corrupt_truncated_and_tiny(tmp_path, data_dir):
    (tmp_path / "x.png").write_bytes(b"not an image")
    with pytest.raises(DrsedgeError, match=r"x\.png: cannot decode"):
        read_image(tmp_path / "x.png")
    raw = (data_dir / "rain200H" / "test" / "input" / "1.png").read_bytes()
    (tmp_path / "t.png").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DrsedgeError, match=r"t\.png"):
        read_image(tmp_path / "t.png")
    Image.fromarray(np.zeros((6, 20, 3), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(DrsedgeError, match="smaller than 8 px"):
        read_image(tmp_path / "small.png")
