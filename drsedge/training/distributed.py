"""Device, precision and data parallelism for :func:`drsedge.training.train`, from PyTorch's own pieces
(``torch.distributed``, ``DistributedDataParallel``, ``torch.autocast``, ``torch.amp.GradScaler``).

Data parallelism (``torchrun --nproc-per-node N -m drsedge.cli train-teacher ...``): every rank draws the
same global batch ``sampler.batch(step)`` (a pure function of seed and step) and keeps rows
``rank, rank + world, ...``; DDP averages the gradients, which equals the single-process gradient of the
global batch (L1 is a mean and every rank holds the same number of rows). So N processes with global batch
B follow the single-process run with batch B, to floating-point reduction order. Rank 0 alone writes
checkpoints and logs; the state it writes is the unwrapped model's, so ``--resume`` works on any world size.
Multi-node is torchrun's rendezvous (``--nnodes``, ``--rdzv-backend c10d --rdzv-endpoint HOST:PORT``).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch

from drsedge.errors import DrsedgeError

PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Placement:
    """Where and how a training run executes."""

    device: torch.device
    precision: str
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def autocast_dtype(self):
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)


def resolve_device(spec: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        DrsedgeError: CUDA asked for without a GPU, or an unknown spec.
    """
    if spec == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DrsedgeError(f"--device {spec}: no CUDA GPU on this machine (torch.cuda.is_available() is False); use --device cpu")
        d = torch.device(spec if ":" in spec else f"cuda:{local_rank}")
        if d.index is not None and d.index >= torch.cuda.device_count():
            raise DrsedgeError(f"--device {spec}: this machine has {torch.cuda.device_count()} GPU(s)")
        return d
    raise DrsedgeError(f"--device {spec!r}: use auto, cpu, cuda or cuda:N")


def setup(device: str = "auto", precision: str = "fp32", timeout_s: float = 300.0) -> Placement:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1 (gloo on CPU, NCCL on CUDA) and pick the device.

    Raises:
        DrsedgeError: unknown precision, fp16 on a CPU (no fp16 autocast training there), no GPU for CUDA,
            or a rendezvous that does not form within ``timeout_s``.
    """
    if precision not in PRECISIONS:
        raise DrsedgeError(f"--precision {precision!r}: use one of {PRECISIONS}")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if precision == "fp16" and dev.type != "cuda":
        raise DrsedgeError("--precision fp16 needs a CUDA GPU (GradScaler); on a CPU use bf16 or fp32")
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        try:
            torch.distributed.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
        except Exception as e:  # DistStoreError / RuntimeError / TimeoutError, by backend
            raise DrsedgeError(f"torch.distributed rendezvous failed ({type(e).__name__}: {str(e).splitlines()[0][:160]}); "
                               "check --rdzv-endpoint / MASTER_ADDR:MASTER_PORT and that every node started") from None
    return Placement(dev, precision, rank, world)


def shard(batch: tuple[torch.Tensor, ...], placement: Placement) -> tuple[torch.Tensor, ...]:
    """This rank's rows of a global batch (rows ``rank::world``).

    Raises:
        DrsedgeError: the global batch size is not a multiple of the world size.
    """
    n = batch[0].shape[0]
    if n % placement.world:
        raise DrsedgeError(f"batch size {n} is not a multiple of the world size {placement.world}; "
                           f"use --batch-size {((n // placement.world) + 1) * placement.world}")
    if placement.world == 1:
        return batch
    return tuple(t[placement.rank :: placement.world] for t in batch)


def wrap(model: torch.nn.Module, placement: Placement) -> torch.nn.Module:
    """The model moved to the device, wrapped in ``DistributedDataParallel`` when world > 1."""
    model.to(placement.device)
    if placement.world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [placement.device.index] if placement.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def barrier(placement: Placement) -> None:
    if placement.world > 1 and torch.distributed.is_initialized():
        torch.distributed.barrier()
