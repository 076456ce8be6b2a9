"""CommChannel over a real socket pair: the socket fast paths keep the stream's semantics.

Over a ``trio.SocketStream`` the channel writes with one non-blocking send first and
its reader task reads into a reusable buffer (runtime/comm.py); these tests pin down that a frame too
big for one send still arrives whole, that replies are matched, and that EOF and a
closed stream still surface as ``SupervisorGone``. Every test is bounded by fail_after.
"""

from __future__ import annotations

import socket
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest
import trio
import trio.testing
from helpers import CallCounter

from model.fake_supervisor import Wire
from trio_coord.errors import RequestTimeout, SupervisorGone
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


@asynccontextmanager
async def _channel(
    *, reader: bool = True, small_buffers: bool = False, **options: Any
) -> AsyncIterator[tuple[CommChannel, trio.SocketStream]]:
    """A channel past its first frame, with its reader running, as Run wires it.

    ``small_buffers`` shrinks the kernel's socket buffers so that a large frame is
    written in parts; ``options`` go to CommChannel.
    """
    a, b = socket.socketpair()
    if small_buffers:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    peer = trio.SocketStream(trio.socket.from_stdlib_socket(b))
    await peer.send_all(_frame([0, Wire().startup_body(), None]))
    async with _started(a, reader=reader, **options) as channel:
        yield channel, peer


@asynccontextmanager
async def _started(
    sock: socket.socket, *, reader: bool = True, **options: Any
) -> AsyncIterator[CommChannel]:
    """A channel on ``sock`` that has read the first frame, its reader running."""
    channel = CommChannel(
        trio.SocketStream(trio.socket.from_stdlib_socket(sock)), CommConnection(), **options
    )
    await channel.receive_first()
    async with trio.open_nursery() as nursery:
        if reader:
            await nursery.start(channel.run_reader)
        yield channel
        nursery.cancel_scope.cancel()


async def test_frame_larger_than_the_socket_buffer_arrives_whole() -> None:
    """A frame the kernel takes only in part is completed before any other frame."""
    with trio.fail_after(LIMIT):
        async with _channel() as (channel, peer):
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
                    # Encoded in a worker thread (a large value), then sent in part: the
                    # rest waits for the peer, which reads nothing yet.
                    while channel.in_flight == 0:  # noqa: ASYNC110 - a thread, not a task
                        await trio.sleep(0.001)
                    await trio.testing.wait_all_tasks_blocked()
                    assert channel.in_flight == 1
                    nursery.start_soon(_later, go.set)
                    small = await channel.request(GetVariable(key="x"), timeout=LIMIT)
            assert isinstance(small, VariableResult) and small.value == "ok"
            assert [f[1]["type"] for f in seen] == ["SetXCom", "GetVariable"]
            assert seen[0][1]["value"] == value


async def _swallow_frame(peer: trio.SocketStream, chunk: memoryview) -> int:
    """Read one frame into ``chunk``, keeping nothing of it; return its request id."""
    head = b""
    while len(head) < 6:  # prefix, array header, a one-byte id
        n = await peer.socket.recv_into(chunk[: 6 - len(head)])
        assert n, "EOF inside a frame"
        head += bytes(chunk[:n])
    left = int.from_bytes(head[:4], "big") - 2
    while left:
        n = await peer.socket.recv_into(chunk[: min(left, len(chunk))])
        assert n, "EOF inside a frame"
        left -= n
    return head[5]


@pytest.mark.parametrize("mib", [4, 16])
async def test_a_large_value_is_sent_without_a_copy_of_its_frame(mib: int) -> None:
    """Sending a large SetXCom holds one encoding of the value at most, never a joined frame."""
    value = ["x" * 1000] * (mib * 1024)  # mib MiB of encoding, checked and encoded off-thread
    size = mib << 20
    with trio.fail_after(LIMIT):
        async with _channel() as (channel, peer):
            chunk = memoryview(bytearray(1 << 20))

            async def supervisor() -> None:
                request_id = await _swallow_frame(peer, chunk)
                await peer.send_all(_frame([request_id, None, None]))

            big = SetXCom(key="k", value=value, dag_id="d", run_id="r", task_id="t")
            tracemalloc.start()
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(supervisor)
                    assert await channel.request(big, timeout=LIMIT) is None
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    # One encoding (the msgpack buffer, written as it is) plus small change; joining
    # prefix and body, or keeping a bytes copy of the buffer, would add another `size`.
    assert peak < 1.25 * size, f"peak {peak / size:.2f}x the encoded size"


