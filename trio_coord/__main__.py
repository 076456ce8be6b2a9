"""``python -m trio_coord``: the same entry point as the ``trio-coord`` command."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
