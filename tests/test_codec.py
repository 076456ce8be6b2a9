"""The strict msgpack codec (protocol.md §3.4): what decodes, to what, and what is refused.

The ``CASES`` table holds payloads as the supervisor (msgspec) or a broken peer would write
them. Each is framed and fed to a FrameDecoder whole, one byte at a time and with trailing
junk, and the payload must decode to the expected value or raise RemoteProtocolError.
"""

from __future__ import annotations

import datetime
import tracemalloc
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack
import msgspec
import pendulum
import pytest
from helpers import MAX_MSGPACK_DEPTH, FrameFactory
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_coord.errors import LocalProtocolError, RemoteProtocolError
from trio_coord.protocol import codec
from trio_coord.protocol.framing import NEED_DATA, FrameDecoder

f = FrameFactory()
UTC = datetime.UTC


def utc(*args: int) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=UTC)


@dataclass(frozen=True)
class Case:
    id: str
    payload: bytes
    #: The decoded value, or for a refusal the regex its RemoteProtocolError must match.
    expected: Any
    refused: bool = False


def ok(id: str, payload: bytes, expected: Any) -> Case:
    return Case(id, payload, expected)


def bad(id: str, payload: bytes, match: str) -> Case:
    return Case(id, payload, match, refused=True)


CASES = [
    # -- scalars, in every msgpack form the supervisor may pick --------------------------
    ok("nil", f.encode(None), None),
    ok("false", f.encode(False), False),
    ok("true", f.encode(True), True),
    ok("positive fixint", f.encode(5), 5),
    ok("negative fixint", f.encode(-5), -5),
    ok("uint8", f.encode(200), 200),
    ok("uint16", f.encode(60_000), 60_000),
    ok("uint32", f.encode(2**32 - 1), 2**32 - 1),
    ok("uint64", f.encode(2**64 - 1), 2**64 - 1),
    ok("int8", f.encode(-100), -100),
    ok("int16", f.encode(-30_000), -30_000),
    ok("int32", f.encode(-(2**31)), -(2**31)),
    ok("int64", f.encode(-(2**63)), -(2**63)),
    ok("float64", f.encode(1.5), 1.5),
    ok("float32", b"\xca\x3f\xc0\x00\x00", 1.5),
    # -- text is str, bytes are bytes --------------------------------------------------
    ok("empty str", f.encode(""), ""),
    ok("fixstr", f.encode("abc"), "abc"),
    ok("str8", f.encode("x" * 40), "x" * 40),
    ok("str16", f.encode("x" * 300), "x" * 300),
    ok("str32", f.raw_str(b"y" * 70_000), "y" * 70_000),
    ok("non-ascii str", f.encode("h\u00e9\u2603\U0001f600"), "h\u00e9\u2603\U0001f600"),
    ok("bin value", f.raw_bin(b"\x00\xff"), b"\x00\xff"),
    bad("invalid utf-8", f.raw_str(b"\xff\xfe"), "UnicodeDecodeError"),
    bad("invalid utf-8 inside a map", f.invalid_utf8_payload(), "UnicodeDecodeError"),
    bad("lone surrogate", f.raw_str(b"\xed\xa0\x80"), "UnicodeDecodeError"),
    # -- containers ------------------------------------------------------------------------
    ok("array", f.encode([1, "a", None]), [1, "a", None]),
    ok("array16", f.encode(list(range(20))), list(range(20))),
    ok("map", f.encode({"a": 1, "b": [2]}), {"a": 1, "b": [2]}),
    ok("map16", f.encode({str(i): i for i in range(20)}), {str(i): i for i in range(20)}),
    ok("nested maps", f.encode({"a": {"b": {"c": {}}}}), {"a": {"b": {"c": {}}}}),
    ok("deepest nesting", f.deep_nesting_payload(MAX_MSGPACK_DEPTH), "deep"),
    bad("nesting too deep", f.deep_nesting_payload(MAX_MSGPACK_DEPTH + 1), "StackError"),
    # -- map keys --------------------------------------------------------------------------
    bad("int key", f.int_key_payload(), "int is not allowed for map key"),
    bad("bin key", f.bin_key_payload(), "map key b'type' is a bytes"),
    bad("nil key", f.raw_map((f.encode(None), f.encode(1))), "NoneType is not allowed"),
    bad("array key", f.raw_map((f.encode([1]), f.encode(1))), "list is not allowed"),
    bad("duplicate key", f.duplicate_keys_payload(), "duplicate map key 'type'"),
    bad(
        "duplicate key in a nested map",
        f.raw_map((f.encode("ti"), f.duplicate_keys_payload("id"))),
        "duplicate map key 'id'",
    ),
    # -- timestamps: all three forms decode to aware UTC datetimes -------------------------
    ok("timestamp 32-bit", bytes.fromhex("d6ff65937d25"), utc(2024, 1, 2, 3, 4, 5)),
    ok(
        "timestamp 64-bit",
        bytes.fromhex("d7ff00000fa065937d25"),
        utc(2024, 1, 2, 3, 4, 5, 1),
    ),
    ok(
        "timestamp 96-bit",
        bytes.fromhex("c70cff00000000ffffffffed300880"),
        utc(1960, 1, 1),
    ),
    ok("timestamp epoch", f.timestamp32(0), utc(1970, 1, 1)),
    ok("timestamp 32-bit max", f.timestamp32(2**32 - 1), utc(2106, 2, 7, 6, 28, 15)),
    ok("timestamp ns truncated to us", f.timestamp64(0, 1999), utc(1970, 1, 1, 0, 0, 0, 1)),
    ok("timestamp year 1", f.timestamp96(-62135596800, 0), utc(1, 1, 1)),
    ok(
        "timestamp year 9999",
        f.timestamp96(253402300799, 999_999_000),
        utc(9999, 12, 31, 23, 59, 59, 999_999),
    ),
    ok(
        "timestamp from msgspec",
        f.encode(utc(2024, 5, 6, 7, 8, 9, 10)),
        utc(2024, 5, 6, 7, 8, 9, 10),
    ),
    bad("timestamp beyond year 9999", f.timestamp96(253402300800, 0), "undecodable msgpack"),
    bad("timestamp before year 1", f.timestamp96(-62135596801, 0), "undecodable msgpack"),
    bad("timestamp far future", f.out_of_range_timestamp_payload(), "OverflowError"),
    bad("timestamp most negative", f.timestamp96(-(2**63), 0), "OverflowError"),
    bad("timestamp 64-bit ns too big", f.timestamp64(0, 10**9), "nanoseconds"),
    bad("timestamp 96-bit ns too big", f.timestamp96(0, 10**9), "nanoseconds"),
    bad("timestamp of 5 bytes", f.raw_ext(-1, b"\x00" * 5), "timestamp"),
    bad("timestamp of 16 bytes", f.raw_ext(-1, b"\x00" * 16), "timestamp"),
    # -- other extension types ---------------------------------------------------------
    bad("ext type 5", f.unknown_ext_payload(5), "unsupported msgpack extension type 5"),
    bad("ext type 0", f.unknown_ext_payload(0), "extension type 0"),
    bad("ext type 127", f.unknown_ext_payload(127), "extension type 127"),
    bad("ext type -2", f.unknown_ext_payload(-2), "extension type -2"),
    bad("ext type -128", f.unknown_ext_payload(-128), "extension type -128"),
    bad("ext inside a map", f.raw_map((f.encode("a"), f.raw_ext(9, b""))), "extension type 9"),
    # -- one document, whole and alone -----------------------------------------------------
    bad("trailing byte", f.trailing_bytes_payload(), r"trailing bytes .*\(1 bytes\)"),
    bad("two documents", f.encode([1]) + f.encode({"a": 1}), r"trailing bytes .*\(4 bytes\)"),
    bad("garbage byte", f.GARBAGE, "FormatError"),
    bad("truncated str", f.encode("abcdef")[:-2], "incomplete input"),
    bad("truncated map", f.encode({"a": 1, "b": 2})[:-1], "incomplete input"),
    bad("array header without items", b"\xdd\xff\xff\xff\xff", "exceeds max_array_len"),
    bad("map header without items", b"\xdf\xff\xff\xff\xff", "exceeds max_map_len"),
    bad("str header without text", b"\xdb\xff\xff\xff\xff", "undecodable msgpack"),
]

