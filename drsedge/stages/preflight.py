"""One check of every stage's options against the model family and the runtime limits, before the first stage runs.

Each rule is the one its stage applies (so the verdicts cannot differ); the pipeline calls :func:`check_options` in its
preflight, so a UDR-S2Former config with ``prune.scope: [msfn]``, ``export.size: [100, 100]``, ``quantize.qat_steps``
or ``export.opset: 99`` is refused in one line before the teacher and student train, not an hour later (issue 37).
"""

from __future__ import annotations

from drsedge.deploy_defaults import OPSET, OPSET_MIN_STATIC
from drsedge.errors import DrsedgeError
from drsedge.run_config import RunConfig


def student_config(cfg: RunConfig):
    """The deployed model's config: ``student.init``'s (a checkpoint's stored config; no weights read), else
    ``student.model`` on its family's default student (:func:`~drsedge.models.family.student_from_dict`)."""
    from drsedge.models.config import config_from_dict
    from drsedge.models.family import student_from_dict

    if isinstance(cfg.student.init, str):
        from drsedge.models.checkpoint import read_config
        from drsedge.weights import resolve

        return read_config(resolve(cfg.student.init))
    if cfg.student.init is not None:  # the pruned teacher: its family is the teacher's
        from drsedge.models.checkpoint import read_config
        from drsedge.weights import resolve

        return read_config(resolve(cfg.teacher.checkpoint)) if cfg.teacher.checkpoint else config_from_dict(
            cfg.teacher.model, "teacher.model")
    return student_from_dict(cfg.student.model, "student.model")


def check_options(cfg: RunConfig) -> None:
    """Refuse options the student's family or the installed exporter cannot apply.

    Raises:
        DrsedgeError: one line naming the run-config key: a prune scope the family lacks
            (:func:`~drsedge.compress.prune_driver.family_scopes`), an export opset outside what the family needs and
            the exporter writes, an export size the family cannot take, QAT for a family without it
            (:func:`~drsedge.models.config.require_drsformer`), or ``--structure upstream`` for a one-structure family.
    """
    from drsedge.export.onnx_export import max_opset
    from drsedge.models.config import is_static_config, require_drsformer

    scfg = student_config(cfg)
    static = is_static_config(scfg)
    if cfg.prune.enabled:
        from drsedge.compress.prune_driver import family_scopes

        family_scopes(scfg, cfg.prune.scope)
    ex = cfg.export
    low, high = (OPSET_MIN_STATIC if static else OPSET), max_opset(ex.exporter)
    if not low <= ex.opset <= high:
        raise DrsedgeError(f"export.opset {ex.opset}: this student needs >= {low} and the installed {ex.exporter} exporter writes "
                           f"<= {high}; set export.opset in {low}..{high}")
    if static:
        from drsedge.models.family import family_of_config

        SIZE_MULTIPLE = family_of_config(scfg).size_multiple
        if ex.size is not None and (ex.size[0] % SIZE_MULTIPLE or ex.size[1] % SIZE_MULTIPLE):
            raise DrsedgeError(f"export.size {ex.size[0]}x{ex.size[1]}: this student's static export needs multiples of {SIZE_MULTIPLE} "
                               "(e.g. [256, 256], [768, 1280])")
        if ex.attention != "native" or ex.fp16_safe:
            raise DrsedgeError("export.attention / export.fp16_safe: this student has no TKSA; use attention: native, fp16_safe: false")
        if ex.structure != "deploy":
            raise DrsedgeError("export.structure upstream: this student family has one exported structure; remove the key")
    elif ex.size is not None:
        raise DrsedgeError("export.size is for static-shape families (UDR-S2Former, AST); DRSformer exports have dynamic H/W: remove it")
    if cfg.quantize.qat_steps:
        require_drsformer(scfg, "QAT (quantize.qat_steps)", "quantize.qat_steps")
