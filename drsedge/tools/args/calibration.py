"""The calibration flags of ``drsedge quantize`` and ``drsedge qat``, declared once, and the calibration set they give.

Polygraphy's ``tools/args`` pattern: a group adds its flags (defaults from :class:`drsedge.run_config.QuantizeSection`)
and ``parse`` turns them into the library object through the builder the pipeline uses
(:func:`drsedge.stages.data.calibration`: a static export takes crops of its own size).
"""

from __future__ import annotations

from pathlib import Path

from drsedge.errors import DrsedgeError
from drsedge.run_config import QuantizeSection

from . import MULT8, POS, add_skip_copies


class CalibrationArgs:
    """``--calib DIR... [--crop N] [--limit N] [--skip-held-out-copies]``.

    ``crop_from_model``: the crop defaults to None, meaning a static export's own size, else ``QuantizeSection.size``
    (``drsedge quantize`` on an ONNX); otherwise it defaults to ``QuantizeSection.size`` (``drsedge qat`` on a checkpoint).
    """

    def __init__(self, crop_from_model: bool):
        self.crop_from_model = crop_from_model

    def add(self, p) -> None:
        section = QuantizeSection.model_fields
        p.add_argument("--calib", nargs="+", required=True, metavar="DIR", help="rainy images for calibration (not the test set)")
        add_skip_copies(p)
        if self.crop_from_model:
            p.add_argument("--crop", "--size", dest="size", type=MULT8,
                           help=f"calibration crop side in px (multiple of 8; default {section['size'].default}, a static export's own size)")
        else:
            p.add_argument("--crop", "--size", dest="size", type=MULT8, default=section["size"].default, help="calibration crop side in px")
        p.add_argument("--limit", type=POS, default=section["limit"].default, help="number of calibration images")

    @staticmethod
    def crop(a, onnx: str | None = None) -> int:
        """The crop side: a static export's own size (a different ``--crop`` is refused), else ``--crop``, else the section's.

        Raises:
            DrsedgeError: ``--crop`` differs from a static export's size.
        """
        from drsedge.export.onnx_export import static_square_side

        side = static_square_side(onnx) if onnx is not None and Path(onnx).is_file() else None
        if side and a.size is not None and a.size != side:
            raise DrsedgeError(f"--crop {a.size}: {onnx} is a static export that takes only {side}x{side} inputs; drop --crop "
                               f"(its size is used) or pass --crop {side}")
        return side or a.size or QuantizeSection().size

    @classmethod
    def parse(cls, a, onnx: str | None = None):
        """The :class:`~drsedge.calibration.calib.CalibrationSet` of the flags for ``onnx`` (None: a checkpoint).

        Raises:
            DrsedgeError: :meth:`crop`'s refusal and the builder's (held-out or empty folder, corrupt image).
        """
        from drsedge.stages import data

        return data.calibration(a.calib, cls.crop(a, onnx), a.limit, onnx)
