"""FrameDecoder and encode_frame: the 4-byte big-endian length prefix (protocol.md §3.1).

The ``CASES`` table is run whole, one byte at a time and with trailing junk, then again with
EOF after it; each case names the frames it must yield and how the stream ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pytest
from helpers import FrameFactory

from trio_coord.errors import LocalProtocolError, RemoteProtocolError
from trio_coord.protocol.framing import (
    DEFAULT_MAX_FRAME_SIZE,
    NEED_DATA,
    PREFIX_SIZE,
    WIRE_MAX_FRAME_SIZE,
    FrameDecoder,
    NeedData,
    encode_frame,
)

f = FrameFactory()

#: The max_frame_size the table runs with: small, so oversize cases stay cheap.
LIMIT = 64
#: Appended after a case: the first three bytes of another prefix.
JUNK = b"\x00\x00\x01"

#: The stream stops at a frame boundary: NEED_DATA now, a clean EOF later.
BOUNDARY = "boundary"
#: The stream stops inside a prefix or a body: NEED_DATA now, an error at EOF.
PARTIAL = "partial"


@dataclass(frozen=True)
class Case:
    id: str
    data: bytes
    frames: tuple[bytes, ...]
    #: BOUNDARY, PARTIAL, or a regex the RemoteProtocolError must match.
    end: str


ONE = f.frame(b"\xc0")
TWO = f.frame(b"\x92\x01\x02")
MANY = tuple(i.to_bytes(2, "big") * 30 for i in range(1200))  # 72 KB: exercises compaction

CASES = [
    Case("nothing", b"", (), BOUNDARY),
    Case("one frame", ONE, (b"\xc0",), BOUNDARY),
    Case("two frames", ONE + TWO, (b"\xc0", b"\x92\x01\x02"), BOUNDARY),
    Case("frame of exactly the limit", f.frame(b"x" * LIMIT), (b"x" * LIMIT,), BOUNDARY),
    Case("many frames", b"".join(map(f.frame, MANY)), MANY, BOUNDARY),
    Case("half a prefix", b"\x00\x00", (), PARTIAL),
    Case("prefix only", f.prefix(3), (), PARTIAL),
    Case("prefix and part of the body", f.truncated(TWO, -1), (), PARTIAL),
    Case("frame then half a prefix", ONE + b"\x00", (b"\xc0",), PARTIAL),
    Case("zero-length frame", f.zero_length(), (), "zero-length frame"),
    Case("zero-length after a frame", ONE + f.zero_length(), (b"\xc0",), "zero-length"),
    Case("zero-length with bytes after", f.zero_length() + ONE, (), "zero-length"),
    Case("one byte over the limit", f.oversize_prefix(LIMIT), (), "65 bytes, more than"),
    Case("oversize after a frame", ONE + f.oversize_prefix(LIMIT), (b"\xc0",), "more than"),
    Case("oversize with its body", f.frame(b"x" * (LIMIT + 1)), (), "more than the limit"),
    Case("wire maximum", f.prefix(WIRE_MAX_FRAME_SIZE), (), "4294967295 bytes"),
]

#: Cases whose stream ends between frames or in an error: junk after them changes nothing.
JUNK_CASES = [c for c in CASES if c.end is not PARTIAL]


def drain(dec: FrameDecoder, frames: list[bytes]) -> bytes | NeedData | None:
    """Collect frames until the decoder wants data or reports a clean EOF."""
    while True:
        out = dec.next_frame()
        if not isinstance(out, bytes):
            return out
        frames.append(out)


def run(chunks: Iterable[bytes], *, eof: bool = False) -> tuple[list[bytes], Any, FrameDecoder]:
    """Feed ``chunks`` (then EOF) to a fresh decoder: (frames, last result or error, decoder)."""
    dec = FrameDecoder(LIMIT)
    frames: list[bytes] = []
    last: Any = NEED_DATA
    try:
        for chunk in chunks:
            dec.receive_data(chunk)
            last = drain(dec, frames)
        if eof:
            dec.receive_data(b"")
            last = drain(dec, frames)
    except RemoteProtocolError as exc:
        last = exc
    return frames, last, dec


def whole(data: bytes) -> list[bytes]:
    return [data] if data else []  # b"" would mean EOF


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


CHUNKINGS: dict[str, Callable[[bytes], list[bytes]]] = {"whole": whole, "bytewise": bytewise}


def assert_error(last: Any, match: str) -> None:
    """``last`` is the RemoteProtocolError a case expects."""
    assert isinstance(last, RemoteProtocolError), last
    with pytest.raises(RemoteProtocolError, match=match):
        raise last


@pytest.mark.parametrize("chunking", CHUNKINGS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_table(case: Case, chunking: str) -> None:
    """Every case yields its frames, then NEED_DATA or its error, however it is chunked."""
    frames, last, _ = run(CHUNKINGS[chunking](case.data))
    assert frames == list(case.frames)
    if case.end in (BOUNDARY, PARTIAL):
        assert last is NEED_DATA
    else:
        assert_error(last, case.end)


@pytest.mark.parametrize("chunking", CHUNKINGS)
@pytest.mark.parametrize("case", JUNK_CASES, ids=lambda c: c.id)
def test_table_with_trailing_junk(case: Case, chunking: str) -> None:
    """Bytes after a case's frames neither change them nor get lost: they wait as the next frame."""
    frames, last, dec = run(CHUNKINGS[chunking](case.data + JUNK))
    assert frames == list(case.frames)
    if case.end is BOUNDARY:
        assert last is NEED_DATA
        assert dec.buffered == len(JUNK)
    else:
        assert_error(last, case.end)


