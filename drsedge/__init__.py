"""drsedge: DRSformer deraining from teacher to INT8 / TensorRT, with the accuracy drift of every step in dB.

Subpackages, one per stage: ``models`` (DRSformer teacher and students),
``data`` (images, folders, crops), ``metrics`` (PSNR-Y/SSIM-Y, drift report),
``compress`` (training, distillation, INT8), ``calibration`` (calibration
sets), ``export`` (ONNX), ``runtime`` (padding/tiling, ORT/PyTorch runners).
"""

__version__ = "0.1.0"