async def _answer_one(peer: trio.SocketStream, buf: bytearray) -> None:
    """Read one GetVariable and answer it with the value "ok"."""
    frame = await _read_frame(peer, buf)
    reply = {"key": frame[1]["key"], "value": "ok", "type": "VariableResult"}
    await peer.send_all(_frame([frame[0], reply, None]))


async def _later(fn: Any) -> None:
    await trio.sleep(0.05)
    fn()


async def test_eof_on_a_real_socket_fails_the_request() -> None:
    """The supervisor closing the socket fails the waiting request with SupervisorGone."""
    with trio.fail_after(LIMIT):
        async with _channel() as (channel, peer):

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
        async with _channel() as (channel, peer):
            await channel.aclose()
            with pytest.raises(SupervisorGone):
                await channel.request(GetVariable(key="x"), timeout=LIMIT)
            assert await peer.receive_some(1024) == b""


async def test_a_request_needs_the_reader() -> None:
    """Without run_reader nobody would read the reply: refuse at once instead of hanging."""
    with trio.fail_after(LIMIT):
        async with _channel(reader=False) as (channel, peer):
            with pytest.raises(RuntimeError, match="run_reader"):
                await channel.request(GetVariable(key="x"), timeout=LIMIT)
            assert channel.in_flight == 0
            with trio.move_on_after(0.05):
                assert await peer.receive_some(1024) == b"never"  # nothing was written


async def test_replies_out_of_order_reach_their_callers() -> None:
    """64 callers in flight; the peer answers in reverse order, several replies per write."""
    with trio.fail_after(LIMIT):
        async with _channel() as (channel, peer):
            got: dict[str, Any] = {}

            async def supervisor() -> None:
                buf = bytearray()
                frames = [await _read_frame(peer, buf) for _ in range(64)]
                replies = b"".join(
                    _frame(
                        [
                            f[0],
                            {
                                "key": f[1]["key"],
                                "value": f[1]["key"] * 2,
                                "type": "VariableResult",
                            },
                            None,
                        ]
                    )
                    for f in reversed(frames)
                )
                await peer.send_all(replies)

            async def caller(key: str) -> None:
                reply = await channel.request(GetVariable(key=key), timeout=LIMIT)
                assert isinstance(reply, VariableResult)
                got[key] = reply.value

            async with trio.open_nursery() as nursery:
                nursery.start_soon(supervisor)
                for i in range(64):
                    nursery.start_soon(caller, f"k{i}")
            assert got == {f"k{i}": f"k{i}" * 2 for i in range(64)}
            assert channel.in_flight == 0 and channel.stray_replies == 0


async def test_a_cancelled_caller_leaves_a_stray_reply_and_the_channel_works_on() -> None:
    """Cancelling a parked caller forgets its request; its late reply is counted and dropped."""
    with trio.fail_after(LIMIT):
        async with _channel() as (channel, peer):
            buf = bytearray()
            with trio.move_on_after(0.05) as scope:
                await channel.request(GetVariable(key="slow"), timeout=LIMIT)
            assert scope.cancelled_caught and channel.in_flight == 0
            first = await _read_frame(peer, buf)
            await peer.send_all(
                _frame([first[0], {"key": "slow", "value": "late", "type": "VariableResult"}, None])
            )

            async with trio.open_nursery() as nursery:
                nursery.start_soon(_answer_one, peer, buf)
                reply = await channel.request(GetVariable(key="x"), timeout=LIMIT)
            assert isinstance(reply, VariableResult) and reply.value == "ok"
            assert channel.stray_replies == 1