@pytest.mark.parametrize("chunking", CHUNKINGS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_table_then_eof(case: Case, chunking: str) -> None:
    """EOF at a frame boundary is clean; EOF inside a prefix or body is a RemoteProtocolError."""
    frames, last, _ = run(CHUNKINGS[chunking](case.data), eof=True)
    assert frames == list(case.frames)
    if case.end is BOUNDARY:
        assert last is None
    elif case.end is PARTIAL:
        assert_error(last, "connection closed inside a")
    else:
        assert_error(last, case.end)


# -- the limit is checked before the body is buffered ----------------------------------------


def test_oversize_prefix_keeps_no_body_bytes() -> None:
    """After an oversize prefix the decoder holds at most its 4 bytes, before next_frame is called."""
    dec = FrameDecoder(LIMIT)
    dec.receive_data(f.oversize_prefix(LIMIT) + b"x" * 10_000)
    assert dec.buffered <= PREFIX_SIZE
    with pytest.raises(RemoteProtocolError, match="more than the limit"):
        dec.next_frame()
    dec.receive_data(b"y" * 10_000)
    assert dec.buffered <= PREFIX_SIZE


def test_oversize_prefix_behind_good_frames_keeps_only_them() -> None:
    """An oversize prefix later in a chunk is refused on arrival; the frames before it still come out."""
    dec = FrameDecoder(LIMIT)
    dec.receive_data(ONE + TWO + f.oversize_prefix(LIMIT) + b"x" * 10_000)
    assert dec.buffered <= len(ONE) + len(TWO) + PREFIX_SIZE
    assert dec.next_frame() == b"\xc0"
    assert dec.next_frame() == b"\x92\x01\x02"
    with pytest.raises(RemoteProtocolError, match="more than the limit"):
        dec.next_frame()


def test_oversize_prefix_split_across_chunks_keeps_no_body_bytes() -> None:
    """A prefix completed by a later chunk is checked as that chunk arrives."""
    dec = FrameDecoder(LIMIT)
    dec.receive_data(ONE + f.oversize_prefix(LIMIT)[:2])
    dec.receive_data(f.oversize_prefix(LIMIT)[2:] + b"x" * 10_000)
    assert dec.buffered <= len(ONE) + PREFIX_SIZE


def test_zero_length_prefix_keeps_no_following_bytes() -> None:
    """A zero-length prefix is refused on arrival, like an oversize one, so nothing behind it piles up."""
    dec = FrameDecoder(LIMIT)
    dec.receive_data(f.zero_length() + ONE * 1000)
    assert dec.buffered <= PREFIX_SIZE


def test_default_limit_is_enforced() -> None:
    """A decoder built without arguments refuses one byte more than DEFAULT_MAX_FRAME_SIZE."""
    dec = FrameDecoder()
    assert dec.max_frame_size == DEFAULT_MAX_FRAME_SIZE < WIRE_MAX_FRAME_SIZE
    dec.receive_data(f.prefix(DEFAULT_MAX_FRAME_SIZE))
    assert dec.next_frame() is NEED_DATA
    dec = FrameDecoder()
    dec.receive_data(f.oversize_prefix(DEFAULT_MAX_FRAME_SIZE))
    with pytest.raises(RemoteProtocolError):
        dec.next_frame()


def test_wire_maximum_is_a_legal_limit() -> None:
    """With the limit at 2**32-1 a prefix of 2**32-1 is accepted and waits for its body."""
    dec = FrameDecoder(WIRE_MAX_FRAME_SIZE)
    dec.receive_data(f.prefix(WIRE_MAX_FRAME_SIZE) + b"abc")
    assert dec.next_frame() is NEED_DATA
    assert dec.buffered == 3


@pytest.mark.parametrize("limit", [0, -1, WIRE_MAX_FRAME_SIZE + 1])
def test_limit_outside_the_wire_range_is_refused(limit: int) -> None:
    """max_frame_size must lie in 1..2**32-1."""
    with pytest.raises(ValueError, match="max_frame_size"):
        FrameDecoder(limit)


# -- errors, EOF and input types ---------------------------------------------------------------


def test_errors_are_sticky() -> None:
    """Once the stream is broken, every later next_frame raises the same error, even after EOF."""
    dec = FrameDecoder(LIMIT)
    dec.receive_data(f.zero_length())
    with pytest.raises(RemoteProtocolError) as first:
        dec.next_frame()
    dec.receive_data(ONE)
    dec.receive_data(b"")
    for _ in range(3):
        with pytest.raises(RemoteProtocolError) as again:
            dec.next_frame()
        assert again.value is first.value


def test_eof_error_is_sticky() -> None:
    """EOF inside a body raises the same error on every later call."""
    dec = FrameDecoder(LIMIT)
    dec.receive_data(f.truncated(TWO, 5))
    dec.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match=r"3-byte frame body \(1 bytes received\)") as a:
        dec.next_frame()
    with pytest.raises(RemoteProtocolError) as b:
        dec.next_frame()
    assert a.value is b.value


