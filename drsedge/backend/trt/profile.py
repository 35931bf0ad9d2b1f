"""The optimization profile of the image input (TensorRT / Polygraphy ``Profile``): min/opt/max shapes.

The input name and rank come from the ONNX file (:func:`drsedge.onnx_io.image_input`), never a constant.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from drsedge.deploy_defaults import FRAME_HW, FRAME_TEXT
from drsedge.errors import DrsedgeError
from drsedge.onnx_io import EXPORT_INPUT_NAME

DEFAULT_SHAPES = ("1x3x64x64", "1x3x256x256", f"1x3x{FRAME_TEXT}")  # min/opt/max of a dynamic export's optimization profile


@dataclass
class Profile:
    """``min``/``opt``/``max`` of input ``input``, each ``(N, 3, H, W)`` with H, W multiples of 8 (three downsamplings)."""

    min: tuple[int, ...] = (1, 3, 64, 64)
    opt: tuple[int, ...] = (1, 3, 256, 256)
    max: tuple[int, ...] = (1, 3, *FRAME_HW)
    input: str = EXPORT_INPUT_NAME
    static: bool = False  # the ONNX input has fixed dims (UDR-S2Former): no profile is given to TensorRT or trtexec

    def check(self, rank: int = 4) -> None:
        """Raises DrsedgeError unless every shape has ``rank`` dims > 0, 3 channels, H/W multiples of 8, and min <= opt <= max."""
        for name, s in (("min", self.min), ("opt", self.opt), ("max", self.max)):
            if len(s) != rank:
                raise DrsedgeError(f"profile {name} shape {'x'.join(map(str, s))} has {len(s)} dims; input {self.input!r} has {rank}")
            if any(d <= 0 for d in s):
                raise DrsedgeError(f"profile {name} shape {'x'.join(map(str, s))}: every dimension must be > 0")
            if s[1] != 3:
                raise DrsedgeError(f"profile {name} shape {'x'.join(map(str, s))} must be N x 3 x H x W")
            if s[2] % 8 or s[3] % 8:
                raise DrsedgeError(f"profile {name} shape {'x'.join(map(str, s))}: H and W must be multiples of 8 (the model downsamples 3 times)")
        if not all(a <= b <= c for a, b, c in zip(self.min, self.opt, self.max)):
            raise DrsedgeError(f"profile opt {self.opt} is outside min {self.min} / max {self.max}")

    @staticmethod
    def parse(text: str) -> tuple[int, ...]:
        """``"1x3x256x256"`` -> ``(1, 3, 256, 256)``; raises DrsedgeError on bad text or a dimension <= 0."""
        try:
            dims = tuple(int(t) for t in str(text).lower().split("x"))
        except ValueError:
            dims = ()
        if len(dims) != 4:
            raise DrsedgeError(f"shape {text!r}: expected NxCxHxW, e.g. 1x3x256x256")
        if any(d <= 0 for d in dims):
            raise DrsedgeError(f"shape {text!r}: every dimension must be > 0")
        return dims

    def for_onnx(self, onnx_path: str | os.PathLike) -> Profile:
        """This profile with the input name of ``onnx_path``, checked against its rank."""
        from .onnx_prep import inspect

        info = inspect(onnx_path)
        p = Profile(self.min, self.opt, self.max, info["input"])
        p.check(info["rank"])
        return p

    def shape_arg(self, which: str) -> str:
        """trtexec ``--minShapes`` value: ``image:1x3x64x64``."""
        return f"{self.input}:{'x'.join(str(d) for d in getattr(self, which))}"