async def test_each_request_times_out_on_its_own_deadline() -> None:
    """A request the supervisor never answers fails alone; a later one still succeeds."""
    with trio.fail_after(LIMIT):
        async with _channel() as (channel, peer):
            buf = bytearray()
            t0 = trio.current_time()
            with pytest.raises(RequestTimeout, match=r"GetVariable \(id 1\) within 0.2 s"):
                await channel.request(GetVariable(key="dropped"), timeout=0.2)
            assert 0.2 <= trio.current_time() - t0 < LIMIT / 2
            await _read_frame(peer, buf)  # the dropped one

            async with trio.open_nursery() as nursery:
                nursery.start_soon(_answer_one, peer, buf)
                reply = await channel.request(GetVariable(key="x"), timeout=LIMIT)
            assert isinstance(reply, VariableResult) and reply.value == "ok"


# -- polling before sleeping -------------------------------------------------------------


class _ThreadPeer:
    """A supervisor stand-in in its own thread, answering GetVariable after ``delay``.

    Unlike a peer task, it can answer while the Trio thread is busy polling, which is
    the case polling exists for. Closes the socket after ``close_after`` requests. With
    a ``gate``, each answer waits for one release of it: the test decides when.
    """

    def __init__(
        self,
        sock: socket.socket,
        delay: float = 0.0,
        close_after: int = -1,
        gate: threading.Semaphore | None = None,
    ) -> None:
        self.sock, self.delay, self.close_after, self.gate = sock, delay, close_after, gate
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _read_exact(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def _run(self) -> None:
        self.sock.sendall(_frame([0, Wire().startup_body(), None]))
        served = 0
        try:
            while True:
                size = int.from_bytes(self._read_exact(4), "big")
                frame = msgspec.msgpack.decode(self._read_exact(size))
                if served == self.close_after:
                    self.sock.close()
                    return
                if self.gate is not None and not self.gate.acquire(timeout=LIMIT):
                    raise EOFError  # the test is gone
                if self.delay:
                    time.sleep(self.delay)
                key = frame[1]["key"]
                reply = {"key": key, "value": key.upper(), "type": "VariableResult"}
                self.sock.sendall(_frame([frame[0], reply, None]))
                served += 1
        except (EOFError, OSError):
            self.sock.close()


@asynccontextmanager
async def _polling_channel(
    reply_spin: float, **peer: Any
) -> AsyncIterator[tuple[CommChannel, _ThreadPeer]]:
    a, b = socket.socketpair()
    thread_peer = _ThreadPeer(b, **peer)
    async with _started(a, reply_spin=reply_spin) as channel:
        yield channel, thread_peer
    await channel.aclose()


async def _get(channel: CommChannel, key: str) -> str | None:
    reply = await channel.request(GetVariable(key=key), timeout=LIMIT)
    assert isinstance(reply, VariableResult)
    return reply.value


async def test_a_fast_supervisor_answers_while_the_request_polls() -> None:
    """With a budget far above a local round trip, most lone requests never park."""
    with trio.fail_after(LIMIT):
        async with _polling_channel(reply_spin=0.05) as (channel, _peer):
            for i in range(200):
                assert await _get(channel, f"k{i}") == f"K{i}"
        assert channel.polls >= 100
        assert channel.poll_hits >= 100
        assert channel.in_flight == 0


async def test_polling_backs_off_from_a_slow_supervisor() -> None:
    """Replies that come only once the request has parked: after each miss more requests park at once."""
    gate = threading.Semaphore(0)
    with trio.fail_after(LIMIT):
        async with _polling_channel(reply_spin=0.0001, gate=gate) as (channel, _peer):
            for i in range(150):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_get_expecting, channel, i)
                    # A poll is synchronous: every task is blocked only once the request
                    # has given up polling (or never polled) and parked. Only then may
                    # the supervisor answer, however slow or loaded the machine is.
                    await trio.testing.wait_all_tasks_blocked()
                    assert channel.in_flight == 1
                    gate.release()
        assert channel.poll_hits == 0
        # Polls at requests 1, 4, 9, 18, 35, 68, 133 (gaps 2, 4, ... 64): 7 of 150.
        assert channel.polls == 7


async def _get_expecting(channel: CommChannel, i: int) -> None:
    assert await _get(channel, f"k{i}") == f"K{i}"