def test_clean_eof_repeats() -> None:
    """After a clean EOF next_frame keeps answering None."""
    dec = FrameDecoder(LIMIT)
    dec.receive_data(ONE)
    dec.receive_data(b"")
    assert dec.next_frame() == b"\xc0"
    assert [dec.next_frame() for _ in range(3)] == [None, None, None]


def test_frames_before_eof_still_come_out() -> None:
    """Whole frames buffered before EOF are handed out before the EOF is reported."""
    dec = FrameDecoder(LIMIT)
    dec.receive_data(ONE + TWO)
    dec.receive_data(b"")
    assert dec.next_frame() == b"\xc0"
    assert dec.next_frame() == b"\x92\x01\x02"
    assert dec.next_frame() is None


def test_data_after_eof_is_a_local_error() -> None:
    """Feeding bytes after EOF is our mistake (LocalProtocolError); feeding b'' again is harmless."""
    dec = FrameDecoder(LIMIT)
    dec.receive_data(b"")
    dec.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        dec.receive_data(ONE)
    assert dec.next_frame() is None


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_accepts_any_bytes_like(kind: Callable[[bytes], Any]) -> None:
    """receive_data takes bytes, bytearray and memoryview alike and next_frame returns bytes."""
    dec = FrameDecoder(LIMIT)
    dec.receive_data(kind(ONE + TWO))
    out = dec.next_frame()
    assert type(out) is bytes and out == b"\xc0"


def test_input_buffer_is_copied() -> None:
    """Reusing the caller's receive buffer after receive_data does not change buffered frames."""
    dec = FrameDecoder(LIMIT)
    buf = bytearray(ONE)
    dec.receive_data(buf)
    buf[4] = 0x01
    assert dec.next_frame() == b"\xc0"


def test_buffered_counts_unconsumed_bytes() -> None:
    """buffered is the number of bytes received and not yet handed out, prefixes included."""
    dec = FrameDecoder(LIMIT)
    dec.receive_data(ONE + TWO[:3])
    assert dec.buffered == len(ONE) + 3
    dec.next_frame()
    assert dec.buffered == 3


# -- encode_frame ------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [b"\xc0", b"x" * 300, bytes(range(256)) * 300])
def test_encode_frame_round_trips(payload: bytes) -> None:
    """encode_frame writes the big-endian length then the payload, and the decoder reads it back."""
    data = encode_frame(payload)
    assert data == len(payload).to_bytes(4, "big") + payload
    dec = FrameDecoder(len(payload))
    dec.receive_data(data)
    assert dec.next_frame() == payload


def test_encode_frame_refuses_an_empty_payload() -> None:
    """A zero-length frame is never produced: it would wedge the supervisor's reader."""
    with pytest.raises(LocalProtocolError, match="zero-length"):
        encode_frame(b"")


class _Huge(bytes):
    """A payload that claims 2**32 bytes without allocating them."""

    def __len__(self) -> int:
        return WIRE_MAX_FRAME_SIZE + 1


def test_encode_frame_refuses_what_the_prefix_cannot_express() -> None:
    """A payload of 2**32 bytes or more raises LocalProtocolError instead of wrapping the length."""
    with pytest.raises(LocalProtocolError, match="4-byte length prefix"):
        encode_frame(_Huge())


def test_no_safety_asserts_in_shipping_code() -> None:
    """Everything under trio_coord/ checks with explicit errors, not asserts that ``python -O`` strips."""
    import ast
    import pathlib

    root = pathlib.Path(__file__).parent.parent / "trio_coord"
    files = sorted(root.rglob("*.py"))
    found = [
        f"{path.relative_to(root)}:{node.lineno}"
        for path in files
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Assert)
    ]
    assert found == []
