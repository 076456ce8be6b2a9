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
* a payload must hold exactly one document: trailing bytes are an error;
* a payload may not decode into more Python memory than :data:`DECODE_MEMORY_FACTOR`
  times its size plus :data:`DECODE_MEMORY_ALLOWANCE`. msgpack itself bounds lengths,
  not object counts: one byte ``0x80`` is an empty map, 64 bytes once built, so a
  frame of a million of them would take 73 times its size. Large payloads are therefore
  scanned first (``_decode_cost``), without building anything, and refused when the
  objects they describe would not fit.

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

__all__ = ["pack_view", "Packer", "packb", "unpackb", "TIMESTAMP_EXT"]

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


#: What decoding a payload may cost, in Python memory, per byte of payload. Legitimate
#: large frames are XCom values: strings (about 1x, or 4x for non-ASCII), lists of
#: numbers (4-14x) or of records (8-20x); the brief for this bound was "about 10x".
#: A value made of millions of tiny items (under about 7 bytes each on the wire) exceeds
#: it and is refused: store such a value as one string, or split it.
DECODE_MEMORY_FACTOR: Final = 10

#: What any payload may cost on top of ``DECODE_MEMORY_FACTOR`` times its size: small
#: frames (every request reply, StartupDetails) need no scan under this allowance.
DECODE_MEMORY_ALLOWANCE: Final = 4 * 1024 * 1024

#: An upper bound of Python memory per payload byte, whatever the payload: an empty map
#: is 1 byte and 72 once built (64 for the dict, 8 for its slot in the parent), and the
#: largest map also needs its (key, value) pairs while it is built, at most 36 per byte.
#: tests/test_codec.py measures generated worst cases against it.
WORST_DECODE_RATIO: Final = 112

#: What decoding any document allocates besides its objects (measured: under 2 KiB).
DECODER_BASE_COST: Final = 4096

#: Payloads up to this size cannot exceed the bound, so they are not scanned.
_NO_SCAN_BELOW: Final = DECODE_MEMORY_ALLOWANCE // (WORST_DECODE_RATIO - DECODE_MEMORY_FACTOR)

#: Deepest nesting the scan follows; msgpack's own decoder stops at 1024 too.
_MAX_DEPTH: Final = 1024

# Costs in bytes of one decoded item, each including the 8-byte slot that refers to it
# and about 2 bytes per item that the allocator and decoder keep (measured).
_SLOT: Final = 10
_BIG_INT: Final = _SLOT + 32  # ints outside CPython's cache of -5..256
_FLOAT: Final = _SLOT + 24
_DATETIME: Final = _SLOT + 48
_LIST: Final = _SLOT + 56  # plus one slot per item, counted with the item
_PAIR: Final = 72  # a (key, value) tuple and its slot in the pairs list, while a map is built


