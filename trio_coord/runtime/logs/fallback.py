"""Where task-log lines go when the logs socket cannot take them: the process's stderr.

The supervisor turns every stderr line into a task-log record of its own (protocol.md
§8.6), so a line written here is still seen, as text. Lines arrive already rendered and
masked by the same renderer as the socket's, so both paths carry the same bytes.

Writes are synchronous, on the calling thread, never in a worker thread: the fallback is
rare (the socket is gone, or the try is over) and its lines are few, while a write handed
to a thread would be invisible to Trio's scheduler -- a virtual clock could then jump past
it, and a cancelled pump could leave lines behind in a thread nobody waits for. A write
blocks only while the supervisor's stderr pipe is full, which it drains continuously.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import BinaryIO

__all__ = ["Fallback"]


class Fallback:
    """Writes whole lines to ``target`` (``sys.stderr`` at the time of writing when None).

    Never raises: a failed write is reported to ``on_lost`` with the number of lines lost.
    Thread-safe; concurrent writes never interleave inside a line.
    """

    def __init__(self, target: BinaryIO | None, on_lost: Callable[[int], None]) -> None:
        self._target = target
        self._on_lost = on_lost
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        """Write ``data`` (whole ``\\n``-terminated lines) and flush."""
        with self._lock:
            try:
                target = self._target
                if target is None:
                    stderr = sys.stderr
                    buffer = getattr(stderr, "buffer", None)
                    if buffer is None:
                        # A text-only stderr (replaced by a StringIO, say): lines as text.
                        stderr.write(data.decode("utf-8", "replace"))
                        stderr.flush()
                        return
                    target = buffer
                target.write(data)
                target.flush()
            except Exception:
                self._on_lost(data.count(b"\n"))
