"""ONNX export (native or fused top-k attention) and ONNX Runtime parity checks."""

from .onnx_export import EXPORTERS, INPUT_NAME, OUTPUT_NAME, ParityResult, check_parity, export_onnx

__all__ = ["EXPORTERS", "INPUT_NAME", "OUTPUT_NAME", "ParityResult", "check_parity", "export_onnx"]
