"""ONNX ops a TensorRT version cannot build, found before the build (for every model family).

Rules and their sources (checked against NVIDIA's headers and onnx-tensorrt; see ../shared/notes/udr-s2former.md §3):

- **TopK**: K <= 3840 on every version (``ITopKLayer::setK``: "Currently only values up to 3840 are supported",
  NvInfer.h 8.4.3 -> 11.1; onnx-tensorrt operators.md 10.1-GA "K input must be less than 3840"). Before TensorRT 10
  K must be a constant (operators.md 8.4/8.5: "K must be an initializer").
- **GridSample**: TensorRT >= 8.5 (``IGridSampleLayer`` first appears in NvInfer.h 8.5.1; operators.md 8.5-GA "Y").
- **LayerNormalization**: TensorRT >= 8.6 (operators.md 8.5-GA "N"); export at opset 16 for 8.5.
- **Resize** with ``mode="cubic"``: TensorRT >= 8.5 (``kCUBIC`` added in 8.5.1).
- **ScatterND** with a ``reduction``: not imported (operators.md 10.x).
Torch-free: reads the graph with ``onnx`` only.
"""

from __future__ import annotations

import os

from drsedge.errors import DrsedgeError

TOPK_MAX_K = 3840
MIN_VERSION_BY_OP = {"GridSample": (8, 5), "LayerNormalization": (8, 6)}


def _constants(model) -> dict[str, list[int]]:
    from onnx import numpy_helper

    out = {i.name: numpy_helper.to_array(i).reshape(-1).tolist() for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    out[n.output[0]] = numpy_helper.to_array(a.t).reshape(-1).tolist()
    return out


def unsupported_nodes(model, version: tuple[int, int]) -> list[str]:
    """One description per node TensorRT ``version`` cannot build (``"node NAME: TopK K=52428 > 3840 ..."``); empty
    when every rule above holds. ``model`` is an ``onnx.ModelProto`` (functions are not looked into)."""
    consts = _constants(model)
    label = f"{version[0]}.{version[1]}"
    bad = []
    for n in model.graph.node:
        name = n.name or n.output[0]
        op = n.op_type if n.domain in ("", "ai.onnx") else None
        if op == "TopK":
            k = consts.get(n.input[1]) if len(n.input) > 1 else None
            if k is None:
                if version < (10, 0):
                    bad.append(f"node {name}: TopK with a computed K (TensorRT {label} needs K as a constant)")
            elif int(k[0]) > TOPK_MAX_K:
                bad.append(f"node {name}: TopK K={int(k[0])} > {TOPK_MAX_K} (ITopKLayer::setK limit on every TensorRT)")
        elif op in MIN_VERSION_BY_OP and version < MIN_VERSION_BY_OP[op]:
            need = MIN_VERSION_BY_OP[op]
            hint = " (export at --opset 16, which decomposes it)" if op == "LayerNormalization" else ""
            bad.append(f"node {name}: {op} needs TensorRT >= {need[0]}.{need[1]}, target is {label}{hint}")
        elif op == "Resize" and version < (8, 5):
            mode = next((a.s.decode() for a in n.attribute if a.name == "mode"), "nearest")
            if mode == "cubic":
                bad.append(f"node {name}: cubic Resize needs TensorRT >= 8.5, target is {label}")
        elif op == "ScatterND":
            red = next((a.s.decode() for a in n.attribute if a.name == "reduction"), "none")
            if red != "none":
                bad.append(f"node {name}: ScatterND reduction={red!r} is not imported by TensorRT's ONNX parser")
    return bad


def check_op_support(onnx_path: str | os.PathLike, version: tuple[int, int]) -> None:
    """Refuse, before any build, an ONNX file with a node TensorRT ``version`` cannot build.

    Raises:
        DrsedgeError: one line naming the file, the first node, why, and how many others there are.
    """
    from drsedge.onnx_io import load_onnx

    bad = unsupported_nodes(load_onnx(onnx_path, external_data=False), version)
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise DrsedgeError(f"{onnx_path}: TensorRT {version[0]}.{version[1]} cannot build it: {bad[0]}{more}; "
                           "re-export with `drsedge export` (UDR-S2Former: its bisection ranking has no TopK over 51)")
