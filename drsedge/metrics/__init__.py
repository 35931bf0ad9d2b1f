"""PSNR-Y / SSIM-Y (MATLAB and BasicSR conventions) and folder evaluation."""

from .folder import FolderMetrics, evaluate_folders
from .psnr_ssim import CONVENTIONS, psnr_y, rgb_to_y, ssim_y

__all__ = ["CONVENTIONS", "FolderMetrics", "evaluate_folders", "psnr_y", "rgb_to_y", "ssim_y"]
