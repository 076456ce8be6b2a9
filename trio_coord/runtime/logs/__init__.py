"""Task logs: from ``logging`` calls on any thread to JSON lines on the logs socket.

One job per module:

* :mod:`.levels` -- which records are sent at all (``LevelFilter``, §8.3 of the protocol);
* :mod:`.render` -- one record to one masked JSON line the supervisor accepts;
* :mod:`.pipeline` -- the bounded buffer and the pump that writes it to the socket;
* :mod:`.fallback` -- the synchronous stderr writer used when the socket is gone;
* :mod:`.stdio` -- the task's own stdout/stderr, masked before it leaves the process.

Secrets are hidden by the process's one :class:`~trio_coord.runtime.masking.Masker`,
which every module here is handed; none keeps rules of its own.
"""

from __future__ import annotations

from .levels import LevelFilter, level_name, parse_level
from .pipeline import (
    DEFAULT_CAPACITY,
    DEFAULT_MAX_BUFFERED_BYTES,
    DEFAULT_MAX_RECORD,
    DEFAULT_WORKER_WAIT,
    LINGER,
    LogPipeline,
)
from .render import RecordRenderer, exception_chain

__all__ = [
    "DEFAULT_CAPACITY",
    "DEFAULT_MAX_BUFFERED_BYTES",
    "DEFAULT_MAX_RECORD",
    "DEFAULT_WORKER_WAIT",
    "LINGER",
    "LevelFilter",
    "LogPipeline",
    "RecordRenderer",
    "exception_chain",
    "level_name",
    "parse_level",
]
