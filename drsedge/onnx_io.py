"""ONNX files in one place: loading with one error rule, and the image-input contract.

drsedge models take one input ``[N, 3, H, W]`` float32 in [0, 1] and return one output of the same
shape; the input name is read from the file (``image`` for drsedge exports), never assumed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from drsedge.errors import DrsedgeError, first_line

EXPORT_INPUT_NAME = "image"  # the name drsedge's exporter gives the input; readers take it from the file


def load_onnx(path: str | os.PathLike, check: bool = False, external_data: bool = True):
    """Parse an ONNX file (``onnx.ModelProto``).

    Raises:
        DrsedgeError: missing file, a folder, or a file ONNX cannot parse (or that fails the checker when ``check``).
    """
    import onnx

    path = Path(path)
    if not path.is_file():
        raise DrsedgeError(f"{path}: ONNX file not found")
    try:
        model = onnx.load(str(path), load_external_data=external_data)
        if check:
            onnx.checker.check_model(model)
    except Exception as e:  # onnx raises DecodeError, ValidationError, OSError, ...
        raise DrsedgeError(f"{path}: not a valid ONNX model ({first_line(e, 160)}); re-run `drsedge export`") from None
    return model


def image_input(model, source: str = "model") -> tuple[str, int]:
    """Name and rank of the image input; raises DrsedgeError unless there is exactly one ``[N, 3, H, W]`` input."""
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise DrsedgeError(f"{source}: expected one image input, found {len(inputs)}; export it with `drsedge export`")
    inp = inputs[0]
    dims = inp.type.tensor_type.shape.dim
    if len(dims) != 4 or (dims[1].HasField("dim_value") and dims[1].dim_value != 3):
        shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
        raise DrsedgeError(f"{source}: input {inp.name!r} has shape {shape}; drsedge models take N x 3 x H x W")
    return inp.name, len(dims)


def ort_load_error(path: str | os.PathLike, e: BaseException, what: str = "cannot load this model") -> DrsedgeError:
    """The one-line error for an ONNX Runtime session that failed to build from ``path``.

    A model stamped with an opset this ONNX Runtime does not support (ORT's ``ValidateOpsetForDomain``) gets the
    specific line with both numbers and the fix; anything else keeps ORT's first line. Torch-free (string only).
    """
    text = str(e)
    m = re.search(r"Opset (\d+) is under development.*?domain (\S+) is till opset (\d+)", text, re.S)
    if m:
        return DrsedgeError(f"{path}: it is stamped opset {m.group(1)} of {m.group(2)}, newer than this ONNX Runtime "
                            f"supports (up to opset {m.group(3)}); re-export it with `drsedge export --opset 17` "
                            "or upgrade onnxruntime")
    return DrsedgeError(f"{path}: ONNX Runtime {what} ({first_line(e)}); re-run `drsedge export`")