def _fixed_tables() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(cost, bytes after the first) of every first byte that starts a fixed-size scalar."""
    cost = [0] * 256
    skip = [0] * 256
    for b in range(0x80):
        cost[b] = _SLOT  # positive fixint: cached
    for b in range(0xE0, 0x100):
        cost[b] = _SLOT if b >= 0xFB else _BIG_INT  # negative fixint: -5..-1 cached
    for b in (0xC0, 0xC2, 0xC3):
        cost[b] = _SLOT  # nil, false, true
    for b, size in ((0xCA, 4), (0xCB, 8)):
        cost[b], skip[b] = _FLOAT, size
    cost[0xCC], skip[0xCC] = _SLOT, 1  # uint8: cached
    for b, size in ((0xCD, 2), (0xCE, 4), (0xCF, 8), (0xD0, 1), (0xD1, 2), (0xD2, 4), (0xD3, 8)):
        cost[b], skip[b] = _BIG_INT, size
    for b, size in ((0xD4, 2), (0xD5, 3), (0xD6, 5), (0xD7, 9), (0xD8, 17)):
        cost[b], skip[b] = _DATETIME, size  # fixext: only timestamps are accepted
    return tuple(cost), tuple(skip)


_FIXED_COST, _FIXED_SKIP = _fixed_tables()

#: First bytes of items with a length field: (kind, bytes of the length). Kinds: "s" str,
#: "b" bin, "x" ext, "a" array, "m" map. A byte in neither table is msgpack's to reject.
_SIZED: Final[dict[int, tuple[str, int]]] = {
    0xD9: ("s", 1), 0xDA: ("s", 2), 0xDB: ("s", 4),
    0xC4: ("b", 1), 0xC5: ("b", 2), 0xC6: ("b", 4),
    0xC7: ("x", 1), 0xC8: ("x", 2), 0xC9: ("x", 4),
    0xDC: ("a", 2), 0xDD: ("a", 4),
    0xDE: ("m", 2), 0xDF: ("m", 4),
}  # fmt: skip


#: Strings up to this many bytes are looked at (ASCII or not, a repeated map key).
_LOOK_AT: Final = 64


def _str_cost(text: bytes) -> int:
    if text.isascii():
        return _SLOT + 49 + len(text)
    return _SLOT + 80 + 4 * len(text)  # UCS-4 at worst: 4 bytes a character, n of them


def _dict_cost(n: int) -> int:
    # dict(pairs) in CPython 3.11-3.13, measured: 64, then 136-172 up to 5 keys, 272 up
    # to 10, then under 40 bytes a key.
    return _SLOT + (64 if n == 0 else 176 if n <= 5 else 280 if n <= 10 else 64 + 40 * n)


def _decode_cost(data: bytes, budget: int) -> int:
    """An upper bound of the Python memory decoding ``data`` takes, without decoding it.

    Walks the msgpack structure once, item by item, holding a stack of counts and the
    distinct map keys seen (msgpack interns keys, so a key repeated in every record is
    one string). Stops early, returning more than ``budget``, once the bound passes it.
    A length that runs past the payload's end stops the walk: msgpack then reports the
    payload as truncated. Every item is at least one byte, so the walk is linear.
    """
    fixed_cost, fixed_skip, sized = _FIXED_COST, _FIXED_SKIP, _SIZED
    end = len(data)
    pos = cost = widest_map = 0
    todo = 1  # items still to read at the current level
    outer: list[int] = []  # the same for each enclosing level
    keys: set[bytes] = set()
    key_next = False  # the next item is a map key (only tracked for fixmap/map items)
    in_map: list[bool] = []
    is_map = False
    while True:
        if not todo:
            if not outer or cost > budget:
                break
            todo = outer.pop()
            is_map = in_map.pop()
            continue
        if pos >= end:
            break
        todo -= 1
        key_next = is_map and todo % 2 == 1
        b = data[pos]
        pos += 1
        c = fixed_cost[b]
        if c:
            cost += c
            pos += fixed_skip[b]
            continue
        if 0xA0 <= b < 0xC0:
            n = b & 0x1F
        elif b < 0xA0:
            n = b & 0x0F
            if b < 0x90:
                cost += _dict_cost(n)
                widest_map = max(widest_map, n)
            else:
                cost += _LIST
            if n:
                if len(outer) >= _MAX_DEPTH:
                    break
                outer.append(todo)
                in_map.append(is_map)
                is_map = b < 0x90
                todo = 2 * n if is_map else n
            continue
        else:
            kind, size = sized.get(b, ("", 0))
            if not kind or pos + size > end:
                break
            n = int.from_bytes(data[pos : pos + size], "big")
            pos += size
            if n > end - pos:
                break  # longer than what is left: truncated, which msgpack reports
            if kind == "s":
                pass
            elif kind == "b":
                cost += _SLOT + 33 + n
                pos += n
                continue
            elif kind == "x":
                cost += _DATETIME
                pos += n + 1
                continue
            else:
                if kind == "m":
                    cost += _dict_cost(n)
                    widest_map = max(widest_map, n)
                else:
                    cost += _LIST
                if cost > budget:
                    break
                if n:
                    if len(outer) >= _MAX_DEPTH:
                        break
                    outer.append(todo)
                    in_map.append(is_map)
                    is_map = kind == "m"
                    todo = 2 * n if is_map else n
                continue
        # A string of n bytes at pos. Long ones are costed at their worst without
        # looking (no copy); a map key costs only the first time it is seen.
        if n > _LOOK_AT:
            cost += _SLOT + 80 + 4 * n
        else:
            text = data[pos : pos + n]
            if key_next:
                if text in keys:
                    pos += n
                    continue
                keys.add(text)
            cost += _str_cost(text)
        pos += n
    return DECODER_BASE_COST + cost + _PAIR * widest_map


def _check_decode_cost(payload: bytes | bytearray | memoryview) -> None:
    size = len(payload)
    if size < _NO_SCAN_BELOW:
        return
    budget = DECODE_MEMORY_FACTOR * size + DECODE_MEMORY_ALLOWANCE
    # A memoryview is copied once to bytes, so that string slices can be inspected.
    data = payload if type(payload) is bytes else bytes(payload)
    cost = _decode_cost(data, budget)
    if cost > budget:
        raise RemoteProtocolError(
            f"a {size}-byte msgpack document would take over {budget} bytes of memory to "
            f"decode ({DECODE_MEMORY_FACTOR}x its size + {DECODE_MEMORY_ALLOWANCE}): it is "
            "made of too many tiny items"
        )


def unpackb(payload: bytes | bytearray | memoryview) -> Any:
    """Decode exactly one msgpack document from a frame payload.

    Raises:
        RemoteProtocolError: for any payload that is not one strict msgpack document,
            or that would take more memory to decode than the bound above allows.
    """
    _check_decode_cost(payload)
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
        pack: Callable[[Any], bytes] = _msgpack_packer(autoreset=True).pack
        return pack

    def packb(self, obj: Any) -> bytes:
        """Encode one document.

        Raises:
            LocalProtocolError: the value cannot be encoded (unknown type, naive
                datetime, integer outside 64 bits).
        """
        data: bytes = _run_packer(self._pack, obj)
        if len(data) > _KEEP_BUFFER:
            # A Packer keeps its grown buffer: drop it now, or a 64 MiB XCom would stay
            # resident and raise the peak of every later large send by a third.
            self._pack = self._new()
        return data


def _msgpack_packer(*, autoreset: bool) -> msgpack.Packer:
    return msgpack.Packer(use_bin_type=True, datetime=True, default=_default, autoreset=autoreset)


def _run_packer(pack: Callable[[Any], Any], obj: Any) -> Any:
    """Call ``pack(obj)``, turning msgpack's refusals into LocalProtocolError."""
    try:
        return pack(obj)
    except LocalProtocolError:
        raise
    except (ValueError, OverflowError, TypeError) as exc:
        raise LocalProtocolError(f"cannot encode ({type(exc).__name__}: {exc})") from None


def pack_view(obj: Any) -> memoryview:
    """Encode one large document into a buffer of its own and return a view of it.

    :meth:`Packer.packb` copies the packer's buffer into a new ``bytes``: for a 64 MiB
    value that is a second copy of it. This view *is* the packer's buffer (the view
    keeps it alive), so the encoding exists once until it is written. Safe from any
    thread; a fresh packer costs microseconds, nothing next to a large document.

    Raises:
        LocalProtocolError: the value cannot be encoded.
    """
    packer = _msgpack_packer(autoreset=False)
    _run_packer(packer.pack, obj)
    view: memoryview = packer.getbuffer()
    return view


def packb(obj: Any) -> bytes:
    """Encode one document (see :class:`Packer`; this one is safe from any thread).

    Raises:
        LocalProtocolError: the value cannot be encoded.
    """
    return Packer().packb(obj)
