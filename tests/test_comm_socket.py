"""CommChannel over a real socket pair: the socket fast paths keep the stream's semantics.

Over a ``trio.SocketStream`` the channel writes with one non-blocking send first and
reads into a reusable buffer (runtime/comm.py); these tests pin down that a frame too
big for one send still arrives whole, that replies are matched, and that EOF and a
closed stream still surface as ``SupervisorGone``. Every test is bounded by fail_after.
"""

from __future__ import annotations

import socket
from typing import Any

import msgspec
import pytest
import trio
import trio.testing

from model.fake_supervisor import Wire
from trio_coord.errors import SupervisorGone
from trio_coord.protocol import CommConnection
from trio_coord.protocol.messages import GetVariable, SetXCom, VariableResult
from trio_coord.runtime.comm import CommChannel

LIMIT = 30


def _frame(obj: Any) -> bytes:
    payload = msgspec.msgpack.encode(obj)
    return len(payload).to_bytes(4, "big") + payload


async def _read_frame(peer: trio.SocketStream, buf: bytearray) -> Any:
    while len(buf) < 4 or len(buf) < 4 + int.from_bytes(buf[:4], "big"):
        data = await peer.receive_some(1 << 20)
        if not data:
            return None
        buf += data
    size = int.from_bytes(buf[:4], "big")
    frame = msgspec.msgpack.decode(bytes(buf[4 : 4 + size]))
    del buf[: 4 + size]
    return frame


async def _channel() -> tuple[CommChannel, trio.SocketStream]:
    a, b = socket.socketpair()
    ours = trio.SocketStream(trio.socket.from_stdlib_socket(a))
    peer = trio.SocketStream(trio.socket.from_stdlib_socket(b))
    channel = CommChannel(ours, CommConnection())
    await peer.send_all(_frame([0, Wire().startup_body(), None]))
    await channel.receive_first()
    return channel, peer


async def test_frame_larger_than_the_socket_buffer_arrives_whole() -> None:
    """A frame the kernel takes only in part is completed before any other frame."""
    with trio.fail_after(LIMIT):
        channel, peer = await _channel()
        value = "v" * (8 << 20)
        seen: list[Any] = []

        go = trio.Event()

        async def supervisor() -> None:
            await go.wait()  # read nothing until both requests are on their way
            buf = bytearray()
            for _ in range(2):
                frame = await _read_frame(peer, buf)
                seen.append(frame)
                body = frame[1]
                reply = (
                    {"key": body["key"], "value": "ok", "type": "VariableResult"}
                    if body["type"] == "GetVariable"
                    else None
                )
                await peer.send_all(_frame([frame[0], reply, None]))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(supervisor)
            big = SetXCom(key="k", value=value, dag_id="d", run_id="r", task_id="t")
            async with trio.open_nursery() as callers:
                callers.start_soon(lambda: channel.request(big, timeout=LIMIT))
                # Sent in part: the rest waits for the peer, which reads nothing yet.
                await trio.testing.wait_all_tasks_blocked()
                assert channel.in_flight == 1
                nursery.start_soon(_later, go.set)
                small = await channel.request(GetVariable(key="x"), timeout=LIMIT)
        assert isinstance(small, VariableResult) and small.value == "ok"
        assert [f[1]["type"] for f in seen] == ["SetXCom", "GetVariable"]
        assert seen[0][1]["value"] == value


async def _later(fn: Any) -> None:
    await trio.sleep(0.05)
    fn()


async def test_eof_on_a_real_socket_fails_the_request() -> None:
    """The supervisor closing the socket fails the waiting request with SupervisorGone."""
    with trio.fail_after(LIMIT):
        channel, peer = await _channel()

        async def close_after_request() -> None:
            await _read_frame(peer, bytearray())
            await peer.aclose()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(close_after_request)
            with pytest.raises(SupervisorGone):
                await channel.request(GetVariable(key="x"), timeout=LIMIT)


async def test_request_on_a_closed_channel_fails() -> None:
    """After aclose(), a request fails with SupervisorGone and writes nothing."""
    with trio.fail_after(LIMIT):
        channel, peer = await _channel()
        await channel.aclose()
        with pytest.raises(SupervisorGone):
            await channel.request(GetVariable(key="x"), timeout=LIMIT)
        assert await peer.receive_some(1024) == b""
