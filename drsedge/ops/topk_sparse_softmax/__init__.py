"""``drsedge::TopKSparseSoftmax``: the fused top-k sparse attention op (DRSformer TKSA, paper Sec. 3.2).

* :mod:`.op` - the PyTorch op, its TorchScript/ONNX symbolic, ONNX schema and model-local function;
* :mod:`.ort_kernel` - the onnxruntime-extensions Python kernel (checks the node without the function);
* :mod:`.cuda_harness` - builds and calls the CUDA kernel of ``native/topk_sparse_softmax`` through ctypes.
"""

from .op import OP_DOMAIN, OP_TYPE, topk_sparse_softmax, topk_sparse_softmax_op

__all__ = ["OP_DOMAIN", "OP_TYPE", "topk_sparse_softmax", "topk_sparse_softmax_op"]
