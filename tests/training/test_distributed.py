"""Device, precision and torchrun DDP on a CPU (gloo): 2 processes follow 1 process with the same global batch,
resume works across world sizes, bf16 autocast trains, bad placements are one line."""

import os
import subprocess
import sys

import pytest
import torch

from drsedge.cli import main
from drsedge.data import CropSampler, find_pairs, load_samples
from drsedge.errors import DrsedgeError
from drsedge.models import student_config
from drsedge.training import TrainConfig, train
from tests.conftest import one_error_line

pytestmark = pytest.mark.slow  # trains or quantizes (CPU-sized); deselect with -m 'not slow'

TINY = ["--preset", "student", "--model", "dim=8", "--model", "num_blocks=[1,1,1,1]", "--patch", "32", "--batch-size", "4",
        "--checkpoint-every", "2"]


def _run(args, nproc=1):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if nproc == 1:
        cmd = [sys.executable, "-m", "drsedge.cli", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "drsedge.cli", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def test_two_process_ddp_matches_one_process_and_resumes_across_world_sizes(tmp_path, data_dir):
    train_dir = str(data_dir / "rain200L" / "train")
    run = ["train-teacher", "--train", train_dir, "--skip-held-out-copies", "--steps", "6", *TINY]
    _run([*run, "-o", str(tmp_path / "one")])
    _run([*run, "-o", str(tmp_path / "two")], nproc=2)
    a, b = _weights(tmp_path / "one" / "model.safetensors"), _weights(tmp_path / "two" / "model.safetensors")
    # Same global batch, gradients averaged over 2 ranks of 2 rows = the mean over 4 rows: equal up to the
    # float32 reduction order of the all-reduce (Adam's normalised steps keep a 1e-9 gradient difference below lr * 1e-1).
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4
    # time-boxed runs resumed on the other world size end where the uninterrupted runs did
    _run([*run, "-o", str(tmp_path / "r12"), "--stop-after", "3"])
    _run([*run, "-o", str(tmp_path / "r12"), "--resume"], nproc=2)
    _run([*run, "-o", str(tmp_path / "r21"), "--stop-after", "3"], nproc=2)
    _run([*run, "-o", str(tmp_path / "r21"), "--resume"])
    for d in ("r12", "r21"):
        c = _weights(tmp_path / d / "model.safetensors")
        assert max(float((a[k] - c[k]).abs().max()) for k in a) < 1e-4, d


def test_bf16_autocast_trains_on_cpu(tmp_path, data_dir):
    torch.manual_seed(0)
    model = student_config(dim=8, num_blocks=[1, 1, 1, 1]).build()
    samples = load_samples(find_pairs(data_dir / "rain200L" / "train"))

    class Fixed(CropSampler):  # one fixed batch: the loss must go down
        def batch(self, step):
            return super().batch(0)

    res = train(model, Fixed(samples, 32, 4, 0), TrainConfig(steps=12, batch_size=4, patch=32, lr=2e-3, checkpoint_every=100), tmp_path,
                progress=False, precision="bf16")
    losses = res["losses"]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    assert next(model.parameters()).dtype == torch.float32 and next(model.parameters()).device.type == "cpu"


def test_topk_scores_stay_fp32_under_autocast():
    """The index-form top-k selects the same entries with and without bf16 autocast (scores computed in FP32)."""
    from drsedge.models.drsformer import Attention

    torch.manual_seed(0)
    attn = Attention(16, 2, False).train()
    x = torch.rand(1, 16, 16, 16)
    seen = []
    orig = Attention.probs

    def probs(self, scores):
        seen.append(scores.dtype)
        return orig(self, scores)

    Attention.probs = probs
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            attn(x)
    finally:
        Attention.probs = orig
    assert seen == [torch.float32]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU messages")
def test_bad_placements_are_one_line(tmp_path, data_dir, capsys):
    train_dir = str(data_dir / "rain200L" / "train")
    for extra, needle in ((["--device", "cuda"], "no CUDA GPU"), (["--precision", "fp16"], "needs a CUDA GPU")):
        code = main(["train-teacher", "--train", train_dir, "--skip-held-out-copies", "-o", str(tmp_path / "o"), "--steps", "1", *TINY, *extra])
        err = capsys.readouterr().err
        assert code == 2 and one_error_line(err, needle)
    assert not (tmp_path / "o" / "model.safetensors").exists()


def test_world_size_must_divide_the_batch():
    from drsedge.training.distributed import Placement, shard

    with pytest.raises(DrsedgeError, match="multiple of the world size 4"):
        shard((torch.zeros(6, 3, 8, 8),), Placement(torch.device("cpu"), "fp32", 0, 4))
    rows = shard((torch.arange(8)[:, None],), Placement(torch.device("cpu"), "fp32", 1, 2))[0]
    assert rows.flatten().tolist() == [1, 3, 5, 7]


def test_upstream_recipe_preset():
    from drsedge.cli import build_parser
    from drsedge.tools.args import model_config, train_cfg

    a = build_parser().parse_args(["train-teacher", "--preset", "drsformer-upstream", "--train", "x", "-o", "y"])
    c = train_cfg(a)
    assert (c.steps, c.batch_size, c.patch, c.lr, c.seed, c.grad_clip) == (300_000, 32, 128, 3e-4, 100, 0.01)
    assert [round(f * c.steps) for f in c.restart_fractions] == [92_000, 208_000] and c.eta_mins == [3e-4, 1e-6]
    assert model_config(a.preset, a.model).mefc is True
    b = build_parser().parse_args(["train-teacher", "--preset", "drsformer-upstream", "--train", "x", "-o", "y", "--batch-size", "16"])
    assert train_cfg(b).batch_size == 16  # flags override the recipe
    d = build_parser().parse_args(["train-teacher", "--train", "x", "-o", "y"])
    assert (train_cfg(d).steps, train_cfg(d).batch_size, train_cfg(d).grad_clip) == (1000, 4, 0.0)
