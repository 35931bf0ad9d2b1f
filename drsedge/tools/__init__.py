"""The drsedge subcommands, one module each (``register(sub)`` adds the parser; the module's ``cmd_*`` runs it)."""

from . import build_engine, bundle, check, debug, derain, export, info, metrics, pipeline, prune, qat, quantize, stream, synth_rain, train

# the order of ``drsedge --help``: the pipeline's stages first, then inspection and deployment tools
ORDER = (info, metrics, train, synth_rain, export, debug, quantize, qat, check, pipeline, prune, build_engine, bundle, derain, stream)