#: Stands for the value of the "deepest nesting" case, built lazily (it is 1024 lists deep).
_DEEP: Any = None
for _ in range(MAX_MSGPACK_DEPTH):
    _DEEP = [_DEEP]


def expected_value(case: Case) -> Any:
    return _DEEP if case.expected == "deep" else case.expected


def typed(value: Any) -> Any:
    """A comparable form of ``value`` that also tells True from 1 and 1.0 from 1."""
    stack = [value]
    # Deep values are compared iteratively, so the 1024-deep case does not hit the recursion limit.
    out: list[Any] = []
    while stack:
        v = stack.pop()
        if type(v) is list:
            out.append(("list", len(v)))
            stack.extend(reversed(v))
        elif type(v) is dict:
            out.append(("dict", tuple(v)))
            stack.extend(reversed(list(v.values())))
        elif type(v) is datetime.datetime:
            out.append(("datetime", v, v.utcoffset()))
        else:
            out.append((type(v).__name__, v))
    return out


def decode_stream(chunks: list[bytes]) -> list[Any]:
    """Frame-decode ``chunks`` and codec-decode each payload: a value or the error, per frame."""
    dec = FrameDecoder()
    results: list[Any] = []
    for chunk in chunks:
        dec.receive_data(chunk)
        while (payload := dec.next_frame()) is not NEED_DATA:
            assert isinstance(payload, bytes)
            try:
                results.append(codec.unpackb(payload))
            except RemoteProtocolError as exc:
                results.append(exc)
    return results


