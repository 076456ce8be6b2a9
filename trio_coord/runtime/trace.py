"""Opt-in timestamps of a try's phases, for finding where start-up time goes.

With ``TRIO_COORD_TRACE_FILE`` set, :func:`mark` appends ``<CLOCK_MONOTONIC seconds>
<phase>`` lines to that file. The clock is system-wide, so a benchmark can interleave
these lines with its own timestamps of the supervisor (bench/supervised.py ``--trace``).
Unset, a mark costs one dictionary lookup made at import.
"""

from __future__ import annotations

import os
import time
from typing import Final

__all__ = ["TRACE_ENV", "mark"]

TRACE_ENV: Final = "TRIO_COORD_TRACE_FILE"
_PATH: Final = os.environ.get(TRACE_ENV) or None


def mark(phase: str) -> None:
    """Record that ``phase`` was reached now (no-op unless tracing)."""
    if _PATH is None:
        return
    try:
        with open(_PATH, "a", encoding="utf-8") as f:
            f.write(f"{time.monotonic():.6f} {phase}\n")
    except OSError:
        pass
