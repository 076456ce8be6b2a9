"""The task's own stdout and stderr, masked before a byte reaches the supervisor's pipes.

The supervisor reads the runtime's stdout and stderr directly and turns each line into a
task-log record; it masks those lines itself, but only with the secrets it knows, and the
bytes have left the process by then. So at start-up ``sys.stdout`` and ``sys.stderr`` are
replaced by text streams over a :class:`MaskingWriter`, which holds output back until a
line is complete, masks the line with the process's masker and only then writes it to the
real stream.

What this covers: everything written through ``sys.stdout`` / ``sys.stderr`` (``print``,
``logging.StreamHandler``, tracebacks of uncaught exceptions, ``sys.stdout.buffer``). What
it cannot cover: writes to file descriptors 1 and 2 that bypass Python's ``sys`` streams
(C extensions, ``os.write(1, ...)``, subprocesses inheriting the descriptors,
``sys.__stdout__``), and a secret split across an explicit ``flush()`` or across a line
longer than :data:`MAX_PENDING`, which is written out in pieces.
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO, Final, TextIO

from ..masking import Masker

__all__ = ["MAX_PENDING", "MaskingWriter", "masked_stdio"]

#: Longest incomplete line held back; a longer one is masked and written in pieces, so a
#: task printing without newlines cannot grow memory without bound.
MAX_PENDING: Final = 64 * 1024


class MaskingWriter(io.BufferedIOBase):
    """A binary stream that masks each complete line before writing it to ``target``."""

    def __init__(self, target: BinaryIO, masker: Masker, encoding: str = "utf-8") -> None:
        super().__init__()
        self._target = target
        self._masker = masker
        self._encoding = encoding
        self._pending = bytearray()
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._target.fileno()

    def isatty(self) -> bool:
        return self._target.isatty()

    def write(self, data: Any) -> int:
        """Hold ``data`` until its line is complete; write every complete line, masked."""
        chunk = bytes(data)
        with self._lock:
            self._pending += chunk
            end = self._pending.rfind(b"\n") + 1
            if not end and len(self._pending) > MAX_PENDING:
                end = len(self._pending)
            if end:
                out = bytes(self._pending[:end])
                del self._pending[:end]
                self._target.write(self._mask(out))
        return len(chunk)

    def flush(self) -> None:
        """Write what is held back, even an incomplete line, then flush the target."""
        with self._lock:
            if self._pending:
                out = bytes(self._pending)
                self._pending.clear()
                self._target.write(self._mask(out))
        self._target.flush()

    def _mask(self, data: bytes) -> bytes:
        if not self._masker.active:
            return data
        # surrogateescape: bytes that are not text in this encoding survive the round trip.
        text = data.decode(self._encoding, "surrogateescape")
        return self._masker.mask(text).encode(self._encoding, "surrogateescape")


def _wrap(stream: TextIO, masker: Masker) -> TextIO | None:
    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        return None
    encoding = getattr(stream, "encoding", None) or "utf-8"
    writer = MaskingWriter(buffer, masker, encoding)
    return io.TextIOWrapper(  # type: ignore[type-var]
        writer,
        encoding=encoding,
        errors=getattr(stream, "errors", None) or "strict",
        line_buffering=True,
        write_through=True,
    )


@contextmanager
def masked_stdio(masker: Masker) -> Iterator[None]:
    """Replace ``sys.stdout``/``sys.stderr`` by masking streams for the duration.

    A stream without a binary buffer (already replaced by a test harness) is left alone.
    On exit whatever is held back is written, and the original streams are restored.
    """
    originals = (sys.stdout, sys.stderr)
    wrapped = (_wrap(sys.stdout, masker), _wrap(sys.stderr, masker))
    if wrapped[0] is not None:
        sys.stdout = wrapped[0]
    if wrapped[1] is not None:
        sys.stderr = wrapped[1]
    try:
        yield
    finally:
        for stream in wrapped:
            if stream is not None:
                # A closed pipe at exit: nothing is left to protect.
                with contextlib.suppress(Exception):
                    stream.flush()
        sys.stdout, sys.stderr = originals
