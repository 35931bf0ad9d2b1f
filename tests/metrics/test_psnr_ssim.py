"""PSNR-Y/SSIM-Y reproduce DRSformer's published numbers on its own published outputs."""

import numpy as np
import pytest

from drsedge.metrics import evaluate_folders, psnr_y, rgb_to_y, ssim_y

# (set, convention) -> (PSNR dB, SSIM); MATLAB numbers are the paper's protocol.
PUBLISHED = {
    ("rain200H", "matlab"): (33.86, 0.9338),
    ("rain200L", "matlab"): (41.95, 0.9891),
    ("rain200H", "basicsr"): (33.90, 0.9347),
    ("rain200L", "basicsr"): (42.02, 0.9894),
}


@pytest.mark.parametrize("key", list(PUBLISHED))
def test_reproduces_published(data_dir, key):
    subset, conv = key
    root = data_dir / "drsformer_outputs" / subset
    m = evaluate_folders(root / "drsformer", root / "target", conv)
    psnr, ssim = PUBLISHED[key]
    assert abs(m.psnr - psnr) <= 0.01
    assert abs(m.ssim - ssim) <= 0.0005


def test_y_channel_conventions():
    img = np.array([[[255, 0, 0], [0, 255, 0]]], dtype=np.uint8)
    y = rgb_to_y(img, "basicsr")
    np.testing.assert_allclose(y[0], [16 + 65.481, 16 + 128.553])
    np.testing.assert_array_equal(rgb_to_y(img, "matlab")[0], [81.0, 145.0])


def test_identical_and_known_mse():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert psnr_y(a, a) == float("inf") and ssim_y(a, a) == pytest.approx(1.0)
    gray = np.full((16, 16, 3), 100, np.uint8)
    other = gray.copy()
    other[..., :] = 110  # matlab Y: round(16 + 100*219/255) = 102, round(16 + 110*219/255) = 110 -> diff 8
    assert psnr_y(gray, other) == pytest.approx(10 * np.log10(255**2 / 64))
    assert psnr_y(gray, other, "basicsr") == pytest.approx(10 * np.log10(255**2 / (10 * 219 / 255) ** 2))


def test_udr_convention_swaps_r_and_b_as_upstream(data_dir):
    """UDR-S2Former's test.py feeds RGB to a BGR Y formula: on the 4 real Qian raindrop pairs this moves the rainy
    input's PSNR by -0.05 to -0.40 dB against the standard (BasicSR float) Y (../shared/notes/udr-s2former.md §2)."""
    import numpy as np

    from drsedge.data.images import read_uint8
    from drsedge.metrics.psnr_ssim import psnr_y, rgb_to_y

    img = np.array([[[200, 10, 30]]], dtype=np.uint8)
    assert rgb_to_y(img, "udr")[0, 0] == rgb_to_y(img[..., ::-1].copy(), "basicsr")[0, 0] != rgb_to_y(img, "basicsr")[0, 0]
    d = data_dir / "raindrop" / "paired"
    for name in ("0.png", "1.png", "2.png", "3.png"):
        a, b = read_uint8(d / "input" / name), read_uint8(d / "target" / name)
        delta = psnr_y(a, b, "udr") - psnr_y(a, b, "basicsr")
        assert -0.45 < delta < -0.04, (name, delta)
