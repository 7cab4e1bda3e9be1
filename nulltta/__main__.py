"""``python -m nulltta ...``: the same as the ``nulltta`` command (Fabric relaunches ranks so)."""

import sys

from .cli import main

sys.exit(main())
