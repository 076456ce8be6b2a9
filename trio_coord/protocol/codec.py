"""msgpack, strictly: the only module that calls the msgpack library.

Theory of operation
-------------------
The supervisor encodes with msgspec (protocol.md §3.4): maps with string keys, text
as msgpack ``str``, aware date-times as the timestamp extension (type -1), UUIDs as
strings. Decoding here is deliberately narrower than msgpack itself:

* text must be valid UTF-8 and is returned as ``str``;
* map keys must be ``str`` (a ``bin`` or integer key is rejected), and a key may not
  appear twice in one map: msgpack would silently keep the last value, which hides a
  broken or hostile peer;
* the timestamp extension becomes an aware UTC ``datetime``; any other extension type
  is rejected, because nothing in the protocol uses one;
* a payload must hold exactly one document: trailing bytes are an error.

Whatever goes wrong inside msgpack - ``ValueError`` and its subclasses (``ExtraData``,
``FormatError``, ``StackError``, ``UnicodeDecodeError``), ``OverflowError`` (a
timestamp beyond ``datetime``'s range), ``UnpackException`` (``BufferFull``, not a
``ValueError``), ``TypeError`` or ``MemoryError`` - leaves this module as one
:class:`RemoteProtocolError` that says what was wrong. Encoding failures become
:class:`LocalProtocolError`: nothing half-encoded is ever sent.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable
from typing import Any, Final

import msgpack

from ..errors import LocalProtocolError, RemoteProtocolError, describe

__all__ = ["Packer", "packb", "unpackb", "TIMESTAMP_EXT"]

#: msgpack's reserved extension type for timestamps.
TIMESTAMP_EXT = -1

_STR_ONLY = {str}


def _pairs_to_map(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    # Fast path, all in C: no key was repeated (the dict is as long as the pair list)
    # and every key is a str. Anything else takes the loop below, which finds the first
    # offending pair and so reports exactly what it always did.
    out = dict(pairs)
    if len(out) == len(pairs) and (not out or set(map(type, out)) == _STR_ONLY):
        return out
    out = {}
    for key, value in pairs:
        if type(key) is not str:
            raise RemoteProtocolError(
                f"map key {describe(key)} is a {type(key).__name__}, not a string"
            )
        if key in out:
            raise RemoteProtocolError(f"duplicate map key {describe(key)}")
        out[key] = value
    return out


def _reject_ext(code: int, data: bytes) -> Any:
    # Only reached for codes other than -1: timestamps are decoded by msgpack itself.
    raise RemoteProtocolError(f"unsupported msgpack extension type {code} ({len(data)} bytes)")


def unpackb(payload: bytes | bytearray | memoryview) -> Any:
    """Decode exactly one msgpack document from a frame payload.

    Raises:
        RemoteProtocolError: for any payload that is not one strict msgpack document.
    """
    try:
        return msgpack.unpackb(
            payload,
            raw=False,
            strict_map_key=True,
            object_pairs_hook=_pairs_to_map,
            ext_hook=_reject_ext,
            timestamp=3,  # -> aware UTC datetime
            use_list=True,
        )
    except RemoteProtocolError:
        raise
    except msgpack.ExtraData as exc:
        raise RemoteProtocolError(
            f"trailing bytes after the msgpack document ({len(exc.extra)} bytes)"
        ) from None
    except (ValueError, OverflowError, msgpack.UnpackException, TypeError, MemoryError) as exc:
        raise RemoteProtocolError(
            f"undecodable msgpack ({type(exc).__name__}: {exc or 'malformed input'})"
        ) from None


def _default(obj: Any) -> Any:
    if isinstance(obj, uuid.UUID):
        return str(obj)
    if isinstance(obj, datetime.datetime):
        # msgpack converts exact aware datetimes itself, before this hook runs; an aware
        # *subclass* (pendulum's DateTime, which Airflow code hands around) arrives here.
        if obj.utcoffset() is not None:
            return msgpack.Timestamp.from_datetime(obj)
        raise LocalProtocolError(f"naive datetime {obj.isoformat()} cannot be sent; make it aware")
    raise LocalProtocolError(f"cannot encode a {type(obj).__name__} value")


#: Output size above which a Packer's internal buffer is dropped after use.
_KEEP_BUFFER: Final = 1024 * 1024


class Packer:
    """Encodes documents the way the real supervisor expects to read them.

    Holds one ``msgpack.Packer``: ``msgpack.packb`` builds a new one on every call,
    which is most of the cost of a small frame. Not thread-safe, so every connection
    owns one.
    """

    __slots__ = ("_pack",)

    def __init__(self) -> None:
        self._pack = self._new()

    @staticmethod
    def _new() -> Callable[[Any], bytes]:
        pack: Callable[[Any], bytes] = msgpack.Packer(
            use_bin_type=True, datetime=True, default=_default
        ).pack
        return pack

    def packb(self, obj: Any) -> bytes:
        """Encode one document.

        Raises:
            LocalProtocolError: the value cannot be encoded (unknown type, naive
                datetime, integer outside 64 bits).
        """
        try:
            data: bytes = self._pack(obj)
        except LocalProtocolError:
            raise
        except (ValueError, OverflowError, TypeError) as exc:
            raise LocalProtocolError(f"cannot encode ({type(exc).__name__}: {exc})") from None
        if len(data) > _KEEP_BUFFER:
            # A Packer keeps its grown buffer: drop it now, or a 64 MiB XCom would stay
            # resident and raise the peak of every later large send by a third.
            self._pack = self._new()
        return data


def packb(obj: Any) -> bytes:
    """Encode one document (see :class:`Packer`; this one is safe from any thread).

    Raises:
        LocalProtocolError: the value cannot be encoded.
    """
    return Packer().packb(obj)
