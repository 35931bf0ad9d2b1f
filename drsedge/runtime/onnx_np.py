"""The torch-free inference path: ONNX Runtime + numpy, the same pre/post-processing as upstream ``test.py``.

``pip install "drsedge[runtime]"`` (numpy, onnxruntime, opencv-python-headless, Pillow; no PyTorch) is enough for
``drsedge derain MODEL.onnx`` and ``drsedge stream``: this module imports no torch. It mirrors
:func:`drsedge.runtime.tiling.restore`: reflect-pad right/bottom to a multiple of 8, optionally overlapping
tiles averaged (row starts ``range(0, H - tile, stride) + [H - tile]``), crop, clip to [0, 1].
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from drsedge.errors import DrsedgeError, first_line

from .base import FrameModel
from .limits import ShapeLimits, TilePlan
from .tile_plan import overlap_average, pad_amounts, square_tile

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


def ort_session(path: str | os.PathLike, provider: str = "cpu", threads: int | None = None, arena: bool = True,
                fused_kernel: str = "function"):
    """An ONNX Runtime ``InferenceSession`` for ``path`` on ``provider`` (:data:`PROVIDERS`).

    ``fused_kernel`` says how ``drsedge::TopKSparseSoftmax`` nodes run: ``"function"`` (the model-local function, native
    speed) or ``"pyop"`` (onnxruntime-extensions Python kernel, slow; :mod:`drsedge.ops.topk_sparse_softmax.ort_kernel`).
    ``arena=False``: memory goes back after each run (many sessions side by side at 720p).

    Raises:
        DrsedgeError: the file is missing or does not parse as ONNX, or a provider this ONNX Runtime build lacks.
    """
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise DrsedgeError(f"{path}: ONNX file not found")
    if provider not in PROVIDERS:
        raise DrsedgeError(f"provider {provider!r}: use one of {sorted(PROVIDERS)}")
    if PROVIDERS[provider] not in ort.get_available_providers():
        raise DrsedgeError(f"{PROVIDERS[provider]} is not in this ONNX Runtime build ({', '.join(ort.get_available_providers())}); "
                           "use --provider cpu or install onnxruntime-gpu")
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.enable_cpu_mem_arena = arena
    if threads:
        so.intra_op_num_threads = threads
    try:
        if fused_kernel == "pyop":
            from drsedge.onnx_io import load_onnx
            from drsedge.ops.topk_sparse_softmax.ort_kernel import register_pyop, to_pyop_model

            so.register_custom_ops_library(register_pyop())
            return ort.InferenceSession(to_pyop_model(load_onnx(path)).SerializeToString(), so, providers=[PROVIDERS[provider]])
        return ort.InferenceSession(str(path), so, providers=[PROVIDERS[provider]])
    except DrsedgeError:
        raise
    except Exception as e:  # onnxruntime's own error types
        from drsedge.onnx_io import ort_load_error

        raise ort_load_error(path, e) from None


class OnnxModel(FrameModel):
    """An ONNX image model in ONNX Runtime, a :class:`~drsedge.runtime.base.FrameModel`: ``model(x)`` maps
    ``[N, 3, H, W]`` float32 (H, W multiples of 8) to the same shape, checked on every call. ``limits``: the frame
    sizes it takes (a static input shape fixes them; see :mod:`drsedge.runtime.limits`).

    Raises:
        DrsedgeError: missing/unloadable file, not one ``N x 3 x H x W`` input and one output, or a provider this
            ONNX Runtime build lacks (see :func:`ort_session` for the options).
    """

    def __init__(self, path: str | os.PathLike, provider: str = "cpu", threads: int | None = None, arena: bool = True,
                 fused_kernel: str = "function"):
        path = Path(path)
        self.session = ort_session(path, provider, threads, arena, fused_kernel)
        ins, outs = self.session.get_inputs(), self.session.get_outputs()
        shape = ins[0].shape if len(ins) == 1 else None
        if shape is None or len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 3) or len(outs) != 1:
            raise DrsedgeError(f"{path}: input(s) {[(i.name, i.shape) for i in ins]}: drsedge models take one N x 3 x H x W image "
                               "and return one; export it with `drsedge export`")
        self.input, self.path, self.provider = ins[0].name, path, provider
        h, w = shape[2], shape[3]
        static = isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0
        self.limits = ShapeLimits((h, w), (h, w), f"ONNX static input {h}x{w}") if static else ShapeLimits()

    def _infer(self, x: np.ndarray) -> np.ndarray:
        try:
            return self.session.run(None, {self.input: x})[0]
        except Exception as e:
            raise DrsedgeError(f"{self.path}: ONNX Runtime failed on a {tuple(x.shape)} input ({first_line(e)})") from None

    def close(self) -> None:
        self.session = None
        super().close()


def restore_np(model, img: np.ndarray, tile: int | TilePlan | None = None, overlap: int = 32) -> np.ndarray:
    """Derain ``[H, W, 3]`` float32 in [0, 1] -> same shape in [0, 1] (pad to x8, forward or tiles, crop, clip).

    ``tile``: a :class:`~drsedge.runtime.limits.TilePlan` (``th x tw`` tiles with its own overlap: what
    :func:`drsedge.runtime.limits.plan_tiles` gives ``derain``, ``stream`` and ``check`` alike), a square side in px
    with ``overlap``, or None for the whole frame. A side shorter than the tile is padded up to it (reflect; edge when
    too short to reflect), as :func:`drsedge.runtime.tiling.static_tiled`, so a fixed-size model (a static export)
    takes small frames. Tiling and padding follow :mod:`drsedge.runtime.tile_plan`.

    Raises:
        DrsedgeError: a tile that is not a multiple of 8, an overlap >= tile, or an image too small to pad.
    """
    h, w = img.shape[:2]
    ph, pw = pad_amounts(h, w, 8)
    x = np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="reflect")
    if isinstance(tile, TilePlan):
        th, tw, overlap = tile.th, tile.tw, tile.overlap
    elif tile:
        th = tw = tile
    if tile:  # a side shorter than the tile is padded up to it (a fixed-size model's minimum; limits.plan_tiles)
        eh, ew = max(th - x.shape[0], 0), max(tw - x.shape[1], 0)
        if eh or ew:
            x = np.pad(x, ((0, eh), (0, ew), (0, 0)), mode="reflect" if eh < x.shape[0] and ew < x.shape[1] else "edge")
    x = x.transpose(2, 0, 1)[None]
    if isinstance(tile, TilePlan):
        y = overlap_average(model, x, th, tw, overlap, lambda shape: np.zeros(shape, np.float32))
    elif tile:
        t = square_tile(tile, overlap, *x.shape[2:])
        y = overlap_average(model, x, t, t, overlap, lambda shape: np.zeros(shape, np.float32))
    else:
        y = model(x)
    return np.clip(y[0, :, :h, :w].transpose(1, 2, 0), 0.0, 1.0)
