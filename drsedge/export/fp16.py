"""Precision in the graph: a mixed FP16 ONNX for strongly typed TensorRT (the only FP16 route on TensorRT 11).

FP16 everywhere except FP32 *islands*: the FP16-unsafe layers that weakly typed builds pin to FP32
(LayerNorm statistics and the q/k L2 normalisation, :func:`drsedge.onnx_graph.fp16_unsafe_nodes`; none for
``--fp16-safe`` exports, whose reductions are bounded), the nodes whose values exceed FP16's 65504 on real frames
(:func:`drsedge.export.fp16_range.fp16_ranges`, sums over pixels projected to the deployment frame), the TKSA core
between its convs (:func:`attention_core`: top-k selection is discontinuous), the fused ``drsedge::TopKSparseSoftmax`` nodes (their ONNX function body is FP32), and the ops
onnxconverter-common keeps in FP32 by default (TopK, Resize, Range, ...). Graph inputs and outputs stay
FP32 (``keep_io_types``), so the engine's IO contract does not change.

Converter: onnxconverter-common's ``float16.convert_float_to_float16`` with a node block list (chosen
over ModelOpt AutoCast, which NVIDIA documents for TensorRT 11, because AutoCast's install pulls ~10
packages and its reference run needs a calibration .npz; both keep -inf Where/Softmax and large-valued
nodes in FP32; see README "FP16").

The result is checked on this CPU in ONNX Runtime: where the CPU execution provider has no FP16 kernel,
ONNX Runtime inserts Casts and computes in FP32 (its ``InsertCastTransformer``), so what is measured is
FP16 *storage* of every tensor between nodes plus FP16 weights, not FP16 arithmetic inside a kernel.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from drsedge.deploy_defaults import FRAME_HW
from drsedge.errors import DrsedgeError
from drsedge.fileio import atomic_write
from drsedge.onnx_graph import attention_core

META_PRECISION, META_ISLANDS = "drsedge.precision", "drsedge.fp32_islands"


@dataclass
class Fp16Result:
    """What :func:`convert_fp16` wrote and measured: PSNR (dB, RGB in [0, 1], peak 1) and max abs error of the
    FP16 ONNX output vs the FP32 ONNX output per image."""

    path: str
    islands: list[str]
    fp16_nodes: int
    total_nodes: int
    psnr_vs_fp32: dict[str, float] = field(default_factory=dict)
    max_abs_vs_fp32: dict[str, float] = field(default_factory=dict)

    @property
    def mean_psnr(self) -> float:
        v = list(self.psnr_vs_fp32.values())
        return float(np.mean(v)) if v else float("nan")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean_psnr_vs_fp32"] = self.mean_psnr
        return d


def overflow_islands(onnx_path: str | os.PathLike, images: list[np.ndarray], project_hw: tuple[int, int] | None) -> list[str]:
    """Node names whose FP16 peak (projected to ``project_hw``) exceeds 65504 on ``images``."""
    from drsedge.export.fp16_range import fp16_overflows, fp16_ranges

    return [r.node for r in fp16_overflows(fp16_ranges(onnx_path, images, project_hw))]


def _fused_weight_producers(model) -> list[str]:
    """Nodes (the exporter's Identity copies) that feed a fused node's FP32 mixing weights."""
    from drsedge.onnx_graph import is_fused

    weights = {i for n in model.graph.node if is_fused(n) for i in n.input[1:]}
    return [n.name for n in model.graph.node if any(o in weights for o in n.output)]


def _feeders_of(model, islands: set[str]) -> list[str]:
    """Identity/Constant nodes (the exporter's copies of shared weights, e.g. equal ``temperature`` parameters) whose
    outputs go only to islands: kept FP32 with them (the converter cannot insert a Cast between them)."""
    consumers: dict[str, set[str]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, set()).add(n.name)
    return [n.name for n in model.graph.node if n.op_type in ("Identity", "Constant") and n.name not in islands and n.output
            and all(consumers.get(o) and consumers[o] <= islands for o in n.output)]


def _neg_inf_consumers(model) -> list[str]:
    """Nodes fed by a constant holding -inf (the top-k mask's ``Where``): kept in FP32 so the mask stays -inf
    (the converter would clip it to -1e4)."""
    from onnx import numpy_helper

    def has_inf(t) -> bool:
        a = numpy_helper.to_array(t)
        return a.dtype.kind == "f" and bool(np.isinf(a).any())

    inf_tensors = {t.name for t in model.graph.initializer if has_inf(t)}
    producers = []
    for n in model.graph.node:
        if n.op_type in ("Constant", "ConstantOfShape") and any(a.name == "value" and has_inf(a.t) for a in n.attribute):
            inf_tensors.update(n.output)
            producers.append(n.name)
    return producers + [n.name for n in model.graph.node if any(i in inf_tensors for i in n.input)]


def _fold_initializer_identities(model) -> int:
    """Replace each ``Identity`` of an initializer by a copy of that initializer under the output's name (the
    TorchScript exporter shares weights this way, e.g. UDR-S2Former's LayerNorm biases). onnxconverter-common converts
    the initializer to FP16 but keeps the Identity's output FP32 when the node sits in an island, which ONNX Runtime
    refuses (type mismatch). Returns the number folded."""
    import onnx

    inits = {t.name: t for t in model.graph.initializer}
    graph_outputs = {o.name for o in model.graph.output}
    keep, folded = [], 0
    for n in model.graph.node:
        if n.op_type == "Identity" and n.input[0] in inits and n.output[0] not in graph_outputs:
            t = onnx.TensorProto()
            t.CopyFrom(inits[n.input[0]])
            t.name = n.output[0]
            model.graph.initializer.append(t)
            folded += 1
        else:
            keep.append(n)
    if folded:
        del model.graph.node[:]
        model.graph.node.extend(keep)
    return folded


def _float_casts(model) -> list[str]:
    """UDR-S2Former exports only (metadata ``drsedge.family``): its ``Cast(to=FLOAT)`` nodes, which turn integer sizes
    and boolean rank masks into FP32. onnxconverter-common retypes them to FP16 but leaves some of their consumers'
    value_info FP32 (ONNX Runtime then refuses the file); as islands they stay FP32 and the converter casts after them."""
    import onnx

    from drsedge.models.family import family_of_onnx

    fam = family_of_onnx(model)
    if fam is None or not fam.fp16_float_casts:
        return []
    return [n.name for n in model.graph.node if n.op_type == "Cast" and any(a.name == "to" and a.i == onnx.TensorProto.FLOAT
                                                                             for a in n.attribute)]


def _retype_custom_outputs(model) -> None:
    """Outputs of custom-domain nodes (FP32 islands the converter cannot type) are FP32 in value_info."""
    import onnx

    outs = {o for n in model.graph.node if n.domain not in ("", "ai.onnx") for o in n.output}
    for vi in model.graph.value_info:
        if vi.name in outs:
            vi.type.tensor_type.elem_type = onnx.TensorProto.FLOAT


def convert_fp16(src: str | os.PathLike, dst: str | os.PathLike, images: list[np.ndarray], names: list[str] | None = None,
                 project_hw: tuple[int, int] | None = FRAME_HW) -> Fp16Result:
    """Write the mixed-precision FP16 ONNX of the FP32 ONNX ``src`` to ``dst`` and measure it on ``images``.

    Args:
        images: ``[1, 3, H, W]`` float32 real frames in [0, 1] (never the test set), H, W multiples of 8.
        names: one label per image for the per-image figures.

    Raises:
        DrsedgeError: unreadable ``src``, ``src`` already FP16, no images, or an FP16 output that is NaN/Inf.
    """
    import onnx
    from onnxconverter_common import float16

    from drsedge.onnx_graph import fp16_unsafe_nodes, fused_nodes, graph_float_types, rank_path_nodes
    from drsedge.onnx_io import load_onnx

    if not images:
        raise DrsedgeError("FP16 conversion needs real frames (--images DIR) to find the FP32 islands")
    model = load_onnx(src)
    if "float16" in graph_float_types(model):
        raise DrsedgeError(f"{src}: already holds FP16 tensors; convert the FP32 export")
    _fold_initializer_identities(model)
    total = len(model.graph.node)
    for i, n in enumerate(model.graph.node):
        if not n.name:
            n.name = f"node_{i}"
    # the same FP16-unsafe layers the weakly typed build pins to FP32 (LayerNorm statistics, q/k L2 normalisation;
    # none for --fp16-safe exports), plus what overflows on the given frames, plus the -inf mask and the fused op
    islands = sorted(set(overflow_islands(src, images, project_hw)) | set(fp16_unsafe_nodes(model)) | set(fused_nodes(model))
                     | set(_fused_weight_producers(model)) | set(_neg_inf_consumers(model)) | set(attention_core(model)))
    islands = sorted(set(islands) | set(_feeders_of(model, set(islands))) | set(_float_casts(model)) | set(rank_path_nodes(model)))
    try:
        with warnings.catch_warnings():  # the converter warns about each constant it clips; the islands keep the ones that matter
            warnings.simplefilter("ignore")
            functions = list(model.functions)  # the fused op's FP32 body stays as it is (its node is an island)
            del model.graph.value_info[:]
            del model.functions[:]
            for n in model.graph.node:  # shape inference cannot type custom ops: say their outputs are FP32
                if n.domain not in ("", "ai.onnx"):
                    model.graph.value_info.extend(onnx.helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in n.output)
            fp16 = float16.convert_float_to_float16(model, keep_io_types=True, node_block_list=islands, disable_shape_infer=False)
            fp16.functions.extend(functions)
            _retype_custom_outputs(fp16)
    except Exception as e:  # the converter raises plain Exceptions on graphs it cannot type
        from drsedge.errors import first_line

        raise DrsedgeError(f"{src}: FP16 conversion failed ({first_line(e)})") from None
    for key, value in ((META_PRECISION, "fp16"), (META_ISLANDS, json.dumps(islands))):
        prop = next((p for p in fp16.metadata_props if p.key == key), None) or fp16.metadata_props.add()
        prop.key, prop.value = key, value
    res = Fp16Result(str(dst), islands, total - len(islands), total)
    tmp_dir = Path(dst).parent
    tmp_dir.mkdir(parents=True, exist_ok=True)

    def write(tmp):
        onnx.save(fp16, tmp)
        _measure(src, tmp, images, names, res)

    atomic_write(dst, write)
    return res


def _measure(fp32_path, fp16_path, images, names, res: Fp16Result) -> None:
    import torch

    from drsedge.runtime.runners import OrtRunner

    ref, test = OrtRunner(fp32_path, "onnx_fp32"), OrtRunner(fp16_path, "onnx_fp16")
    for i, x in enumerate(images):
        label = names[i] if names and i < len(names) else f"image{i}"
        t = torch.from_numpy(x)
        a, b = ref(t).numpy(), test(t).numpy()
        a, b = np.clip(a, 0, 1), np.clip(b, 0, 1)
        mse = float(np.mean((a - b) ** 2))
        res.psnr_vs_fp32[label] = 100.0 if mse == 0 else min(100.0, 10 * np.log10(1.0 / mse))
        res.max_abs_vs_fp32[label] = float(np.abs(a - b).max())
