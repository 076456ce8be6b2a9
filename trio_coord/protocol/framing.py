"""Length-prefixed framing of the comm channel (protocol.md §3.1).

Theory of operation
-------------------
Every message, in both directions, is a 4-byte big-endian unsigned length followed
by exactly that many bytes of msgpack. There is nothing else on the wire: no magic,
no version, no checksum. A stream socket hands us arbitrary slices of that byte
stream, so :class:`FrameDecoder` accumulates bytes and hands out whole payloads.

Two rules protect the runtime from a hostile or broken peer:

* The declared length is compared with ``max_frame_size`` as soon as the 4 prefix
  bytes are known, *before* any of the body is buffered (h2's ``FrameBuffer`` and
  h11's ``max_incomplete_event_size`` do the same). A peer that claims 4 GiB gets a
  :class:`RemoteProtocolError` after 4 bytes, not after we have tried to hold them.
* A zero-length frame is an error: msgpack has no empty document, and the real
  supervisor's own reader wedges on one (§12 row 4).

EOF (``receive_data(b"")``) between frames is a clean end; EOF inside a prefix or a
body is an error, because the half frame can never be completed.
"""

from __future__ import annotations

import enum
import struct
from typing import Final, NoReturn

from ..errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "PREFIX_SIZE",
    "WIRE_MAX_FRAME_SIZE",
    "DEFAULT_MAX_FRAME_SIZE",
    "NeedData",
    "NEED_DATA",
    "FrameDecoder",
    "encode_frame",
    "frame_prefix",
]

#: Bytes of the big-endian length prefix.
PREFIX_SIZE: Final = 4

#: The largest payload the prefix can express (2**32 - 1).
WIRE_MAX_FRAME_SIZE: Final = 2**32 - 1

#: Default cap on an inbound payload: 256 MiB.
#:
#: Why this number: the largest frames a runtime receives are XCom values
#: (``XComResult``, ``XComSequenceSliceResult``). Airflow stores XComs in its metadata
#: database, where the default ``[core] max_xcom_size`` ceilings and practical
#: database rows are far below 256 MiB, while a 64 MiB value (the benchmark's largest)
#: still fits four times over. Memory held for one frame is therefore bounded by a
#: figure a worker can always afford. It is a keyword argument everywhere, and
#: ``TRIO_COORD_MAX_FRAME_SIZE`` (``Config.max_frame_size``) changes it; see docs/protocol.md.
DEFAULT_MAX_FRAME_SIZE: Final = 256 * 1024 * 1024

_read_prefix: Final = struct.Struct(">I").unpack_from

#: Bodies up to this size are copied out with a plain slice; larger ones through a
#: memoryview, so that a big frame is copied once and not twice (see next_frame).
_SMALL_FRAME: Final = 64 * 1024


class NeedData(enum.Enum):
    """Sentinel type: the decoder needs more bytes before it can yield a frame."""

    #: More bytes are needed.
    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = NeedData.NEED_DATA


