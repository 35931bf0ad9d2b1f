"""Validation and logs of a training run (rank 0 only).

* validation: PSNR-Y / SSIM-Y (MATLAB protocol, :mod:`drsedge.metrics`) of the model on a paired folder, whole
  images with upstream ``test.py`` padding; the best PSNR so far is kept as ``best.safetensors`` by the caller.
  The held-out test set is refused as a validation folder, as for training.
* logs: ``train_log.jsonl`` (one JSON object per logged step: loss, lr, images/s, val PSNR/SSIM, GPU memory)
  and, when the ``tensorboard`` package is installed, the same scalars through ``torch.utils.tensorboard``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from drsedge.data.folders import Pair


class Monitor:
    def __init__(self, out_dir: Path, val: list[Pair] | None = None, val_every: int = 0, log_every: int = 10, enabled: bool = True):
        self.out_dir, self.val, self.val_every, self.log_every, self.enabled = Path(out_dir), val or [], val_every, log_every, enabled
        self.best = float("-inf")
        self.t0, self.images = time.perf_counter(), 0
        self.tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.out_dir / "tensorboard"))
            except Exception:  # tensorboard not installed: the JSONL log is enough
                self.tb = None

    def validate(self, model: torch.nn.Module, device) -> dict:
        from drsedge.data.images import read_image, read_uint8, to_tensor, to_uint8
        from drsedge.metrics.psnr_ssim import psnr_y, ssim_y
        from drsedge.runtime.tiling import restore

        was = model.training
        model.eval()
        ps, ss = [], []
        with torch.no_grad():
            for p in self.val:
                x = to_tensor(read_image(p.rainy)).to(device)
                y = to_uint8(restore(model, x).cpu())
                gt = read_uint8(p.clean)
                ps.append(psnr_y(y, gt))
                ss.append(ssim_y(y, gt))
        model.train(was)
        return {"val_psnr": sum(ps) / len(ps), "val_ssim": sum(ss) / len(ss)}

    def step(self, step: int, loss: float, lr: float, batch: int, model, device) -> dict | None:
        """Log step ``step``; validate when due. Returns the validation figures with ``"best"`` when it ran."""
        if not self.enabled:
            return None
        self.images += batch
        row, out = {}, None
        if self.val and self.val_every and step % self.val_every == 0:
            out = self.validate(model, device)
            out["best"] = out["val_psnr"] > self.best
            self.best = max(self.best, out["val_psnr"])
            row.update({k: out[k] for k in ("val_psnr", "val_ssim")})
        if step % self.log_every == 0 or row:
            dt = time.perf_counter() - self.t0
            row.update({"step": step, "loss": loss, "lr": lr, "images_per_s": self.images / dt if dt > 0 else 0.0})
            if torch.cuda.is_available():
                row["gpu_mem_GiB"] = torch.cuda.max_memory_allocated() / 2**30
            with open(self.out_dir / "train_log.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            if self.tb is not None:
                for k, v in row.items():
                    if k != "step":
                        self.tb.add_scalar(k, v, step)
            self.t0, self.images = time.perf_counter(), 0
        return out

    def close(self):
        if self.tb is not None:
            self.tb.close()
