"""MEFC: Mixture of Experts Feature Compensator (DRSformer paper Sec. 3.4).

Upstream class and module names (``subnet``, ``OALayer``, ``GroupOLs``,
``OperationLayer``, ``SepConv``, ``DilConv``, ``ReLUConv``) are kept because
official checkpoints depend on them (``encoder_level0.*`` and
``refinement.*``). Written without einops; no BatchNorm (upstream's GroupOLs
uses ``ReLUConv``), so the module has no buffers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

OPERATIONS = (
    "sep_conv_1x1",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "sep_conv_7x7",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "dil_conv_7x7",
    "avg_pool_3x3",
)


class SepConv(nn.Module):
    """Two depthwise-separable convs with a ReLU between: ``[B, C, H, W] -> [B, C, H, W]``."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, padding: int):
        super().__init__()
        self.op = nn.Sequential(
            nn.Conv2d(c_in, c_in, kernel_size, padding=padding, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_in, 1, bias=False),
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel_size, padding=padding, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class DilConv(nn.Module):
    """Dilated depthwise conv followed by a pointwise conv."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, padding: int, dilation: int):
        super().__init__()
        self.op = nn.Sequential(
            nn.Conv2d(c_in, c_in, kernel_size, padding=padding, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class ReLUConv(nn.Module):
    """Conv then ReLU (upstream name; despite it, the conv comes first)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, padding: int):
        super().__init__()
        self.op = nn.Sequential(nn.Conv2d(c_in, c_out, kernel_size, padding=padding, bias=False), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


def _make_op(name: str, c: int) -> nn.Module:
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    kind, _, size = name.split("_")
    k = int(size[0])
    if kind == "sep":
        return SepConv(c, c, k, k // 2)
    return DilConv(c, c, k, k - 1, 2)


class OperationLayer(nn.Module):
    """The eight expert ops, weighted per sample, concatenated and fused by a 1x1 conv."""

    def __init__(self, c: int):
        super().__init__()
        self._ops = nn.ModuleList(_make_op(o, c) for o in OPERATIONS)
        self._out = nn.Sequential(nn.Conv2d(c * len(OPERATIONS), c, 1, bias=False), nn.ReLU())

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        # weights: [B, num_ops]; each expert output is scaled by its own sample's weight.
        states = [op(x) * weights[:, i].reshape(-1, 1, 1, 1) for i, op in enumerate(self._ops)]
        return self._out(torch.cat(states, dim=1))


class GroupOLs(nn.Module):
    """``steps`` residual OperationLayers after a 1x1 conv + ReLU."""

    def __init__(self, steps: int, c: int):
        super().__init__()
        self.preprocess = ReLUConv(c, c, 1, 0)
        self._steps = steps
        self._ops = nn.ModuleList(OperationLayer(c) for _ in range(steps))
        self.relu = nn.ReLU()

    def forward(self, s0: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        s0 = self.preprocess(s0)
        for i in range(self._steps):
            s0 = self.relu(self._ops[i](s0, weights[:, i, :]) + s0)
        return s0


class OALayer(nn.Module):
    """Router: global average pool and a 2-layer MLP giving ``[B, steps, num_ops]`` logits."""

    def __init__(self, channel: int, k: int, num_ops: int):
        super().__init__()
        self.k = k
        self.num_ops = num_ops
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.ca_fc = nn.Sequential(nn.Linear(channel, k * num_ops * 2), nn.ReLU(), nn.Linear(k * num_ops * 2, k * num_ops))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ca_fc(self.avg_pool(x).flatten(1))
        return y.reshape(-1, self.k, self.num_ops)


class subnet(nn.Module):
    """MEFC block: ``[B, dim, H, W] -> [B, dim, H, W]`` (upstream ``subnet``)."""

    def __init__(self, dim: int, layer_num: int = 1, steps: int = 4):
        super().__init__()
        self.layers = nn.ModuleList()
        for _ in range(layer_num):
            self.layers.append(OALayer(dim, steps, len(OPERATIONS)))
            self.layers.append(GroupOLs(steps, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = None
        for layer in self.layers:
            if isinstance(layer, OALayer):
                weights = F.softmax(layer(x), dim=-1)
            else:
                x = layer(x, weights)
        return x
