"""The comm channel in Trio: moves frames between the socket and the sans-IO connection.

Theory of operation
-------------------
:class:`CommChannel` owns one stream and one :class:`~trio_coord.protocol.CommConnection`.
It never interprets a message; it only moves bytes and owns time.

**Reading.** Exactly one task at a time calls ``receive_some`` (a second would get
``BusyResourceError``). Which task that is depends on load, for speed:

* while requests are in flight, a *waiting caller* reads. With one caller, the task
  that sent the request reads its own reply, so a round trip costs no hand-off
  between tasks (the benchmark issue measured a separate reader task at 0.66x of
  the native client; the direct path is what keeps us above it);
* with many callers, whichever holds the read turn dispatches every reply it
  decodes to its waiter and, when its own reply has come, passes the turn on;
* while nothing is in flight, the :meth:`watch` task reads, so an EOF or a garbage
  frame from the supervisor is noticed at once and the task is cancelled rather
  than running on unsupervised. A caller that needs the turn cancels the watcher's
  read; a cancelled ``receive_some`` consumes no data, so nothing is lost.

**Writing.** Frames are queued and written by whichever caller finds no writer
active, joining everything queued into one ``send_all``: 64 concurrent callers cost
a few writes, not 64. A write runs shielded under its own deadline: a cancelled or
failed ``send_all`` may leave half a frame on the wire, after which the stream can
never be trusted again, so such a failure *poisons* the channel (every waiter fails
with :class:`SupervisorGone`) instead of letting a later frame follow a partial one.

**Socket fast paths.** Over a real socket (``trio.SocketStream``, what the runtime
dials) a round trip is mostly fixed costs, so the common cases skip them: a frame is
first written with one non-blocking ``send`` straight from the caller (no checkpoint,
no cancel scope; only the remainder, if the kernel took part of it, goes through the
shielded ``send_all`` below), and a read waits for readability and then receives into
one reusable buffer, without ``receive_some``'s failed first attempt and fresh 1 MiB
bytes object per call. Any other stream (memory streams in tests) takes the generic
path; the semantics are the same.

**Waiting.** Every wait on the supervisor is bounded: each request by its own
timeout (:class:`RequestTimeout`), because the supervisor silently drops a body it
cannot decode (protocol.md §12 rows 7-8). A request that times out or is cancelled
is forgotten; its late reply is logged and dropped.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from typing import Final

import trio

from ..errors import (
    CoordError,
    RemoteProtocolError,
    RequestTimeout,
    SupervisorGone,
)
from ..protocol import NEED_DATA, Closed, CommConnection, Reply, StrayReply
from ..protocol.connection import Event, ParseRequest, Startup
from ..protocol.framing import NeedData
from ..protocol.messages import Inbound, Request

__all__ = ["CommChannel"]

log = logging.getLogger("trio_coord.comm")

#: Bytes asked of the socket per read; large enough that a 64 MiB XCom takes few reads.
RECEIVE_SIZE: Final = 1024 * 1024


class _Waiter:
    """One pending request: its outcome, and the event its caller sleeps on (made only
    when the caller has to sleep without the read turn)."""

    __slots__ = ("error", "reply", "wake")

    def __init__(self) -> None:
        self.reply: Reply | None = None
        self.error: BaseException | None = None
        self.wake: trio.Event | None = None

    @property
    def done(self) -> bool:
        return self.reply is not None or self.error is not None

    def notify(self) -> None:
        if self.wake is not None:
            self.wake.set()


class CommChannel:
    """Frames in and out of one comm stream, with per-request waiters and timeouts.

    Args:
        stream: the connected comm stream.
        conn: the sans-IO connection (a fresh one by default).
        on_broken: called once, in the Trio thread, when the channel breaks (EOF,
            protocol error, failed write), so the runtime can cancel the task.
        write_timeout: bound on one ``send_all``; a write that takes longer poisons
            the channel.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        conn: CommConnection | None = None,
        *,
        on_broken: Callable[[CoordError], None] | None = None,
        write_timeout: float = 600.0,
    ) -> None:
        self._stream = stream
        self.conn = conn if conn is not None else CommConnection()
        self._on_broken = on_broken
        self._write_timeout = write_timeout
        self._waiters: dict[int, _Waiter] = {}
        self._outbox: list[bytes | memoryview] = []
        self._writing = False
        self._reading = False
        self._read_turn_free = trio.Event()  # set whenever a reader steps down
        self._watch_scope: trio.CancelScope | None = None
        self._watch_wakeup = trio.Event()
        self.broken: CoordError | None = None
        self.stray_replies = 0
        # The socket fast paths (see the module docstring): only for a real socket.
        self._sock: trio.socket.SocketType | None = (
            stream.socket if isinstance(stream, trio.SocketStream) else None
        )
        self._rbuf = bytearray(RECEIVE_SIZE) if self._sock is not None else bytearray()

    # -- the first frame -----------------------------------------------------------------

    async def receive_first(self) -> Startup | ParseRequest:
        """Read until the supervisor's first frame; the caller bounds the wait.

        Raises:
            RemoteProtocolError: the first frame is not StartupDetails/DagFileParseRequest.
            SupervisorGone: the supervisor closed the channel first.
        """
        while True:
            event = self._next_event()
            if event is NEED_DATA:
                await self._read_some()
                continue
            if isinstance(event, (Startup, ParseRequest)):
                return event
            raise self._break(
                SupervisorGone("the supervisor closed the comm channel before its first frame")
            )

    # -- requests ------------------------------------------------------------------------

    async def request(
        self, msg: Request, *, timeout: float, carrier: dict[str, str] | None = None
    ) -> Inbound | None:
        """Send one request and return its reply body (None for an empty reply).

        Raises:
            LocalProtocolError: the message is invalid or not allowed now; nothing sent.
            NotFound, PermissionDenied, AlreadyExists, SupervisorError: the supervisor
                answered with an error.
            RemoteProtocolError: the reply does not fit the request.
            RequestTimeout: no reply within ``timeout`` seconds.
            SupervisorGone: the channel broke before the reply came.
        """
        reply = await self.exchange(msg, timeout=timeout, carrier=carrier)
        return reply.result()

    async def exchange(
        self, msg: Request, *, timeout: float, carrier: dict[str, str] | None = None
    ) -> Reply:
        """Like :meth:`request`, but return the :class:`Reply` without raising its error."""
        if self.broken is not None:
            raise self.broken
        request_id, data = self.conn.send_request(msg, carrier=carrier)
        waiter = _Waiter()
        self._waiters[request_id] = waiter
        deadline = trio.current_time() + timeout if math.isfinite(timeout) else math.inf
        try:
            with trio.CancelScope(deadline=deadline) as scope:
                self._watch_yield()
                # Alone in flight: write now. With others in flight, queue, so the writer
                # joins every frame queued meanwhile into one send_all.
                alone = not self._writing and len(self._waiters) == 1
                rest = self._send_now(data) if alone else data
                if rest is not None:
                    await self._send(rest)
                while not waiter.done:
                    if not self._reading:
                        await self._read_turn(waiter)
                    else:
                        waiter.wake = trio.Event()
                        await waiter.wake.wait()
            if scope.cancelled_caught and not waiter.done:
                raise RequestTimeout(
                    f"no reply to {msg.TYPE} (id {request_id}) within {timeout:g} s; the "
                    "supervisor drops requests it cannot decode, so this one is abandoned"
                )
        finally:
            if self._waiters.pop(request_id, None) is not None and not waiter.done:
                self.conn.forget(request_id)
            self._after_wait()
        if waiter.error is not None:
            raise waiter.error
        assert waiter.reply is not None
        return waiter.reply

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered."""
        return len(self._waiters)

    # -- the idle reader -------------------------------------------------------------------

    async def watch(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Read while no request is in flight, so EOF and garbage are noticed promptly.

        Runs until the channel breaks or the conversation is over; cancel it to stop.
        """
        task_status.started()
        while self.broken is None:
            if self._waiters or self._reading:
                self._watch_wakeup = trio.Event()
                await self._watch_wakeup.wait()
                continue
            with trio.CancelScope() as scope:
                self._watch_scope = scope
                try:
                    await self._read_and_dispatch()
                except CoordError:
                    return  # already reported through on_broken; waiters already failed
                finally:
                    self._watch_scope = None

    def _watch_yield(self) -> None:
        # A caller is about to need the read turn: stop the idle read. Cancelling a
        # receive_some consumes nothing, so no byte is lost.
        if self._watch_scope is not None:
            self._watch_scope.cancel()

    def _after_wait(self) -> None:
        if not self._waiters:
            self._watch_wakeup.set()

    # -- reading -------------------------------------------------------------------------

    async def _read_turn(self, waiter: _Waiter) -> None:
        """Hold the read turn until ``waiter`` is answered, dispatching every reply read."""
        while not waiter.done and self.broken is None:
            if self._reading:
                return
            try:
                await self._read_and_dispatch()
            except CoordError:
                if waiter.reply is not None:
                    # Our reply came before whatever broke the channel (e.g. a frame
                    # after the terminal reply): the answer stands, and the break is
                    # already reported through on_broken.
                    return
                raise

    async def _read_and_dispatch(self) -> None:
        self._reading = True
        try:
            await self._read_some()
        finally:
            self._reading = False
            # Whoever waits without the turn must re-check: one of them takes it over.
            for w in self._waiters.values():
                w.notify()
        self._dispatch()

    async def _read_some(self) -> None:
        sock = self._sock
        if sock is not None and sock.fileno() >= 0:
            await self._read_socket(sock)
            return
        try:
            data = await self._stream.receive_some(RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise self._break(
                SupervisorGone(f"comm channel read failed: {exc or type(exc).__name__}")
            ) from None
        self.conn.receive_data(data)

    async def _read_socket(self, sock: trio.socket.SocketType) -> None:
        # receive_some's semantics (one read, at least one byte or b"" at EOF, cancellable
        # without consuming anything), minus its costs: the caller has just written its
        # request, so a read attempted before waiting would almost always fail.
        while True:
            await trio.lowlevel.wait_readable(sock)
            try:
                size = os.readv(sock.fileno(), (self._rbuf,))
            except BlockingIOError:
                continue  # a spurious wake-up; wait again
            except OSError as exc:
                raise self._break(
                    SupervisorGone(f"comm channel read failed: {exc or type(exc).__name__}")
                ) from None
            break
        if size == 0:
            self.conn.receive_data(b"")
            return
        with memoryview(self._rbuf) as view, view[:size] as chunk:
            self.conn.receive_data(chunk)

    def _next_event(self) -> Event | NeedData:
        try:
            return self.conn.next_event()
        except RemoteProtocolError as exc:
            raise self._break(exc) from None

    def _dispatch(self) -> None:
        while True:
            event = self._next_event()
            if event is NEED_DATA:
                return
            if isinstance(event, Reply):
                waiter = self._waiters.get(event.request_id)
                if waiter is not None:
                    waiter.reply = event
                    waiter.notify()
            elif isinstance(event, StrayReply):
                self.stray_replies += 1
                log.debug("dropping a late reply to abandoned request %d", event.request_id)
            elif isinstance(event, Closed):
                raise self._break(SupervisorGone("the supervisor closed the comm channel"))
            else:  # a first frame twice can only come from a broken peer
                raise self._break(
                    RemoteProtocolError(f"unexpected {type(event).__name__} mid-conversation")
                )

    # -- writing -------------------------------------------------------------------------

    def _send_now(self, data: bytes) -> bytes | memoryview | None:
        """Write what the socket takes now, without waiting; return what is left (or None).

        Only called with no writer active, so the outbox is empty and a remainder passed
        straight to :meth:`_send` is the next thing written: no frame can follow a part.
        """
        sock = self._sock
        fd = -1 if sock is None else sock.fileno()
        if fd < 0:
            return data
        try:
            sent = os.write(fd, data)
        except BlockingIOError:
            return data
        except OSError as exc:
            raise self._break(
                SupervisorGone(f"comm channel write failed: {exc or type(exc).__name__}")
            ) from None
        return None if sent == len(data) else memoryview(data)[sent:]

    async def _send(self, data: bytes | memoryview) -> None:
        self._outbox.append(data)
        if self._writing:
            return  # the active writer picks it up with its next batch
        self._writing = True
        try:
            while self._outbox:
                batch = self._outbox[0] if len(self._outbox) == 1 else b"".join(self._outbox)
                self._outbox.clear()
                with trio.CancelScope(shield=True) as scope:
                    scope.deadline = trio.current_time() + self._write_timeout
                    try:
                        await self._stream.send_all(batch)
                    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                        raise self._break(
                            SupervisorGone(
                                f"comm channel write failed: {exc or type(exc).__name__}"
                            )
                        ) from None
                if scope.cancelled_caught:
                    raise self._break(
                        SupervisorGone(
                            f"a write to the comm channel took over {self._write_timeout:g} s"
                        )
                    )
        finally:
            self._writing = False

    # -- breaking ------------------------------------------------------------------------

    def _break(self, error: CoordError, *, notify: bool = True) -> CoordError:
        """Poison the channel: fail every waiter, tell the runtime once, return ``error``."""
        if self.broken is None:
            self.broken = error
            for w in self._waiters.values():
                if not w.done:
                    w.error = error
                w.notify()
            self._watch_wakeup.set()
            if notify and self._on_broken is not None:
                self._on_broken(error)
        return self.broken

    async def aclose(self) -> None:
        """Close the stream now; pending waiters fail with SupervisorGone."""
        self._break(SupervisorGone("the comm channel was closed"), notify=False)
        await trio.aclose_forcefully(self._stream)