class FrameDecoder:
    """Turns a byte stream, fed in any chunking, into whole frame payloads.

    ``receive_data(b)`` appends bytes (``b""`` means EOF); ``next_frame()`` returns one
    payload, ``NEED_DATA``, or ``None`` after a clean EOF. Errors are sticky: once the
    stream is known to be broken, every later call raises the same error.
    """

    __slots__ = ("_buf", "_eof", "_error", "_need", "_pos", "_scan", "max_frame_size")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        if not 1 <= max_frame_size <= WIRE_MAX_FRAME_SIZE:
            raise ValueError(f"max_frame_size must be in 1..{WIRE_MAX_FRAME_SIZE}")
        self.max_frame_size = max_frame_size
        self._buf = bytearray()
        self._pos = 0  # consumed prefix of _buf; compacted lazily to keep appends O(1)
        self._scan = 0  # offset in _buf of the first length prefix not yet checked
        self._need = -1  # body length of the frame in progress, -1 while reading a prefix
        self._eof = False
        self._error: RemoteProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet handed out as a frame."""
        return len(self._buf) - self._pos

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes from the peer; ``b""`` marks end of stream."""
        if self._eof:
            if data:
                raise LocalProtocolError("receive_data() after EOF")
            return
        if not data:
            self._eof = True
            return
        buf = self._buf
        buf += data
        # Check every prefix as soon as its 4 bytes are here, before any body behind it is
        # kept: after a zero or oversize length, nothing past the prefix is ever buffered,
        # however the caller interleaves receive_data() and next_frame().
        scan, end, limit = self._scan, len(buf), self.max_frame_size
        while scan + PREFIX_SIZE <= end:
            (size,) = _read_prefix(buf, scan)
            if size == 0 or size > limit:
                del buf[scan + PREFIX_SIZE :]  # next_frame() raises on reaching it
                break
            scan += PREFIX_SIZE + size
        self._scan = scan

    def next_frame(self) -> bytes | NeedData | None:
        """Return the next complete payload, ``NEED_DATA``, or ``None`` at a clean EOF.

        Raises:
            RemoteProtocolError: the stream is broken (zero or oversized length,
                EOF inside a frame). The error is sticky.
        """
        if self._error is not None:
            raise self._error
        avail = len(self._buf) - self._pos
        if not avail and not self._eof:
            return NEED_DATA  # the common case after the last frame of a read
        if self._need < 0:
            if avail < PREFIX_SIZE:
                return self._at_shortfall(avail, "length prefix")
            (size,) = _read_prefix(self._buf, self._pos)
            if size == 0:
                self._fail("zero-length frame (a frame must carry a msgpack document)")
            if size > self.max_frame_size:
                self._fail(
                    f"frame declares {size} bytes, more than the limit of "
                    f"{self.max_frame_size} bytes"
                )
            self._pos += PREFIX_SIZE
            self._need = size
            avail -= PREFIX_SIZE
        if avail < self._need:
            return self._at_shortfall(avail, f"{self._need}-byte frame body")
        end = self._pos + self._need
        if self._need <= _SMALL_FRAME:
            payload = bytes(self._buf[self._pos : end])
        else:
            # One copy, straight out of the buffer: slicing the bytearray first would copy
            # a large frame twice (bytearray slice, then bytes), i.e. 3x its size at peak.
            with memoryview(self._buf) as view, view[self._pos : end] as body:
                payload = body.tobytes()
        self._pos = end
        self._need = -1
        if self._pos == len(self._buf):
            self._buf.clear()
            self._scan -= self._pos
            self._pos = 0
        elif self._pos > 65536 and self._pos * 2 > len(self._buf):
            del self._buf[: self._pos]
            self._scan -= self._pos
            self._pos = 0
        return payload

    def _at_shortfall(self, avail: int, what: str) -> NeedData | None:
        if not self._eof:
            return NEED_DATA
        if avail == 0 and self._need < 0:
            return None
        self._fail(f"connection closed inside a {what} ({avail} bytes received)")

    def _fail(self, message: str) -> NoReturn:
        self._error = RemoteProtocolError(message)
        raise self._error


def frame_prefix(size: int) -> bytes:
    """The length prefix of a payload of ``size`` bytes, written before it.

    A large payload is written as two buffers, prefix then payload, so that it is never
    copied into one frame (the caller writes both, in order, before any other frame).

    Raises:
        LocalProtocolError: the payload is empty or longer than the wire allows.
    """
    if size == 0:
        raise LocalProtocolError("refusing to send a zero-length frame")
    if size > WIRE_MAX_FRAME_SIZE:
        raise LocalProtocolError(f"payload of {size} bytes exceeds the 4-byte length prefix")
    return size.to_bytes(PREFIX_SIZE, "big")


def encode_frame(payload: bytes) -> bytes:
    """Prefix one payload with its length, as a single buffer for one ``send_all``.

    Raises:
        LocalProtocolError: the payload is empty or longer than the wire allows.
    """
    return frame_prefix(len(payload)) + payload
