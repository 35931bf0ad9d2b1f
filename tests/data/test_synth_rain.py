"""synth-rain: deterministic per seed, shapes/dtypes kept, target byte-identical, rain grows with the preset, bad input refused."""

import shutil

import numpy as np
import pytest
from PIL import Image

from drsedge.cli import main
from drsedge.data import find_pairs
from drsedge.data.images import read_image
from drsedge.data.synth_rain import PRESETS, render_rain, synth_rain
from drsedge.errors import DrsedgeError


@pytest.fixture
def clean(tmp_path, data_dir):
    d = tmp_path / "clean"
    d.mkdir()
    shutil.copy(data_dir / "clean" / "kodak24" / "kodim05.png", d)
    shutil.copy(data_dir / "clean" / "mcmaster" / "3.tif", d)  # TIFF (PackBits)
    Image.open(d / "kodim05.png").convert("L").save(d / "gray.png")
    return d


def test_pairs_deterministic_shapes_kept_targets_identical(clean, tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    synth_rain([clean], a, preset="light", per_image=2, seed=3)
    synth_rain([clean], b, preset="light", per_image=2, seed=3)
    synth_rain([clean], c, preset="light", per_image=2, seed=4)
    pairs = find_pairs(a)
    assert len(pairs) == 6
    for p in pairs:
        src = clean / (p.clean.name.split("-", 1)[1].rsplit("-", 1)[0] + p.clean.suffix)
        assert p.clean.read_bytes() == src.read_bytes()  # target: the clean file's bytes
        with Image.open(p.rainy) as r, Image.open(src) as s:
            assert r.size == s.size and (r.mode == "L") == (s.mode == "L") and r.mode in ("L", "RGB")
        assert (b / "input" / p.rainy.name).read_bytes() == p.rainy.read_bytes()  # same seed, same bytes
        assert (c / "input" / p.rainy.name).read_bytes() != p.rainy.read_bytes()  # another seed, other rain
        assert np.abs(read_image(p.rainy) - read_image(src)).mean() > 0.003  # rain was added


def test_rain_grows_with_the_preset(data_dir):
    img = read_image(data_dir / "clean" / "kodak24" / "kodim05.png")
    amount = {}
    for preset in PRESETS:
        diffs = [np.abs(render_rain(img, np.random.default_rng(s), preset)[0] - img).mean() for s in range(3)]
        amount[preset] = float(np.mean(diffs))
    assert amount["light"] < amount["medium"] < amount["heavy"]
    # the light preset is in the range of real Rain200L training pairs (mean residual 0.02)
    assert 0.008 < amount["light"] < 0.04


def test_refusals(clean, tmp_path, data_dir, capsys):
    with pytest.raises(DrsedgeError, match="held-out"):
        synth_rain([data_dir / "rain100L" / "target"], tmp_path / "x")
    copy = tmp_path / "copied"
    copy.mkdir()
    shutil.copy(data_dir / "rain100L" / "target" / "3.png", copy / "photo.png")
    with pytest.raises(DrsedgeError, match="held-out"):
        synth_rain([copy], tmp_path / "y")
    assert main(["synth-rain", str(clean), "-o", str(clean)]) == 2
    assert "inside the clean input folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["synth-rain", str(clean), "-o", str(tmp_path / "z"), "--preset", "storm"])
    assert e.value.code == 2
    assert "storm" in capsys.readouterr().err
    (clean / "tiny.png").write_bytes(b"")
    Image.new("RGB", (4, 4)).save(clean / "tiny.png")
    assert main(["synth-rain", str(clean), "-o", str(tmp_path / "t")]) == 2
    assert "tiny.png" in capsys.readouterr().err
    (clean / "tiny.png").write_bytes(b"\x89PNG broken")
    assert main(["synth-rain", str(clean), "-o", str(tmp_path / "u")]) == 2
    assert "cannot decode" in capsys.readouterr().err
    for name in "xyztu":
        assert not (tmp_path / name).exists(), name


def test_raindrops_refract_and_are_defocused(data_dir, tmp_path):
    """Drops cover part of the frame, replace it by a blurred, brightened, displaced view (not a blur of the same
    pixels), and leave the rest untouched; the same seed gives the same drops. The wet glass's veil (default preset)
    lifts the frame and lowers its contrast everywhere."""
    import dataclasses

    from scipy.ndimage import gaussian_filter

    from drsedge.data.synth_rain import DROPS, render_drops

    img = read_image(data_dir / "clean" / "kodak24" / "kodim05.png")
    no_veil = dataclasses.replace(DROPS, veil=(0.0, 0.0))
    out, p = render_drops(img, np.random.default_rng(0), no_veil)
    again, _ = render_drops(img, np.random.default_rng(0), no_veil)
    assert np.array_equal(out, again) and out.shape == img.shape and out.dtype == np.float32
    diff = np.abs(out - img).max(-1)
    changed = diff > 0.02
    assert 0.05 < changed.mean() < 0.6 and 0.03 < p["covered"] < 0.5
    assert np.mean(diff[~changed]) < 0.005  # between the drops the scene is kept
    # inside the drops: not the local blur of the same pixels (refraction moved the view), and flatter than the scene
    blurred = np.stack([gaussian_filter(img[..., c], p["defocus_px"]) for c in range(3)], -1)
    core = diff > 0.1
    assert np.abs(out - blurred).max(-1)[core].mean() > 0.05
    assert out[core].std() < img[core].std()
    assert abs(float(out.mean() - img.mean())) < 0.02  # no global brightness change: drops refract, they do not glow
    # the default preset draws the same drops, then the veil: brighter and flatter between the drops too
    veiled, vp = render_drops(img, np.random.default_rng(0))
    assert 0.02 <= vp["veil"] <= 0.2 and vp["drops"] == p["drops"]
    between = ~changed
    assert veiled[between].mean() > img[between].mean() + 0.005 and veiled[between].std() < img[between].std()
    assert np.abs(veiled - img).max(-1)[between].mean() > 0.01
    # the mix puts drops in front of streaks; both presets go through synth-rain's folders and CLI
    mixed, mp = render_rain(img, np.random.default_rng(0), "rain+drop")
    assert mp["preset"] == "rain+drop" and mp["streaks"]["layers"] and np.abs(mixed - img).mean() > np.abs(out - img).mean() * 0.5
    assert main(["synth-rain", str(data_dir / "clean" / "kodak24"), "-o", str(tmp_path / "d"), "--preset", "raindrop",
                 "--limit", "2"]) == 0
    assert len(find_pairs(tmp_path / "d")) == 2


def test_a_large_photo_renders_drops_in_bounded_work(data_dir):
    """A 36 MP frame (6000x6000, under the 64 MP limit) renders raindrops with the drop layers at a 1024 px shorter
    side: it ran over 10 minutes before (blurs scaled with the side). The scene outside the drops keeps its full
    resolution, and a frame at the limit side renders exactly as before (no scaling)."""
    from drsedge.data.synth_rain import DROP_WORK_SIDE

    kodim = read_image(data_dir / "clean" / "kodak24" / "kodim05.png")
    big = np.tile(kodim, (12, 12, 1))[:6000, :6000]
    out, params = render_rain(big, np.random.default_rng(0), "raindrop")
    assert out.shape == big.shape and out.dtype == np.float32 and np.isfinite(out).all()
    assert params["rendered_at"] == [DROP_WORK_SIDE, DROP_WORK_SIDE]
    assert float(np.abs(out - big).mean()) > 0.005  # drops and glare were drawn
    small, p_small = render_rain(kodim, np.random.default_rng(0), "raindrop")
    assert "rendered_at" not in p_small and small.shape == kodim.shape


def test_a_pair_is_written_whole_or_not_at_all(clean, tmp_path, monkeypatch, capsys):
    """A full disk while the rainy PNG is written removes the target just copied: no input without its target and
    no target without its input (issue 37: a full disk left an input without its target)."""
    import errno

    from PIL import Image as PILImage

    real_save = PILImage.Image.save
    calls = {"n": 0}

    def save(self, fp, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, fp, *a, **k)

    monkeypatch.setattr(PILImage.Image, "save", save)
    code = main(["synth-rain", str(clean), "-o", str(tmp_path / "out"), "--seed", "1"])
    assert code == 2 and "disk is full" in capsys.readouterr().err
    ins = sorted(p.stem for p in (tmp_path / "out" / "input").iterdir())
    tgts = sorted(p.stem for p in (tmp_path / "out" / "target").iterdir())
    assert ins == tgts and len(ins) == 1  # the first pair whole, the second neither
