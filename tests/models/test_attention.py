"""Top-k attention forms: threshold == upstream index form away from ties; the documented tie difference; ASSA."""

import pytest
import torch

from drsedge.models import ModelConfig, assa_probs, student_config, topk_sizes, topk_sparse_probs


def test_topk_sizes_follow_upstream_expressions():
    assert topk_sizes(48) == (24, 32, 36, 38)
    assert topk_sizes(96) == (48, 64, 72, 76)
    assert topk_sizes(8) == (4, 5, 6, 6)
    with pytest.raises(ValueError, match="at least 2 channels"):
        topk_sizes(1)


@pytest.mark.parametrize("c", [8, 16, 48, 96])
def test_threshold_equals_index_without_ties(c):
    g = torch.Generator().manual_seed(c)
    scores = torch.randn(2, 3, c, c, generator=g, dtype=torch.float64)  # float64: no ties in practice
    w = torch.tensor([0.3, 0.1, 0.4, 0.2], dtype=torch.float64)
    a = topk_sparse_probs(scores, w, topk_sizes(c), "index")
    b = topk_sparse_probs(scores, w, topk_sizes(c), "threshold")
    torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    torch.testing.assert_close(a.sum(-1), torch.full_like(a.sum(-1), 1.0))


def test_threshold_keeps_all_tied_entries():
    # Row with a tie at the k-th/(k+1)-th value: index keeps exactly k, threshold keeps both tied entries.
    scores = torch.tensor([[[[3.0, 2.0, 2.0, 1.0]]]])
    w = torch.tensor([1.0])
    idx = topk_sparse_probs(scores, w, (2,), "index")
    thr = topk_sparse_probs(scores, w, (2,), "threshold")
    assert int((idx > 0).sum()) == 2
    assert int((thr > 0).sum()) == 3


def test_bad_ks_and_mode():
    s = torch.randn(1, 1, 8, 8)
    with pytest.raises(ValueError, match="ascending"):
        topk_sparse_probs(s, torch.ones(2), (5, 4))
    with pytest.raises(ValueError, match="within"):
        topk_sparse_probs(s, torch.ones(1), (9,))
    with pytest.raises(ValueError, match="unknown top-k mode 'scatter'"):
        topk_sparse_probs(s, torch.ones(1), (4,), "scatter")


def test_assa_is_softmax_plus_squared_relu():
    s = torch.randn(1, 2, 8, 8)
    p = assa_probs(s, torch.tensor([0.0, 0.0]))
    torch.testing.assert_close(p, 0.5 * s.softmax(-1) + 0.5 * torch.relu(s) ** 2)


@pytest.mark.parametrize("attention", ["topk", "assa", "dense"])
def test_student_kinds_run_and_train(attention):
    model = student_config(dim=8, num_blocks=[1, 1, 1, 1], attention=attention).build()
    x = torch.rand(2, 3, 32, 40)
    y = model(x)
    assert y.shape == x.shape
    y.mean().backward()
    assert model.patch_embed.proj.weight.grad is not None


def test_bad_head_split_is_a_clear_error():
    from drsedge.errors import DrsedgeError

    with pytest.raises(DrsedgeError, match="heads"):
        ModelConfig.from_dict({"dim": 6, "heads": [4, 2, 4, 8]})