async def test_no_polling_when_switched_off() -> None:
    with trio.fail_after(LIMIT):
        async with _polling_channel(reply_spin=0.0) as (channel, _peer):
            for i in range(20):
                assert await _get(channel, f"k{i}") == f"K{i}"
        assert channel.polls == 0


async def test_requests_answered_while_polling_still_let_other_tasks_run() -> None:
    """A loop of requests that never park still yields: other tasks run, cancel works."""
    with trio.fail_after(LIMIT):
        async with _polling_channel(reply_spin=0.05) as (channel, _peer):
            ticks = 0
            with trio.CancelScope() as loop_scope:

                async def other_task() -> None:
                    nonlocal ticks
                    while ticks < 50:
                        ticks += 1
                        await trio.lowlevel.checkpoint()
                    loop_scope.cancel()

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(other_task)
                    for _ in range(20_000):  # far more than the other task needs
                        await _get(channel, "k")
            assert ticks == 50 and loop_scope.cancelled_caught
            assert channel.poll_hits > 0


async def test_eof_while_polling_fails_the_request() -> None:
    with trio.fail_after(LIMIT):
        async with _polling_channel(reply_spin=0.05, close_after=3) as (channel, _peer):
            for i in range(3):
                assert await _get(channel, f"k{i}") == f"K{i}"
            with pytest.raises(SupervisorGone):
                await _get(channel, "gone")
            assert channel.broken is not None


async def test_a_request_fails_when_the_reader_is_stopped() -> None:
    """Cancelling the reader fails the parked request instead of leaving it waiting."""
    with trio.fail_after(LIMIT):
        async with _channel(reader=False) as (channel, _peer):
            async with trio.open_nursery() as nursery:
                reader_scope = trio.CancelScope()

                async def reader() -> None:
                    with reader_scope:
                        await channel.run_reader()

                nursery.start_soon(reader)
                await trio.testing.wait_all_tasks_blocked()

                async def stop_soon() -> None:
                    await trio.testing.wait_all_tasks_blocked()
                    reader_scope.cancel()

                nursery.start_soon(stop_soon)
                with pytest.raises(SupervisorGone, match="reader stopped"):
                    await channel.request(GetVariable(key="x"), timeout=LIMIT)
            with pytest.raises(SupervisorGone):
                await channel.request(GetVariable(key="y"), timeout=LIMIT)


async def test_a_request_timing_out_during_its_own_write_does_not_spin_the_reader() -> None:
    """Found in review: an expired request still writing kept its past deadline in the
    reader's scope, which the reader then re-entered and left in a busy loop."""
    with trio.fail_after(LIMIT):
        async with _channel(small_buffers=True, write_timeout=LIMIT) as (channel, peer):
            expiries = CallCounter(channel, "_expire")

            async def slow_peer() -> None:
                await trio.sleep(0.5)  # reads nothing for a while, then drains
                while await peer.receive_some(1 << 20):
                    pass

            async with trio.open_nursery() as nursery:
                nursery.start_soon(slow_peer)
                big = SetXCom(key="k", value="v" * (4 << 20), dag_id="d", run_id="r", task_id="t")
                with pytest.raises(RequestTimeout):
                    await channel.request(big, timeout=0.1)
                nursery.cancel_scope.cancel()
            assert expiries.calls <= 3, f"the reader looped: {expiries.calls} expiries"


async def test_an_unexpected_error_in_a_write_poisons_the_channel() -> None:
    """Found in review: only Broken/ClosedResourceError poisoned the channel, so after any
    other exception mid-write a queued frame could follow a partial one."""

    class Boom(Exception):
        pass

    with trio.fail_after(LIMIT):
        async with _channel() as (channel, _peer):

            async def failing_send_all(data: Any) -> None:
                await trio.lowlevel.checkpoint()
                raise Boom

            channel._stream.send_all = failing_send_all  # type: ignore[method-assign]
            channel._sock = None  # the generic write path, so that send_all is used
            with pytest.raises(Boom):
                await channel.request(GetVariable(key="x"), timeout=LIMIT)
            assert isinstance(channel.broken, SupervisorGone)
            with pytest.raises(SupervisorGone):
                await channel.request(GetVariable(key="y"), timeout=LIMIT)
