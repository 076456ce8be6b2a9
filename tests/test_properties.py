"""Hypothesis properties of the protocol core (the h11 invariant, STYLE.md practice 5).

Whatever bytes arrive, in whatever chunking, FrameDecoder + codec and CommConnection yield
frames/events or raise RemoteProtocolError, never any other exception, and the chunking does
not change what comes out. Streams are drawn from raw bytes, framed garbage, framed msgpack
values and reply-shaped frames, so the deeper layers are reached, not only the prefix check.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from helpers import FrameFactory, chunked
from hypothesis import given
from hypothesis import strategies as st

from trio_coord.errors import RemoteProtocolError
from trio_coord.protocol import NEED_DATA, Closed, CommConnection, codec
from trio_coord.protocol.framing import FrameDecoder, encode_frame
from trio_coord.protocol.messages import DeleteVariable, GetVariable, PutVariable, SucceedTask

f = FrameFactory()

#: A limit small enough that drawn prefixes often exceed it.
LIMIT = 4096

# -- strategies ----------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | st.datetimes(timezones=st.just(datetime.UTC))
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.one_of(
    st.none(),
    values,
    st.just(f.body("VariableResult", key="k", value="v")),
    st.just(f.body("OKResponse", ok=True)),
    st.sampled_from(["CONNECTION_NOT_FOUND", "PERMISSION_DENIED", "GENERIC_ERROR", "bogus"]).map(
        f.error_body
    ),
    st.just(f.startup_details_body()),
    st.just(f.parse_request_body()),
)
reply_frames = st.builds(
    lambda i, body, err, extra: f.frame(f.encode([i, body, err, *extra])),
    st.integers(-1, 8) | values,
    bodies,
    st.none() | bodies,
    st.lists(values, max_size=2),
)
pieces = st.one_of(
    st.binary(max_size=64),
    st.binary(min_size=1, max_size=64).map(f.frame),
    values.map(lambda v: f.frame(f.encode(v))),
    reply_frames,
    reply_frames.map(lambda b: b[:-1]),  # truncated
    st.sampled_from(
        [
            f.frame(f.duplicate_keys_payload()),
            f.frame(f.bin_key_payload()),
            f.frame(f.unknown_ext_payload()),
            f.frame(f.out_of_range_timestamp_payload()),
            f.frame(f.deep_nesting_payload()),
            f.frame(f.invalid_utf8_payload()),
            f.zero_length(),
            f.oversize_prefix(LIMIT),
        ]
    ),
)
streams = st.lists(pieces, max_size=8).map(b"".join)


def chunkings(data: bytes) -> st.SearchStrategy[list[bytes]]:
    """Ways to split ``data``: anywhere, including one byte at a time."""
    cuts = st.lists(st.integers(0, len(data)), max_size=16)
    return st.one_of(
        cuts.map(lambda c: list(chunked(data, c))),
        st.just([data[i : i + 1] for i in range(len(data))]),
    )


def pump(
    receive: Callable[[bytes], None], drain: Callable[[], bool], chunks: list[bytes], *, eof: bool
) -> None:
    """Feed each chunk and drain after it, stopping once drain() reports an error; EOF last."""
    for chunk in chunks:
        if chunk:
            receive(chunk)
            if not drain():
                return
    if eof:
        receive(b"")
        drain()


# -- FrameDecoder + codec ------------------------------------------------------------------------


def decode_all(chunks: list[bytes], *, eof: bool) -> list[Any]:
    """Feed chunks (then EOF) through FrameDecoder and the codec; record what comes out."""
    dec = FrameDecoder(LIMIT)
    out: list[Any] = []

    def drain() -> bool:
        while True:
            try:
                payload = dec.next_frame()
            except RemoteProtocolError as exc:
                out.append(("broken", str(exc)))
                return False
            if payload is NEED_DATA or payload is None:
                if payload is None:
                    out.append(("eof",))
                return True
            assert isinstance(payload, bytes) and 0 < len(payload) <= LIMIT
            try:
                codec.unpackb(payload)
                out.append(("value", payload))
            except RemoteProtocolError as exc:
                out.append(("refused", payload, str(exc)))

    pump(dec.receive_data, drain, chunks, eof=eof)
    return out


@given(st.data(), streams, st.booleans())
def test_decoder_and_codec_never_raise_anything_else(
    data: st.DataObject, stream: bytes, eof: bool
) -> None:
    """Any bytes in any chunking give frames, values or RemoteProtocolError, the same as when fed whole."""
    chunks = data.draw(chunkings(stream))
    assert decode_all(chunks, eof=eof) == decode_all([stream], eof=eof)


@given(st.data(), st.binary(max_size=2048), st.booleans())
def test_decoder_and_codec_on_raw_bytes(data: st.DataObject, stream: bytes, eof: bool) -> None:
    """Unstructured bytes behave the same: no exception but RemoteProtocolError, chunking irrelevant."""
    chunks = data.draw(chunkings(stream))
    assert decode_all(chunks, eof=eof) == decode_all([stream], eof=eof)


# -- CommConnection ----------------------------------------------------------------------------

REQUESTS = [
    GetVariable(key="k"),
    PutVariable(key="k", value="v", description=None),
    DeleteVariable(key="k"),
    GetVariable(key="other"),
    SucceedTask(end_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)),
]


def run_connection(chunks: list[bytes], *, started: bool, sends: int, eof: bool) -> list[Any]:
    """Drive a CommConnection over ``chunks``; record each event or the error, checking stickiness."""
    conn = CommConnection(max_frame_size=LIMIT)
    out: list[Any] = []
    if started:
        conn.receive_data(f.startup())
        out.append(type(conn.next_event()).__name__)
        for msg in REQUESTS[:sends]:
            out.append(("sent", conn.send_request(msg)[0]))

    def drain() -> bool:
        while True:
            try:
                event = conn.next_event()
            except RemoteProtocolError as first:
                with pytest.raises(RemoteProtocolError) as again:
                    conn.next_event()
                assert again.value is first
                out.append(("broken", str(first)))
                return False
            if event is NEED_DATA:
                return True
            out.append((type(event).__name__, getattr(event, "request_id", None)))
            if isinstance(event, Closed):
                out.append(event.pending)
                return True

    pump(conn.receive_data, drain, chunks, eof=eof)
    return out


@given(st.data(), streams, st.booleans(), st.integers(0, len(REQUESTS)), st.booleans())
def test_connection_never_raises_anything_else(
    data: st.DataObject, stream: bytes, started: bool, sends: int, eof: bool
) -> None:
    """CommConnection.next_event gives events or RemoteProtocolError (sticky) for any bytes in any chunking."""
    chunks = data.draw(chunkings(stream))
    assert run_connection(chunks, started=started, sends=sends, eof=eof) == run_connection(
        [stream], started=started, sends=sends, eof=eof
    )


# -- round trips -------------------------------------------------------------------------------


@given(st.data(), st.lists(st.binary(min_size=1, max_size=300), max_size=12))
def test_frames_round_trip(data: st.DataObject, payloads: list[bytes]) -> None:
    """Payloads framed by encode_frame come back whole and in order from the decoder, however chunked."""
    stream = b"".join(map(encode_frame, payloads))
    dec = FrameDecoder(300)
    got: list[bytes] = []
    for chunk in data.draw(chunkings(stream)):
        if chunk:
            dec.receive_data(chunk)
        while isinstance(frame := dec.next_frame(), bytes):
            got.append(frame)
    assert got == payloads
    assert dec.buffered == 0
    dec.receive_data(b"")
    assert dec.next_frame() is None


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.datetimes(timezones=st.just(datetime.UTC)),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_values_round_trip_and_msgspec_agrees(value: Any) -> None:
    """What packb writes, unpackb and the supervisor's msgspec both read back as the same value."""
    wire = codec.packb(value)
    assert codec.unpackb(wire) == value
    assert msgspec.msgpack.decode(wire) == value
