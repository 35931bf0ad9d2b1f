"""``python -m drsedge``: the same CLI as the ``drsedge`` script."""

import sys

from drsedge.cli import main

sys.exit(main())
