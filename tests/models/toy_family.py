"""A toy model family used only by tests: the worked example of docs/families.md (a registry entry + a model file)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import nn

from drsedge.errors import DrsedgeError


class ToyNet(nn.Module):
    """``[B, 3, H, W]`` -> ``x + conv(relu(conv(x)))``: a two-conv residual derainer."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.head = nn.Conv2d(3, width, 3, 1, 1)
        self.tail = nn.Conv2d(width, 3, 3, 1, 1)

    def forward(self, x):
        return x + self.tail(self.head(x).relu())


@dataclass
class ToyConfig:
    width: int = 8
    family: str = "toy"

    def build(self) -> ToyNet:
        return ToyNet(self.width)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> ToyConfig:
        from drsedge.models.config import checked_fields

        cfg = checked_fields(cls, d, source, "toy")
        if not 1 <= cfg.width <= 64:
            raise DrsedgeError(f"{source}: width {cfg.width} must be in 1..64")
        return cfg


def config_from_state(state: dict, source: str = "checkpoint") -> ToyConfig:
    return ToyConfig(width=int(state["head.weight"].shape[0]))
