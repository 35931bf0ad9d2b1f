"""Inference backends other than PyTorch and ONNX Runtime (see :mod:`drsedge.backend.trt`)."""
