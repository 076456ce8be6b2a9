"""``python -m trio_coord.local``: the same as ``trio-coord run``."""

from __future__ import annotations

import sys

from .command import main

sys.exit(main(sys.argv[1:]))
