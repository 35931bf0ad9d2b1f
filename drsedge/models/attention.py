"""Channel-wise attention probabilities used by DRSformer-family blocks.

DRSformer's TKSA (Top-K Sparse Attention; paper Sec. 3.2, upstream
``basicsr/models/archs/DRSformer_arch.py::Attention``) builds, per head, a C x C
score matrix ``S = normalize(q) @ normalize(k)^T * temperature`` over *channels*
(C = channels per head), keeps the top-k scores of every row for four k values
``k_i = int(C/2), int(C*2/3), int(C*3/4), int(C*4/5)``, softmaxes each masked
matrix and mixes the four results with learnable scalars ``w_i``.

Because ``sum_i w_i * (P_i @ V) == (sum_i w_i * P_i) @ V`` this module only
returns the combined probability matrix ``P = sum_i w_i P_i``; the caller does a
single matmul with V.

Two equivalent forms of the top-k mask are provided:

* ``"index"``: upstream semantics, ``torch.topk`` indices scattered into a 0/1
  mask. Exactly k entries per row are kept, ties broken by topk's index order.
* ``"threshold"``: one ``TopK`` at the largest k, the k-th value of each row as
  a threshold (``S >= kth``), ``Where(-inf)`` and ``Softmax``. No
  ScatterElements, so it exports to plain ONNX / TensorRT ops.

The two differ only when the k-th and (k+1)-th largest scores of a row are
exactly equal: the threshold form then keeps every tied entry (more than k).
With real-valued scores this needs bit-identical floats; the parity fixtures'
smallest boundary gap is 1.4e-5, far above fp32 noise.
"""

from __future__ import annotations

import torch

TOPK_MODES = ("index", "threshold")


def topk_sizes(c: int) -> tuple[int, int, int, int]:
    """The four top-k sizes DRSformer uses for a C x C score matrix.

    Exactly upstream's Python expressions ``int(C/2), int(C*2/3), int(C*3/4),
    int(C*4/5)`` (24, 32, 36, 38 for C = 48; 4, 5, 6, 6 for C = 8).

    Raises:
        ValueError: if ``c < 2`` (a k of 0 would keep nothing).
    """
    if c < 2:
        raise ValueError(f"top-k attention needs at least 2 channels per head, got C={c}")
    return int(c / 2), int(c * 2 / 3), int(c * 3 / 4), int(c * 4 / 5)


def _masked_softmax_index(scores: torch.Tensor, k: int) -> torch.Tensor:
    index = torch.topk(scores, k=k, dim=-1, largest=True)[1]
    mask = torch.zeros_like(scores).scatter_(-1, index, 1.0)
    return torch.where(mask > 0, scores, torch.full_like(scores, float("-inf"))).softmax(dim=-1)


def topk_sparse_probs(
    scores: torch.Tensor,
    weights: torch.Tensor,
    ks: tuple[int, ...],
    mode: str = "threshold",
) -> torch.Tensor:
    """Combined TKSA probabilities ``sum_i w_i * softmax(mask_{k_i}(S))``.

    Args:
        scores: ``[B, H, C, C]`` float attention logits (already scaled by the
            temperature).
        weights: ``[len(ks)]`` float mixing weights (upstream ``attn1..attn4``).
        ks: ascending top-k sizes, each in ``[1, C]``.
        mode: ``"index"`` (upstream topk + scatter) or ``"threshold"``
            (k-th value threshold; see module docstring for the tie caveat).

    Returns:
        ``[B, H, C, C]`` tensor, same dtype as ``scores``; rows sum to
        ``sum(weights)``.

    Raises:
        ValueError: on an unknown mode or ks that are not ascending / exceed C.
    """
    c = scores.shape[-1]
    if list(ks) != sorted(ks) or not ks or ks[0] < 1 or ks[-1] > c:
        raise ValueError(f"ks must be ascending and within [1, {c}], got {tuple(ks)}")
    if mode == "index":
        probs = [_masked_softmax_index(scores, k) for k in ks]
    elif mode == "threshold":  # all ks at once on a new axis n (the fused op's ONNX function body): no per-k Slice
        top = torch.topk(scores, k=ks[-1], dim=-1, largest=True, sorted=True)[0]
        thr = top.index_select(-1, torch.tensor([k - 1 for k in ks], device=scores.device))  # [B, H, C, n]
        s5 = scores.unsqueeze(-2)  # [B, H, C, 1, C]
        neg_inf = scores.new_full((), float("-inf"))  # a scalar: no ConstantOfShape/Expand in the ONNX graph
        p = torch.where(s5 >= thr.unsqueeze(-1), s5, neg_inf).softmax(dim=-1)  # [B, H, C, n, C]
        return (p * weights.to(p.dtype)[:, None]).sum(-2)
    else:
        raise ValueError(f"unknown top-k mode {mode!r}; expected one of {TOPK_MODES}")
    out = probs[0] * weights[0]
    for w, p in zip(weights[1:], probs[1:]):
        out = out + p * w
    return out


def assa_probs(scores: torch.Tensor, pair_logits: torch.Tensor) -> torch.Tensor:
    """AST's adaptive sparse self-attention (ASSA) mixing, channel-wise.

    ``P = a_1 * softmax(S) + a_2 * relu(S)^2`` with ``(a_1, a_2) =
    softmax(pair_logits)`` (AST, CVPR 2024, Sec. 3.2, Eq. 4-6: dense softmax
    branch plus squared-ReLU sparse branch).

    Args:
        scores: ``[B, H, C, C]`` float logits.
        pair_logits: ``[2]`` learnable logits of the two branch weights.

    Returns:
        ``[B, H, C, C]`` probabilities (rows of the ReLU branch are not
        normalised, as in AST).
    """
    a = torch.softmax(pair_logits, dim=0)
    return scores.softmax(dim=-1) * a[0] + torch.relu(scores).square() * a[1]
