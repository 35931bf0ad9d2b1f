"""CUDA kernel: compiles with the machine's nvcc (CI has no GPU); on a GPU, matches the PyTorch reference
on random and adversarial inputs (ties, -inf, large magnitudes, C = 48 / 96 / odd)."""

import shutil

import pytest
import torch

from drsedge.models import topk_sizes
from drsedge.ops.topk_sparse_softmax.cuda_harness import KernelLib, build_kernel
from drsedge.ops.topk_sparse_softmax.op import topk_sparse_softmax

pytestmark = pytest.mark.slow  # compiles the CUDA kernel with nvcc; deselect with -m 'not slow'

needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


@pytest.fixture(scope="module")
def kernel_path(tmp_path_factory):
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc not on PATH")
    archs = ("90",) if not torch.cuda.is_available() else (f"{torch.cuda.get_device_capability()[0]}{torch.cuda.get_device_capability()[1]}",)
    return build_kernel(tmp_path_factory.mktemp("kernel"), archs=archs)


@needs_nvcc
def test_kernel_compiles_and_exports_the_c_api(kernel_path):
    """The library exports the two C entry points the harness and the plugin call (dynamic symbol table)."""
    import subprocess

    syms = subprocess.run(["nm", "-D", "--defined-only", str(kernel_path)], capture_output=True, text=True, check=True).stdout
    names = {line.split()[-1] for line in syms.splitlines() if line.strip()}
    assert {"drsedge_topk_sparse_softmax", "drsedge_topk_sparse_softmax_last_error"} <= names


def test_native_dir_is_found_without_parents_index(monkeypatch, tmp_path):
    from drsedge.errors import DrsedgeError
    from drsedge.ops.topk_sparse_softmax.cuda_harness import native_dir

    assert (native_dir() / "src" / "topk_sparse_softmax.cu").is_file()
    monkeypatch.setenv("DRSEDGE_NATIVE_DIR", str(tmp_path))
    with pytest.raises(DrsedgeError, match="CMakeLists"):
        native_dir()


def _cases():
    g = torch.Generator().manual_seed(0)
    for c in (48, 96, 37, 128, 8):
        yield f"rand{c}", torch.randn(2, 4, c, c, generator=g)
    s = torch.randn(1, 2, 48, 48, generator=g).round()  # many exact ties
    yield "ties", s
    s = torch.randn(1, 1, 48, 48, generator=g)
    s[..., ::3] = float("-inf")  # -inf entries (not whole rows)
    yield "neg_inf", s
    yield "large", torch.randn(1, 2, 96, 96, generator=g) * 1e4


@needs_gpu
@pytest.mark.parametrize("name,scores", list(_cases()), ids=[n for n, _ in _cases()])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_kernel_matches_reference(kernel_path, name, scores, dtype):
    lib = KernelLib(kernel_path)
    ks = list(topk_sizes(scores.shape[-1]))
    w = torch.tensor([0.4, 0.3, 0.2, 0.1])
    s = scores.to(dtype)
    ref = topk_sparse_softmax(s, w.to(dtype), ks).float()
    got = lib(s.cuda(), w.to(dtype).cuda(), ks).float().cpu()
    tol = 1e-5 if dtype == torch.float32 else 2e-3
    torch.testing.assert_close(got, ref, atol=tol, rtol=0)


@needs_gpu
def test_kernel_refuses_bad_ks(kernel_path):
    lib = KernelLib(kernel_path)
    s = torch.randn(1, 1, 8, 8, device="cuda")
    with pytest.raises(ValueError, match="ascending"):
        lib(s, torch.ones(2, device="cuda"), [5, 4])
