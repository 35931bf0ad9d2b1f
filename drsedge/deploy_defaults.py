"""Deployment defaults written once: the ONNX opset of an export and the camera frame a deployment plans for.

No imports, so the light modules (run config, CLI) and the heavy ones (export, quantize, TensorRT) share them.
"""

OPSET = 17  # DRSformer exports need 17 (LayerNormalization, ONNX opset 17); static families go down to OPSET_MIN_STATIC
OPSET_MIN_STATIC = 16  # UDR-S2Former / AST for TensorRT 8.5: LayerNorm decomposed (../shared/notes/tensorrt.md)
FRAME_HW = (720, 1280)  # the deployment frame (H, W) in px: FP16 range projection, a dynamic profile's max shape
FRAME_TEXT = f"{FRAME_HW[0]}x{FRAME_HW[1]}"
