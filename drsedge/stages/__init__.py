"""One module per pipeline stage, each with one ``run(options, inputs, out) -> StageResult`` holding the whole recipe.

The options are the stage's run-config section (:mod:`drsedge.run_config`); ``drsedge <command>`` builds them from
its flags and ``drsedge pipeline`` passes the validated section, so both doors run the same code. Stages import the
library (models, training, compress, export, metrics, runtime, backend) and never each other or the CLI.
"""

from .result import StageResult

__all__ = ["StageResult"]
