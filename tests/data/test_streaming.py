"""Streaming training data: the same batches as the in-memory sampler for 0, 1 and 2 DataLoader workers; a broken
file in the set stops the run before step 0 in one line."""

import shutil

import pytest
import torch

from drsedge.cli import main
from drsedge.data import CropSampler, find_pairs, find_unlabeled, load_samples
from drsedge.data.streaming import StepDataset, batches, scan_headers
from drsedge.errors import DrsedgeError


def test_batches_equal_in_memory_sampler_for_any_worker_count(data_dir):
    pairs = find_pairs(data_dir / "rain200L" / "train") + find_pairs(data_dir / "rain200H" / "train")[:2]
    unl = find_unlabeled(data_dir / "real")[:2]
    ref = CropSampler(load_samples(pairs, unl), 32, 3, seed=5)
    ds = StepDataset(scan_headers(pairs, unl), 32, 3, seed=5, steps=6)
    want = [ref.batch(s) for s in range(2, 6)]
    for workers in (0, 1, 2):
        got = list(batches(ds, 2, 6, workers))
        assert len(got) == 4
        for (x, y, h), (x2, y2, h2) in zip(want, got):
            assert torch.equal(x, x2) and torch.equal(y, y2) and torch.equal(h, h2), workers


def test_broken_file_stops_before_step_zero(tmp_path, data_dir, capsys):
    d = tmp_path / "big"
    shutil.copytree(data_dir / "rain200L" / "train", d)
    (d / "input" / "2.png").write_bytes(b"not a png")
    with pytest.raises(DrsedgeError, match="2.png"):
        scan_headers(find_pairs(d))
    code = main(["train-teacher", "--preset", "student", "--model", "dim=8", "--model", "num_blocks=[1,1,1,1]", "--train", str(d),
                 "--skip-held-out-copies", "-o", str(tmp_path / "o"), "--steps", "2", "--patch", "32", "--stream-data", "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "2.png" in err and "header" in err and not (tmp_path / "o" / "train_state.pt").exists()


def test_train_cli_with_streamed_data(tmp_path, data_dir):
    code = main(["train-teacher", "--preset", "student", "--model", "dim=8", "--model", "num_blocks=[1,1,1,1]", "--train",
                 str(data_dir / "rain200L" / "train"), "--skip-held-out-copies", "-o", str(tmp_path / "o"), "--steps", "2", "--patch", "32", "--batch-size", "2",
                 "--stream-data", "--workers", "1"])
    assert code == 0 and (tmp_path / "o" / "model.safetensors").is_file()
