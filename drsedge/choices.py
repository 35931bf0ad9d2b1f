"""Every option's list of choices, written once: the run-config schema (``Literal[...]`` in
:mod:`drsedge.run_config`), the CLI flags (``choices=`` through :func:`drsedge.run_config.cli_choice`) and the library
functions that check their arguments all take these tuples. No imports: the light modules and the heavy ones share it.
"""

SYNTH_PRESETS = ("light", "medium", "heavy", "mixed", "raindrop", "rain+drop")  # data/synth_rain.py
EXPORTERS = ("torchscript", "dynamo")  # torch.onnx exporters (export/onnx_export.py)
STRUCTURES = ("deploy", "upstream")  # deploy: re-parameterized + folded (models/reparam.py)
ATTENTION_EXPORTS = ("native", "fused")  # fused: one drsedge::TopKSparseSoftmax node per TKSA
QUANT_BACKENDS = ("nncf", "ort", "modelopt")  # compress/quantize.py
HIGH_PRECISIONS = ("fp32", "fp16")  # ModelOpt's float type of the unquantized part
KEEP_FLOAT_UNITS = ("stage", "module")  # the --budget search unit (compress/keep_float.py)
PRUNE_IMPORTANCES = ("l1", "l2", "taylor")  # compress/prune_common.py
WIDTH_IMPORTANCES = ("l1", "l2")  # --init prune-teacher: magnitude only (depth is ranked by measured output change)
DRSFORMER_PRUNE_SCOPES = ("msfn", "attention", "heads", "streams", "depth")  # compress/prune.py
PRUNE_SCOPES = (*DRSFORMER_PRUNE_SCOPES, "mlp", "mffn", "frfn")  # every family's (models/family.py; tests/models/test_family.py)
ONNX_PRECISIONS = ("fp32", "fp16")  # drsedge export --precision: the FP32 ONNX, or also the mixed FP16 one
