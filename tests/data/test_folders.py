"""Paired/unlabeled folder discovery in the common layouts, and deterministic crops."""

import shutil

import pytest
import torch

from drsedge.data import CropSampler, find_pairs, find_unlabeled, load_samples
from drsedge.errors import DrsedgeError


def test_input_target_layout(data_dir):
    pairs = find_pairs(data_dir / "rain200H" / "train")
    assert [p.name for p in pairs][:4] == ["1", "2", "3", "4"] and len(pairs) == 13
    assert all(p.rainy.stem == p.clean.stem for p in pairs)
    assert len(find_pairs(data_dir / "rain100L", limit=5)) == 5


def test_rain_norain_layouts(tmp_path, data_dir):
    src = data_dir / "rain200L" / "train"
    flat = tmp_path / "flat"
    flat.mkdir()
    for n in ("1", "2"):
        shutil.copy(src / "input" / f"{n}.png", flat / f"rain-{n}.png")
        shutil.copy(src / "target" / f"{n}.png", flat / f"norain-{n}.png")
    assert [p.name for p in find_pairs(flat)] == ["1", "2"]
    dirs = tmp_path / "dirs"
    shutil.copytree(src / "input", dirs / "rain")
    shutil.copytree(src / "target", dirs / "norain")
    assert len(find_pairs(dirs)) == 2


def test_ddn_many_rainy_to_one_clean(tmp_path, data_dir):
    """DDN-Data: rainy_image/N_K pairs with ground_truth/N (14 renderings per clean image upstream)."""
    src = data_dir / "rain200H" / "train"
    root = tmp_path / "ddn"
    (root / "rainy_image").mkdir(parents=True)
    (root / "ground_truth").mkdir()
    for n in ("1", "2"):
        shutil.copy(src / "target" / f"{n}.png", root / "ground_truth" / f"{n}.png")
        for k in (1, 2, 14):
            shutil.copy(src / "input" / f"{n}.png", root / "rainy_image" / f"{n}_{k}.png")
    pairs = find_pairs(root)
    assert [p.name for p in pairs] == ["1_1", "1_2", "1_14", "2_1", "2_2", "2_14"]
    assert all(p.clean.stem == p.name.split("_")[0] for p in pairs)
    shutil.copy(src / "input" / "3.png", root / "rainy_image" / "3_1.png")
    with pytest.raises(DrsedgeError, match="no ground truth ground_truth/3"):
        find_pairs(root)


def test_raindrop_layouts_qian_and_rainds(tmp_path, data_dir):
    """Qian et al.'s Raindrop (data/N_rain + gt/N_clean) and RainDS (three rainy subsets + gt/norain-N), as
    UDR-S2Former's dataloader_udr.py reads them; built from the real raindrop pairs."""
    src = data_dir / "raindrop" / "paired"
    qian = tmp_path / "qian"
    (qian / "data").mkdir(parents=True)
    (qian / "gt").mkdir()
    for n in ("0", "1"):
        shutil.copy(src / "input" / f"{n}.png", qian / "data" / f"{n}_rain.png")
        shutil.copy(src / "target" / f"{n}.png", qian / "gt" / f"{n}_clean.png")
    pairs = find_pairs(qian)
    assert [(p.rainy.name, p.clean.name) for p in pairs] == [("0_rain.png", "0_clean.png"), ("1_rain.png", "1_clean.png")]
    rainds = tmp_path / "rainds" / "train"
    for sub in ("raindrop", "rainstreak", "rainstreak_raindrop", "gt"):
        (rainds / sub).mkdir(parents=True)
    shutil.copy(src / "target" / "2.png", rainds / "gt" / "norain-2.png")
    shutil.copy(src / "input" / "2.png", rainds / "raindrop" / "rd-2.png")
    shutil.copy(src / "input" / "2.png", rainds / "rainstreak" / "rain-2.png")
    shutil.copy(src / "input" / "2.png", rainds / "rainstreak_raindrop" / "rd-rain-2.png")
    pairs = find_pairs(rainds)
    assert [p.name for p in pairs] == ["raindrop-rd-2", "rainstreak-rain-2", "rainstreak_raindrop-rd-rain-2"]
    assert {p.clean.name for p in pairs} == {"norain-2.png"}
    shutil.copy(src / "input" / "3.png", rainds / "raindrop" / "rd-3.png")
    with pytest.raises(DrsedgeError, match="no ground truth gt/norain-3"):
        find_pairs(rainds)


def test_unpaired_and_empty(tmp_path, data_dir):
    root = tmp_path / "ds"
    shutil.copytree(data_dir / "rain200L" / "train", root)
    (root / "target" / "2.png").rename(root / "target" / "9.png")
    with pytest.raises(DrsedgeError, match="unpaired names"):
        find_pairs(root)
    (tmp_path / "empty" / "input").mkdir(parents=True)
    (tmp_path / "empty" / "target").mkdir()
    with pytest.raises(DrsedgeError, match="no images"):
        find_pairs(tmp_path / "empty")
    with pytest.raises(DrsedgeError, match="no paired layout"):
        find_pairs(tmp_path)


def test_crops_are_deterministic_per_step(data_dir):
    samples = load_samples(find_pairs(data_dir / "rain200L" / "train"), find_unlabeled(data_dir / "real")[:2])
    s = CropSampler(samples, patch=32, batch_size=6, seed=3)
    x1, y1, h1 = s.batch(5)
    x2, y2, h2 = s.batch(5)
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and torch.equal(h1, h2)
    assert x1.shape == (6, 3, 32, 32)
    assert not torch.equal(s.batch(6)[0], x1)
    with pytest.raises(DrsedgeError, match="patch size"):
        CropSampler(samples, patch=4096, batch_size=1)
