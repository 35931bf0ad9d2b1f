"""Calibration data for post-training INT8 quantization: crops of real rainy images."""

from .calib import CalibrationSet, calibration_set

__all__ = ["CalibrationSet", "calibration_set"]