CHUNKINGS: dict[str, Callable[[bytes], list[bytes]]] = {
    "whole": lambda data: [data],
    "bytewise": lambda data: [data[i : i + 1] for i in range(len(data))],
    "junk": lambda data: [data + b"\x00\x00\x00"],
}


@pytest.mark.parametrize("chunking", CHUNKINGS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_table(case: Case, chunking: str) -> None:
    """Each payload decodes to its value or is refused with RemoteProtocolError, however it arrives."""
    results = decode_stream(CHUNKINGS[chunking](f.frame(case.payload)))
    assert len(results) == 1
    (result,) = results
    if case.refused:
        assert isinstance(result, RemoteProtocolError), result
        with pytest.raises(RemoteProtocolError, match=case.expected):
            raise result
    else:
        assert not isinstance(result, Exception), result
        assert typed(result) == typed(expected_value(case))


#: Accepted cases msgspec reads differently, and why (neither matters for real supervisor output).
MSGSPEC_DIFFERS = {
    "deepest nesting": "msgspec's decoder recurses and hits Python's recursion limit first",
    "timestamp ns truncated to us": "msgspec rounds nanoseconds to the nearest microsecond",
}


@pytest.mark.parametrize(
    "case", [c for c in CASES if not c.refused and c.id not in MSGSPEC_DIFFERS], ids=lambda c: c.id
)
def test_table_against_msgspec(case: Case) -> None:
    """What we accept, the supervisor's own decoder (msgspec) reads as the same value."""
    assert typed(msgspec.msgpack.decode(case.payload)) == typed(expected_value(case))


def test_timestamps_decode_to_utc() -> None:
    """Every timestamp form decodes to a datetime whose tzinfo is UTC, not merely some offset."""
    for payload in (f.timestamp32(1), f.timestamp64(1, 5000), f.timestamp96(-1, 0)):
        value = codec.unpackb(payload)
        assert isinstance(value, datetime.datetime)
        assert value.tzinfo is UTC


# -- every msgpack failure becomes RemoteProtocolError ---------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("v"),
        OverflowError("o"),
        TypeError("t"),
        MemoryError(),
        msgpack.UnpackException("u"),
        msgpack.exceptions.BufferFull(),
        msgpack.exceptions.OutOfData(),
        msgpack.exceptions.FormatError(),
        msgpack.exceptions.StackError(),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_every_library_error_becomes_remote(
    exc: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever msgpack raises, including OverflowError and UnpackException, leaves as RemoteProtocolError."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise exc

    monkeypatch.setattr(codec.msgpack, "unpackb", broken)
    with pytest.raises(RemoteProtocolError, match=type(exc).__name__) as info:
        codec.unpackb(b"\xc0")
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_overflow_error_path_is_real() -> None:
    """A timestamp too large for datetime makes msgpack raise OverflowError, which we convert."""
    with pytest.raises(OverflowError):
        msgpack.unpackb(f.out_of_range_timestamp_payload(), timestamp=3)
    with pytest.raises(RemoteProtocolError, match="OverflowError"):
        codec.unpackb(f.out_of_range_timestamp_payload())


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_accepts_any_bytes_like(kind: Callable[[bytes], Any]) -> None:
    """unpackb decodes bytes, bytearray and memoryview payloads alike."""
    assert codec.unpackb(kind(f.encode({"a": [1]}))) == {"a": [1]}


# -- encoding --------------------------------------------------------------------------------


class _SubDatetime(datetime.datetime):
    """A datetime subclass, as pendulum's DateTime (what Airflow code hands around) is."""


PLUS_2 = datetime.timezone(datetime.timedelta(hours=2))

ENCODE_CASES = [
    ("utc datetime", utc(2024, 1, 2, 3, 4, 5), bytes.fromhex("d6ff65937d25")),
    ("microseconds", utc(2024, 1, 2, 3, 4, 5, 1), bytes.fromhex("d7ff00000fa065937d25")),
    ("pre-1970", utc(1960, 1, 1), bytes.fromhex("c70cff00000000ffffffffed300880")),
    (
        "offset datetime",
        datetime.datetime(2024, 1, 2, 5, 4, 5, tzinfo=PLUS_2),
        bytes.fromhex("d6ff65937d25"),
    ),
    (
        "aware datetime subclass",
        _SubDatetime(2024, 1, 2, 5, 4, 5, tzinfo=PLUS_2),
        bytes.fromhex("d6ff65937d25"),
    ),
    ("pendulum DateTime", pendulum.datetime(2024, 1, 2, 3, 4, 5), bytes.fromhex("d6ff65937d25")),
    ("uuid", uuid.UUID(int=1), f.encode("00000000-0000-0000-0000-000000000001")),
    ("str", "h\u00e9", f.encode("h\u00e9")),
    ("bytes as bin", b"\x00", b"\xc4\x01\x00"),
    ("tuple as array", (1, 2), b"\x92\x01\x02"),
    ("uint64", 2**64 - 1, f.encode(2**64 - 1)),
    ("int64", -(2**63), f.encode(-(2**63))),
]


@pytest.mark.parametrize(
    ("value", "wire"), [c[1:] for c in ENCODE_CASES], ids=[c[0] for c in ENCODE_CASES]
)
def test_encoding(value: Any, wire: bytes) -> None:
    """Aware datetimes go out as timestamps of the same instant and UUIDs as canonical strings."""
    assert codec.packb(value) == wire


@pytest.mark.parametrize(
    ("value", "wire"), [c[1:] for c in ENCODE_CASES], ids=[c[0] for c in ENCODE_CASES]
)
def test_encoding_is_what_msgspec_reads(value: Any, wire: bytes) -> None:
    """msgspec, the supervisor's decoder, reads what we encode as the value we meant."""
    theirs = msgspec.msgpack.decode(codec.packb(value))
    if isinstance(value, uuid.UUID):
        assert theirs == str(value)
    elif isinstance(value, tuple):
        assert theirs == list(value)
    else:
        assert theirs == value


def test_encoded_datetime_round_trips_as_utc() -> None:
    """An aware datetime with an offset comes back from our own decoder as the same instant in UTC."""
    sent = datetime.datetime(2024, 1, 2, 5, 4, 5, 123456, tzinfo=PLUS_2)
    back = codec.unpackb(codec.packb({"at": sent}))["at"]
    assert back == sent and back.tzinfo is UTC


class _Unknown:
    pass


REFUSED = [
    ("naive datetime", datetime.datetime(2024, 1, 2), "naive datetime"),
    ("naive datetime subclass", _SubDatetime(2024, 1, 2), "naive datetime"),
    ("naive inside a map", {"end_date": datetime.datetime(2024, 1, 2)}, "naive datetime"),
    ("int beyond uint64", 2**64, "cannot encode"),
    ("int below int64", -(2**63) - 1, "cannot encode"),
    ("lone surrogate", "\ud800", "cannot encode"),
    ("date", datetime.date(2024, 1, 2), "cannot encode a date"),
    ("set", {1}, "cannot encode a set"),
    ("object", _Unknown(), "cannot encode a _Unknown"),
]


@pytest.mark.parametrize(("value", "match"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_encoding_refusals(value: Any, match: str) -> None:
    """Values the supervisor would not read (naive datetimes above all) raise LocalProtocolError."""
    with pytest.raises(LocalProtocolError, match=match):
        codec.packb(value)


def test_a_packer_does_not_keep_a_large_buffer() -> None:
    """After a large document the Packer lets its buffer go (a 64 MiB XCom must not stay)."""
    import gc
    import tracemalloc

    packer = codec.Packer()
    packer.packb(["warm", "up"])
    gc.collect()
    tracemalloc.start()
    try:
        data = packer.packb("x" * (8 << 20))
        assert len(data) > 8 << 20
        del data
        gc.collect()
        held, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 1 << 20
    assert codec.unpackb(packer.packb([1, "small"])) == [1, "small"]  # still works


# -- the decode memory bound -------------------------------------------------------------


def _array_of(count: int, item: bytes) -> bytes:
    """An array32 of ``count`` copies of one encoded item."""
    return b"\xdd" + count.to_bytes(4, "big") + item * count


def _peak_while(call: Callable[[], Any]) -> tuple[int, Any]:
    """Peak traced memory (bytes) while ``call`` runs, and what it returned or raised."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        result: Any = call()
    except RemoteProtocolError as exc:
        result = exc
    finally:
        _cur, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak, result


def _bound(size: int) -> int:
    return codec.DECODE_MEMORY_FACTOR * size + codec.DECODE_MEMORY_ALLOWANCE


#: Frames within the frame limit that decode to far more objects than bytes (each ratio
#: measured on CPython 3.11 without the bound), and legitimate large values beside them.
NASTY = {
    "empty maps (73x)": _array_of(100_000, b"\x80"),
    "empty arrays (65x)": _array_of(100_000, b"\x90"),
    "arrays of one empty array (65x)": _array_of(100_000, b"\x91\x90"),
    "maps {a: 1} (48x)": _array_of(100_000, b"\x81\xa1a\x01"),
    "negative ints -20 (41x)": _array_of(200_000, b"\xec"),
    "two-letter strings (20x)": _array_of(400_000, b"\xa2ab"),
    "one map of 100k distinct keys to {} (29x)": b"\xdf"
    + (100_000).to_bytes(4, "big")
    + b"".join(msgpack.packb(f"k{i}") + b"\x80" for i in range(100_000)),
}
LEGITIMATE = {
    "a 16 MiB string": msgpack.packb("x" * (16 << 20)),
    "300k ints": msgpack.packb(list(range(1000, 301_000))),
    "50k records": msgpack.packb([{"id": i, "name": f"n{i}", "v": i / 2} for i in range(50_000)]),
    "300k short ids": msgpack.packb([f"id{i}" for i in range(300_000)]),
    "300k floats": msgpack.packb([i / 3 for i in range(300_000)]),
}


@pytest.mark.parametrize("payload", NASTY.values(), ids=NASTY.keys())
def test_many_tiny_items_are_refused_before_they_are_built(payload: bytes) -> None:
    """A frame that would decode past 10x its size (+ the allowance) is refused, and refusing it stays under the bound."""
    peak, result = _peak_while(lambda: codec.unpackb(payload))
    assert isinstance(result, RemoteProtocolError)
    assert "too many tiny items" in str(result)
    assert peak <= _bound(len(payload))


@pytest.mark.parametrize("payload", LEGITIMATE.values(), ids=LEGITIMATE.keys())
def test_large_legitimate_values_decode_within_the_bound(payload: bytes) -> None:
    """Big XCom-like values (a string, numbers, records) still decode, within 10x their size + the allowance."""
    peak, result = _peak_while(lambda: codec.unpackb(payload))
    assert not isinstance(result, RemoteProtocolError), result
    assert peak <= _bound(len(payload))


# Items that cost the most per wire byte, as building blocks of generated frames.
_TINY = st.sampled_from([b"\x80", b"\x90", b"\xec", b"\xc0", b"\x05", b"\xa2ab", b"\xa1z",
                         b"\xcd\x03\xe8", b"\xd0\x80", b"\xcb" + bytes(8), b"\xd6\xff\x00\x00\x00\x01",
                         b"\xc4\x00", b"\xa3\xe4\xb8\x80"])  # fmt: skip


@st.composite
def _nasty_documents(draw: st.DrawFn) -> bytes:
    """An array of many small, possibly nested, items (valid msgpack)."""

    def node(depth: int) -> bytes:
        kind = draw(st.sampled_from(["leaf", "leaf", "array", "map"] if depth < 4 else ["leaf"]))
        if kind == "leaf":
            return draw(_TINY)
        n = draw(st.integers(0, 12))
        if kind == "array":
            return b"\xdc" + n.to_bytes(2, "big") + b"".join(node(depth + 1) for _ in range(n))
        prefix = draw(st.sampled_from(["", "k", "é"]))
        keys = [f"{prefix}{i}" for i in range(n)]
        return (
            b"\xde"
            + n.to_bytes(2, "big")
            + b"".join(msgpack.packb(k) + node(depth + 1) for k in keys)
        )

    # Volume without entropy: a few drawn items, each repeated many times.
    parts = [node(1) for _ in range(draw(st.integers(1, 3)))]
    count = draw(st.integers(1, 1000))
    return b"\xdd" + (count * len(parts)).to_bytes(4, "big") + b"".join(parts) * count


@settings(max_examples=25, deadline=None)
@given(payload=_nasty_documents())
def test_scan_bounds_what_decoding_takes(payload: bytes) -> None:
    """For any generated document, the scan's figure is at least what decoding really takes, itself under 112x the size."""
    estimate = codec._decode_cost(payload, budget=2**62)
    peak, _result = _peak_while(
        lambda: msgpack.unpackb(
            payload, raw=False, object_pairs_hook=codec._pairs_to_map, timestamp=3
        )
    )
    assert peak <= estimate
    assert peak <= codec.WORST_DECODE_RATIO * len(payload) + codec.DECODER_BASE_COST


@pytest.mark.parametrize("head", [b"\xdb", b"\xc6", b"\xc9"], ids=["str32", "bin32", "ext32"])
def test_scan_leaves_a_truncated_payload_to_msgpack(head: bytes) -> None:
    """A length running past the payload's end is reported as truncated input, not as too costly."""
    payload = head + (1 << 30).to_bytes(4, "big") + b"x" * 60_000
    with pytest.raises(RemoteProtocolError, match="incomplete input"):
        codec.unpackb(payload)
