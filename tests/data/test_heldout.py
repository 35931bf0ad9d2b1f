"""The held-out guard's lists cover the whole Rain100L test set, and its near-copy stage catches lossy copies
(issue 35: lists for pairs 51-100; issue 37: JPEG, rescaled and cropped copies)."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from drsedge.cli import main
from drsedge.data.folders import find_pairs
from drsedge.data.heldout import guard_not_held_out, held_out_hashes, held_out_pixels, leave_out_copies
from drsedge.data.images import read_uint8
from drsedge.data.near_copy import _index, near_copy
from drsedge.errors import DrsedgeError
from drsedge.fileio import sha256
from tests.conftest import one_error_line


def test_lists_cover_every_file_of_the_held_out_folder(data_dir):
    """Every file under ../shared/data/rain100L is in the byte list, the pixel list and the near-copy index, so the
    lists cannot fall behind the data again (they listed pairs 1-50 while the folder held 100)."""
    files = sorted((data_dir / "rain100L").rglob("*.png"))
    assert len(files) == 200
    names = set(_index()[0])
    for f in files:
        a = read_uint8(f)
        assert sha256(f) in held_out_hashes(), f
        assert (a.shape[0], a.shape[1], hashlib.sha256(a.tobytes()).hexdigest()) in held_out_pixels(), f
        assert f"{f.parent.name}/{f.name}" in names, f


def _lossy(im: Image.Image, kind: str) -> Image.Image:
    w, h = im.size
    if kind == "jpeg70":
        b = io.BytesIO()
        im.save(b, "JPEG", quality=70)
        return Image.open(io.BytesIO(b.getvalue()))
    if kind == "rescale":
        return im.resize((round(w * 1.1), round(h * 1.1)), Image.Resampling.BICUBIC)
    return im.crop((round(w * 0.025), round(h * 0.025), w - round(w * 0.025), h - round(h * 0.025)))  # 5 % crop


@pytest.mark.parametrize("kind", ["jpeg70", "rescale", "crop"])
def test_lossy_copy_of_a_test_pair_is_refused_for_training(tmp_path, data_dir, capsys, kind):
    """A Rain100L pair from the second half (pair 75, absent from the old lists) re-saved lossily trains nothing: the
    JPEG q100 copies of issue 37 trained a teacher with exit 0."""
    for sub in ("input", "target"):
        (tmp_path / "mine" / sub).mkdir(parents=True)
        with Image.open(data_dir / "rain100L" / sub / "75.png") as im:
            _lossy(im.convert("RGB"), kind).save(tmp_path / "mine" / sub / "a.png")
    code = main(["train-teacher", "--train", str(tmp_path / "mine"), "--out", str(tmp_path / "t"), "--steps", "1"])
    assert code == 2
    one_error_line(capsys.readouterr().err, "a.png", "near-copy of Rain100L test image", "75.png", "--skip-held-out-copies")
    assert not (tmp_path / "t").exists()


def test_unrelated_photos_pass_and_copies_are_left_out_on_request(tmp_path, data_dir, capsys):
    """Clean photos pass; with --skip-held-out-copies a copied pair is left out (one line) and the rest is used."""
    guard_not_held_out([data_dir / "clean" / "kodak24", data_dir / "real"], "training")
    for sub in ("input", "target"):
        (tmp_path / "mix" / sub).mkdir(parents=True)
        with Image.open(data_dir / "rain100L" / sub / "3.png") as im:
            _lossy(im.convert("RGB"), "jpeg70").save(tmp_path / "mix" / sub / "1.jpg")
        with Image.open(data_dir / "rain200H" / "train" / sub / "2.png") as im:
            im.save(tmp_path / "mix" / sub / "2.png")
    with pytest.raises(DrsedgeError, match="near-copy"):
        guard_not_held_out([tmp_path / "mix"], "calibration")
    with leave_out_copies():
        guard_not_held_out([tmp_path / "mix"], "calibration")
        assert [p.name for p in find_pairs(tmp_path / "mix")] == ["2"]
    assert "left out" in capsys.readouterr().err
    assert [p.name for p in find_pairs(tmp_path / "mix")] == ["1", "2"]  # outside the context nothing is skipped


def test_public_training_sets_hold_rain100l_pair_1(data_dir):
    """A measured fact of ../shared/data: rain200L/train pair 1 and rain200H/train target 1 are Rain100L test pair 1,
    one pixel larger (PReNet's 481x321 layout). The guard finds them; the shipped configs leave them out."""
    a = np.asarray(Image.open(data_dir / "rain200L" / "train" / "target" / "1.png").convert("RGB"))
    b = np.asarray(Image.open(data_dir / "rain100L" / "target" / "1.png").convert("RGB"))
    assert a.shape == (321, 481, 3) and np.array_equal(a[:320, :480], b)
    for f in ("rain200L/train/input/1.png", "rain200L/train/target/1.png", "rain200H/train/target/1.png"):
        hit = near_copy(data_dir / f)
        assert hit is not None and hit.name.endswith("/1.png"), f
    assert near_copy(data_dir / "rain200L" / "train" / "target" / "2.png") is None
