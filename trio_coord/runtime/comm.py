"""The comm channel in Trio: moves frames between the socket and the sans-IO connection.

Theory of operation
-------------------
:class:`CommChannel` owns one stream and one :class:`~trio_coord.protocol.CommConnection`.
It never interprets a message; it only moves bytes and owns time.

**Reading.** One task, :meth:`CommChannel.run_reader`, reads for the whole try (after
the first frame, which :meth:`~CommChannel.receive_first` reads before it starts).
It hands every reply to the caller waiting for it and, between requests, notices an
EOF or a garbage frame from the supervisor at once, so the task is cancelled rather
than running on unsupervised.

A caller does not wait on an :class:`trio.Event` or hold a cancel scope of its own:
it parks itself with ``wait_task_rescheduled`` and the reader reschedules it with the
answer. That hand-off is the cheapest one Trio has: cheaper than a caller reading its
own reply under a per-request cancel scope (measured in docs/performance.md), and with
64 callers in flight one read dispatches every reply it carries, each at the cost of a
``reschedule``. A parked caller stays cancellable: its abort function forgets the
request, so a late reply becomes a :class:`~trio_coord.protocol.StrayReply`.

**Waiting is bounded.** Each request has a deadline (``timeout``), because the
supervisor silently drops a body it cannot decode (protocol.md §12 rows 7-8). The
deadlines are kept by the reader, which reads under a cancel scope whose deadline is
the earliest deadline it knows of. Requests are issued with the same timeout, so a
new request's deadline is almost never the earliest and the scope is left alone;
when it fires, the reader fails every overdue request with :class:`RequestTimeout`,
then reads on under a fresh scope. A cancelled read consumes nothing, so no byte is
lost.

**Writing.** A caller that finds no writer active writes its frame at once; over a
real socket that is one non-blocking ``send`` with no checkpoint (only a remainder,
if the kernel took part of the frame, goes through ``send_all``). Frames queued
while a write is in progress are joined into one ``send_all`` by the active writer:
64 concurrent callers cost a few writes, not 64. A frame with a large body comes as
two buffers, prefix and body (see ``CommConnection.commit``); it is written with one
``writev``, or one ``send_all`` per buffer, and never joined, so the body is not copied.
A request with a large value is checked and encoded in a worker thread first
(``CommConnection.encode``), so that the Trio thread keeps serving signals meanwhile. A ``send_all`` runs shielded under
its own deadline: a cancelled or failed write may leave half a frame on the wire,
after which the stream can never be trusted again, so such a failure *poisons* the
channel (every waiter fails with :class:`SupervisorGone`) instead of letting a later
frame follow a partial one.

**Polling before sleeping.** A request alone in flight over a real socket polls for
its reply (non-blocking reads) for up to ``reply_spin`` (100 µs by default) before it
parks. A process that sleeps in ``epoll_wait`` and is woken by the reply pays the
kernel's (and, in a virtual machine, the hypervisor's) wake-up on every round trip;
on the benchmark machine that was most of a round trip, and polling tripled the
one-caller rate (docs/performance.md). The cost is CPU while polling, so polling
adapts: after a miss (a supervisor slower than the budget, e.g. waiting on the API
server) the next 2, 4, ... 64 lone requests park at once, and one hit resets it. A
slow supervisor therefore costs at most one budget per 64 requests. The poll is
synchronous (it gives the CPU away with ``sched_yield`` between reads, for a
supervisor on the same core): other runnable tasks wait for at most the budget, as for
any short computation. A request answered while polling does not always pass through
the scheduler, which would cost a pass per request: it yields (the log pump and the
signal watcher run) at least once a millisecond, and checks for cancellation before
it sends anything. The reader stays parked on the socket meanwhile and treats a
wake-up that finds the data already taken as spurious.

**Socket fast paths.** Over a ``trio.SocketStream`` (what the runtime dials) the reader
waits for readability and receives into one reusable buffer, without
``receive_some``'s failed first attempt and fresh 1 MiB bytes object per call. Any
other stream (memory streams in tests) takes the generic path; the semantics are the
same.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import time
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
from ..protocol.connection import LARGE_BODY, Encoded, Event, ParseRequest, Startup
from ..protocol.fields import CheckIncomplete
from ..protocol.framing import NeedData
from ..protocol.messages import Inbound, Request

__all__ = ["CommChannel"]

log = logging.getLogger("trio_coord.comm")

#: Bytes asked of the socket per read; large enough that a 64 MiB XCom takes few reads.
RECEIVE_SIZE: Final = 1024 * 1024

#: Reads up to this size are handed on as a copy: cheaper than a memoryview for small ones.
_SMALL_READ: Final = 64 * 1024

#: Longest a task making requests answered while polling goes without yielding.
_YIELD_EVERY: Final = 0.001

#: After a missed poll, this many lone requests at most park without polling.
_SPIN_BACKOFF_MAX: Final = 64

#: The buffers of one or more whole frames, to be written in order.
_Parts = tuple[bytes | memoryview, ...]


def _coalesce(buffers: list[bytes | memoryview]) -> list[bytes | memoryview]:
    """Join runs of small buffers into one write each; a large body stays as it is.

    64 queued small frames become one ``send_all``; a large body is never copied.
    """
    if len(buffers) == 1:
        return buffers[:]
    out: list[bytes | memoryview] = []
    run: list[bytes | memoryview] = []
    for buf in buffers:
        if len(buf) > LARGE_BODY:
            if run:
                out.append(b"".join(run))
                run = []
            out.append(buf)
        else:
            run.append(buf)
    if run:
        out.append(run[0] if len(run) == 1 else b"".join(run))
    return out


_SUCCEEDED: Final = trio.lowlevel.Abort.SUCCEEDED
_reschedule: Final = trio.lowlevel.reschedule


class _Waiter:
    """One pending request: who waits, until when, and how it ended."""

    __slots__ = ("deadline", "error", "parked", "reply", "task", "timeout", "what")

    def __init__(self, what: str, timeout: float, deadline: float) -> None:
        self.what = what  # "GetVariable (id 3)", for the timeout message
        self.timeout = timeout
        self.deadline = deadline
        self.task = trio.lowlevel.current_task()
        self.parked = False  # True while the task sleeps in wait_task_rescheduled
        self.reply: Reply | None = None
        self.error: BaseException | None = None

    def wake(self) -> None:
        """Resume the caller, once, if it is parked."""
        if self.parked:
            self.parked = False
            _reschedule(self.task)

    def abort(self, _raise_cancel: object) -> trio.lowlevel.Abort:
        # The caller was cancelled while parked: it leaves, and the reader will not
        # wake it (exchange()'s finally forgets the request).
        self.parked = False
        return _SUCCEEDED


class CommChannel:
    """Frames in and out of one comm stream, with per-request waiters and timeouts.

    Requests need :meth:`run_reader` running (in a nursery), after :meth:`receive_first`.

    Args:
        stream: the connected comm stream.
        conn: the sans-IO connection (a fresh one by default).
        on_broken: called once, in the Trio thread, when the channel breaks (EOF,
            protocol error, failed write), so the runtime can cancel the task.
        write_timeout: bound on one ``send_all``; a write that takes longer poisons
            the channel.
        reply_spin: seconds a lone request polls for its reply before parking (see
            "Polling before sleeping"); 0 never polls. Only over a real socket.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        conn: CommConnection | None = None,
        *,
        on_broken: Callable[[CoordError], None] | None = None,
        write_timeout: float = 600.0,
        reply_spin: float = 0.0,
    ) -> None:
        self._stream = stream
        self.conn = conn if conn is not None else CommConnection()
        self._on_broken = on_broken
        self._write_timeout = write_timeout
        self._waiters: dict[int, _Waiter] = {}
        self._outbox: list[bytes | memoryview] = []  # the buffers of whole frames, in order
        self._writing = False
        self._reader_scope: trio.CancelScope | None = None
        self._reader_started = False
        self.broken: CoordError | None = None
        self.stray_replies = 0
        # The socket fast paths (see the module docstring): only for a real socket.
        self._sock: trio.socket.SocketType | None = (
            stream.socket if isinstance(stream, trio.SocketStream) else None
        )
        self._rbuf = bytearray(RECEIVE_SIZE) if self._sock is not None else bytearray()
        self._spin = reply_spin if self._sock is not None else 0.0
        self._spin_skip = 0  # lone requests left to park without polling (back-off)
        self._spin_misses = 0  # polls in a row that ended without the reply
        self._next_yield = 0.0  # perf_counter() time after which a polled request yields
        #: Requests that polled for their reply, and those answered while polling.
        self.polls = 0
        self.poll_hits = 0

    # -- the first frame -----------------------------------------------------------------

    async def receive_first(self) -> Startup | ParseRequest:
        """Read until the supervisor's first frame; the caller bounds the wait.

        Raises:
            RemoteProtocolError: the first frame is not StartupDetails/DagFileParseRequest.
            SupervisorGone: the supervisor closed the channel first.
        """
        if self._reader_started:
            raise RuntimeError("receive_first() after run_reader() started")
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
        # A request answered while polling never parks, so this is where a cancelled
        # caller stops, before anything is sent (trio's own pattern for I/O calls).
        await trio.lowlevel.checkpoint_if_cancelled()
        if self.broken is not None:
            raise self.broken
        if not self._reader_started:
            raise RuntimeError("CommChannel.run_reader() must be running to make requests")
        try:
            encoded: Encoded | None = self.conn.encode(msg, carrier=carrier)
        except CheckIncomplete:
            encoded = None
        if encoded is None:
            # A large value: check and encode it in a worker thread, so the Trio thread
            # keeps handling SIGTERM, which abandons the work (nothing is sent; the
            # thread finishes on its own and its result is dropped). Not inside the
            # except clause: the exception's traceback would keep this frame, and so
            # the encoded value, alive in a cycle until the next garbage collection.
            encoded = await trio.to_thread.run_sync(
                functools.partial(self.conn.encode, msg, carrier=carrier, inline=False),
                abandon_on_cancel=True,
            )
            if self.broken is not None:
                raise self.broken from None
        request_id, parts = self.conn.commit(encoded)
        deadline = trio.current_time() + timeout if timeout < math.inf else math.inf
        waiter = _Waiter(msg.TYPE or "", timeout, deadline)
        waiters = self._waiters
        waiters[request_id] = waiter
        try:
            scope = self._reader_scope
            if scope is not None and deadline < scope.deadline:
                scope.deadline = deadline  # the reader keeps the earliest deadline
            if not self._writing and not self._outbox:
                # No writer active: write now (nothing queued can be overtaken).
                rest = self._send_now(parts)
                if rest is not None:
                    await self._send(rest)
                elif self._spin and len(waiters) == 1 and self._poll_due():
                    with contextlib.suppress(CoordError):
                        self._poll(waiter)  # a break has already failed (or answered) it
                    if (waiter.reply is not None or waiter.error is not None) and (
                        time.perf_counter() >= self._next_yield
                    ):
                        await self._yield_now()
            else:
                await self._send(parts)  # the active writer joins it into its next batch
            if waiter.reply is None and waiter.error is None:
                waiter.parked = True
                await trio.lowlevel.wait_task_rescheduled(waiter.abort)
        finally:
            if waiters.pop(request_id, None) is not None and waiter.reply is None:
                self.conn.forget(request_id)
        if waiter.reply is not None:
            return waiter.reply
        if waiter.error is None:  # only the reader or a break wakes a parked caller
            raise RuntimeError(f"{waiter.what} (id {request_id}) woke without a reply or error")
        raise waiter.error

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered."""
        return len(self._waiters)

    # -- the reader ------------------------------------------------------------------------

    async def run_reader(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Read and dispatch until the channel breaks or is closed; cancel it to stop.

        Every break is reported through ``on_broken`` and fails the waiting requests;
        it is not raised here.
        """
        if self._reader_started:
            raise RuntimeError("run_reader() is already running")
        self._reader_started = True
        task_status.started()
        try:
            while self.broken is None:
                with trio.CancelScope(deadline=self._earliest_deadline()) as scope:
                    self._reader_scope = scope
                    try:
                        while True:
                            await self._read_some()
                            self._dispatch()
                    except CoordError:
                        return  # already reported through on_broken; waiters already failed
                    finally:
                        self._reader_scope = None
                self._expire()
        finally:
            # Cancelled from outside, or anything else: nobody reads or keeps deadlines
            # any more, so no request may wait (or be started) from now on.
            self._break(SupervisorGone("the comm channel's reader stopped"), notify=False)

    def _earliest_deadline(self) -> float:
        # Only requests still waiting: one that has timed out while its caller is still
        # in a long write stays in _waiters until the write ends, and its past deadline
        # would cancel every new scope at once (a busy loop).
        return min(
            (w.deadline for w in self._waiters.values() if w.reply is None and w.error is None),
            default=math.inf,
        )

    def _expire(self) -> None:
        """Fail every request whose deadline has passed."""
        now = trio.current_time()
        for request_id, w in list(self._waiters.items()):
            if w.deadline <= now and w.reply is None and w.error is None:
                w.error = RequestTimeout(
                    f"no reply to {w.what} (id {request_id}) within {w.timeout:g} s; the "
                    "supervisor drops requests it cannot decode, so this one is abandoned"
                )
                w.wake()

    # -- polling -------------------------------------------------------------------------

    async def _yield_now(self) -> None:
        # Answered without parking: still let other tasks run (the log pump, the signal
        # watcher), at least every _YIELD_EVERY; not after every request, which would
        # cost a pass of the scheduler each time. The request has happened, so a
        # cancellation waits for the next request's checkpoint_if_cancelled rather than
        # hide this reply.
        await trio.lowlevel.cancel_shielded_checkpoint()
        self._next_yield = time.perf_counter() + _YIELD_EVERY

    def _poll_due(self) -> bool:
        if self._spin_skip:
            self._spin_skip -= 1
            return False
        return True

    def _poll(self, waiter: _Waiter) -> None:
        """Read the socket without waiting until ``waiter`` is answered or the budget ends."""
        if self._sock is None:  # _spin is 0 without a socket, so this is never reached
            raise RuntimeError("polling needs a socket stream")
        self.polls += 1
        fd = self._sock.fileno()
        clock = time.perf_counter
        end = clock() + self._spin
        while waiter.reply is None and waiter.error is None:
            try:
                size = os.readv(fd, (self._rbuf,))
            except BlockingIOError:
                if clock() < end:
                    os.sched_yield()
                    continue
                self._spin_misses += 1
                self._spin_skip = min(2**self._spin_misses, _SPIN_BACKOFF_MAX)
                return
            except OSError as exc:
                raise self._break(
                    SupervisorGone(f"comm channel read failed: {exc or type(exc).__name__}")
                ) from None
            self._take(size)
            self._dispatch()
        self.poll_hits += 1
        self._spin_misses = 0

    # -- reading -------------------------------------------------------------------------

    async def _read_some(self) -> None:
        sock = self._sock
        if sock is not None:
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
        # without consuming anything), minus its costs: a reply is rarely there already,
        # so a read attempted before waiting would almost always fail.
        while True:
            fd = sock.fileno()
            try:
                if fd < 0:
                    raise trio.ClosedResourceError("the comm socket is closed")
                await trio.lowlevel.wait_readable(fd)
                size = os.readv(fd, (self._rbuf,))
            except BlockingIOError:
                continue  # spurious, or a polling request took the data first; wait again
            except (OSError, trio.ClosedResourceError, trio.BusyResourceError) as exc:
                raise self._break(
                    SupervisorGone(f"comm channel read failed: {exc or type(exc).__name__}")
                ) from None
            break
        self._take(size)

    def _take(self, size: int) -> None:
        """Feed the first ``size`` bytes of the read buffer to the connection (0: EOF)."""
        if size == 0:
            self.conn.receive_data(b"")
        elif size <= _SMALL_READ:
            self.conn.receive_data(self._rbuf[:size])
        else:  # no copy of a large read: the decoder copies it into its buffer anyway
            with memoryview(self._rbuf) as view, view[:size] as chunk:
                self.conn.receive_data(chunk)

    def _next_event(self) -> Event | NeedData:
        try:
            return self.conn.next_event()
        except RemoteProtocolError as exc:
            raise self._break(exc) from None

    def _dispatch(self) -> None:
        waiters = self._waiters
        while True:
            event = self._next_event()
            if event is NEED_DATA:
                return
            if type(event) is Reply:
                waiter = waiters.get(event.request_id)
                if waiter is not None and waiter.error is None:
                    waiter.reply = event
                    waiter.wake()
                else:  # it timed out a moment ago; its caller has not run yet
                    self.stray_replies += 1
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

    def _send_now(self, parts: _Parts) -> _Parts | None:
        """Write what the socket takes now, without waiting; return what is left (or None).

        A frame of several buffers (a large body) goes in one ``writev``. Only called
        with no writer active and nothing queued, so a remainder passed straight to
        :meth:`_send` is the next thing written: no frame can follow a part.
        """
        sock = self._sock
        fd = -1 if sock is None else sock.fileno()
        if fd < 0:
            return parts
        try:
            sent = os.write(fd, parts[0]) if len(parts) == 1 else os.writev(fd, parts)
        except BlockingIOError:
            return parts
        except OSError as exc:
            raise self._break(
                SupervisorGone(f"comm channel write failed: {exc or type(exc).__name__}")
            ) from None
        for i, part in enumerate(parts):
            if sent < len(part):
                return (memoryview(part)[sent:], *parts[i + 1 :])
            sent -= len(part)
        return None

    async def _send(self, parts: _Parts) -> None:
        self._outbox += parts
        if self._writing:
            return  # the active writer picks it up with its next batch
        self._writing = True
        try:
            while self._outbox:
                batch = _coalesce(self._outbox)
                self._outbox.clear()
                for data in batch:
                    await self._send_all(data)
        finally:
            self._writing = False

    async def _send_all(self, data: bytes | memoryview) -> None:
        """One ``send_all``, shielded under the write deadline; any failure poisons."""
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + self._write_timeout
            try:
                await self._stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise self._break(
                    SupervisorGone(f"comm channel write failed: {exc or type(exc).__name__}")
                ) from None
            except BaseException as exc:
                # Whatever it was (KeyboardInterrupt...), part of the batch may be on
                # the wire, so nothing may ever follow it.
                self._break(SupervisorGone(f"comm channel write failed: {type(exc).__name__}"))
                raise
        if scope.cancelled_caught:
            raise self._break(
                SupervisorGone(f"a write to the comm channel took over {self._write_timeout:g} s")
            )

    # -- breaking ------------------------------------------------------------------------

    def _break(self, error: CoordError, *, notify: bool = True) -> CoordError:
        """Poison the channel: fail every waiter, tell the runtime once, return ``error``."""
        if self.broken is None:
            self.broken = error
            self._outbox.clear()
            for w in self._waiters.values():
                if w.reply is None and w.error is None:
                    w.error = error
                w.wake()
            if notify and self._on_broken is not None:
                self._on_broken(error)
        return self.broken

    async def aclose(self) -> None:
        """Close the stream now; pending waiters fail with SupervisorGone."""
        self._break(SupervisorGone("the comm channel was closed"), notify=False)
        if self._reader_scope is not None:
            self._reader_scope.cancel()
        await trio.aclose_forcefully(self._stream)
