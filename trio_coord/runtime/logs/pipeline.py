"""The buffer and the pump: rendered lines from any thread to the logs socket, in order.

Data flow, one direction::

    logging.Logger (any thread)
      -> LogPipeline.handler       filter by level (§8.3) before any formatting
      -> RecordRenderer.render     one JSON object + "\\n", masked, in the emitting thread;
                                   a line over the record limit is replaced by a truncated one
      -> bounded in-memory buffer  (list of lines, guarded by one threading.Lock)
      -> LogPipeline.pump          the only writer: joins a batch, one send_all per batch
      -> logs socket, or the stderr Fallback when the socket is gone (§8.6)

Why the work is split this way: formatting is the expensive part, so it is paid by the
thread that logs, and the Trio thread, which also carries the comm channel, only joins
bytes and writes. The Trio thread is never made to wait: when the buffer is full its own
records are counted and dropped, while a worker thread may wait a short bounded time for
the pump to make room (back-pressure instead of loss in the common "task logs in a tight
loop" case). The pump sleeps on a ``trio.Event`` and is woken with
``TrioToken.run_sync_soon`` only when it is parked, i.e. on the empty -> non-empty
transition; it then lingers a millisecond so that a busy producer is sent in batches of
hundreds, with one wake-up and one ``send_all`` each.

Delivery guarantee: every accepted record is written exactly once to the socket, or, if a
send fails, the whole batch that was in flight is written to the fallback (a record cut in
half on the socket is never lost; it may appear twice). ``drain()`` waits for everything
accepted so far; ``close()`` sends later records straight to the fallback and lets the pump
finish. Records dropped for lack of space are counted and announced by one warning record;
records cut to the size limit carry a marker each and are counted in one record at close.
The buffer and the pump share one lock and one set of counters, so they live together.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import BinaryIO, Final, Literal

import trio

from ..masking import Masker, safe_str
from .fallback import Fallback
from .levels import LevelFilter
from .render import RecordRenderer

__all__ = [
    "DEFAULT_CAPACITY",
    "DEFAULT_MAX_BUFFERED_BYTES",
    "DEFAULT_WORKER_WAIT",
    "DEFAULT_MAX_RECORD",
    "LINGER",
    "LogPipeline",
]

#: Buffered records before new ones are dropped. A task that logs in a tight loop on the
#: Trio thread gives the pump no chance to run until it yields, so the buffer must hold a
#: whole burst: the benchmark's 100k records from the Trio thread lost 90% with 10,000
#: slots. The real memory guard is :data:`DEFAULT_MAX_BUFFERED_BYTES`; at a typical 150-400
#: bytes per record it binds first, and this count only bounds per-record overhead.
DEFAULT_CAPACITY: Final = 200_000

#: Second bound, on bytes, so that a few huge records cannot pin unbounded memory. A record
#: is always accepted into an empty buffer, however large, so no record is too big to send.
DEFAULT_MAX_BUFFERED_BYTES: Final = 32 * 1024 * 1024

#: Longest line a single record may make. The supervisor's line reader copies its buffer
#: on every read until it sees the newline, so one huge line costs it quadratic time (a
#: 5 MiB line, thousands of 4 KiB reads); a longer record is cut to this size with a
#: visible marker. ``TRIO_COORD_MAX_LOG_RECORD`` overrides it.
DEFAULT_MAX_RECORD: Final = 1024 * 1024

#: How long a worker thread may wait for room when the buffer is full. Long enough for the
#: pump to empty a full buffer many times over; short enough that a stuck socket degrades to
#: counted drops rather than a hung task. After one wait times out, later records do not
#: wait until the pump makes progress again.
DEFAULT_WORKER_WAIT: Final = 0.5

#: How long the pump waits, after being woken from idle, before taking a batch. Latency
#: of a first record after silence, traded for batching: while a task logs in a loop, the
#: pump then costs a fraction of a microsecond per record instead of several.
LINGER: Final = 0.001

# Logger name of the records this module writes about itself.
_SELF_LOGGER: Final = "trio_coord.logs"

# ---------------------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------------------


class _PipelineHandler(logging.Handler):
    """The ``logging`` entry point; safe from any thread, never raises into the caller."""

    def __init__(self, pipeline: LogPipeline) -> None:
        super().__init__()
        self._pipeline = pipeline

    def handle(self, record: logging.LogRecord) -> bool:
        # logging.Handler.handle holds the handler's lock around emit(). Our buffer has its
        # own lock, and a worker thread may wait for room inside emit(); under the handler
        # lock that wait would stall every other thread, the Trio thread included.
        if self.filters and not self.filter(record):
            return False
        self._pipeline._emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self._pipeline._emit(record)


_PumpState = Literal["idle", "running", "done"]


class LogPipeline:
    """Buffers rendered records and writes them to the logs socket from one Trio task.

    Args:
        level_filter: decides which records are sent at all.
        masker: hides secrets in every string of every record.
        capacity: records held before new ones are dropped (see :data:`DEFAULT_CAPACITY`).
        fallback: where records go when the socket cannot take them, and after
            :meth:`close`; ``None`` means ``sys.stderr.buffer`` at the time of writing.
        max_buffered_bytes: second bound on the buffer, in bytes.
        worker_wait: longest time a non-Trio thread waits for room in a full buffer.
        max_record: longest line one record may make (see :data:`DEFAULT_MAX_RECORD`).
    """

    def __init__(
        self,
        *,
        level_filter: LevelFilter,
        masker: Masker,
        capacity: int = DEFAULT_CAPACITY,
        fallback: BinaryIO | None = None,
        max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
        worker_wait: float = DEFAULT_WORKER_WAIT,
        max_record: int = DEFAULT_MAX_RECORD,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._filter = level_filter
        self._renderer = RecordRenderer(masker)
        self._capacity = capacity
        self._max_bytes = max_buffered_bytes
        self._worker_wait = worker_wait
        self._fallback = Fallback(fallback, self._lost)
        self._max_record = max_record

        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        # Everything below is guarded by _lock.
        self._lines: list[bytes] = []
        self._buffered_bytes = 0
        self._accepted = 0  # records ever accepted into the buffer
        self._dropped = 0
        self._truncated = 0
        self._unreported = 0  # dropped since the last warning record
        self._room_waiters = 0
        self._stalled = False  # a worker's wait timed out; no more waiting until progress
        self._closed = False
        self._direct = False  # new records bypass the buffer: after close() or a dead pump
        self._parked = False  # the pump waits on _wakeup and must be woken
        self._state: _PumpState = "idle"

        # Trio-side state: touched only from the Trio thread (or under _lock for _token).
        self._token: trio.lowlevel.TrioToken | None = None
        self._trio_thread: int | None = None
        self._wakeup: trio.Event | None = None
        self._progress: trio.Event | None = None
        self._written = 0  # accepted records that reached the socket or the fallback
        self._socket_dead = False

        self.handler: logging.Handler = _PipelineHandler(self)

        for problem in level_filter.problems:
            self._emit(
                logging.LogRecord(_SELF_LOGGER, logging.ERROR, __file__, 0, "%s", (problem,), None)
            )

    # -- configuration ------------------------------------------------------------------

    def bind(self, /, **fields: object) -> None:
        """Add context fields (ti_id, dag_id, ...) to every record emitted from now on."""
        self._renderer.bind(fields)

    def install(self, logger: logging.Logger | None = None) -> None:
        """Attach :attr:`handler` to ``logger`` (the root logger by default).

        Also lowers the logger's own level to the most permissive threshold, so that the
        filter here, not the logger's default WARNING, decides; records below every
        threshold are then rejected by ``logging`` before a LogRecord is even built.
        """
        target = logging.getLogger() if logger is None else logger
        target.setLevel(self._filter.lowest)
        if self.handler not in target.handlers:
            target.addHandler(self.handler)

    def uninstall(self, logger: logging.Logger | None = None) -> None:
        """Detach :attr:`handler` from ``logger`` (the root logger by default)."""
        (logging.getLogger() if logger is None else logger).removeHandler(self.handler)

    @property
    def truncated(self) -> int:
        """Records cut to the size limit (each carries a marker)."""
        return self._truncated

    @property
    def dropped(self) -> int:
        """Records lost because the buffer was full (or the fallback could not be written)."""
        return self._dropped

    def render(self, record: logging.LogRecord) -> bytes:
        """The exact line this pipeline would write for ``record`` (filtering aside)."""
        return self._renderer.render(record)

    # -- producer side (any thread) -----------------------------------------------------

    def _emit(self, record: logging.LogRecord) -> None:
        try:
            if not self._filter.allows(record.name, record.levelno):
                return
            try:
                line = self._renderer.render(record)
            except Exception as exc:
                line = self._renderer.render_simple(
                    logging.ERROR,
                    _SELF_LOGGER,
                    f"a log record from {record.name!r} could not be rendered: "
                    f"{type(exc).__name__}: {safe_str(exc)}",
                )
            if len(line) > self._max_record:
                line = self._renderer.render_truncated(record, len(line), self._max_record)
                with self._lock:
                    self._truncated += 1
            self._submit(line)
        except Exception:
            # Losing one record beats raising into arbitrary user code.
            with self._lock:
                self._count_drop_locked()

    def _submit(self, line: bytes) -> None:
        wake = False
        direct = b""
        with self._lock:
            if (
                not self._direct
                and not self._has_room_locked(len(line))
                and not (self._may_wait_locked() and self._wait_for_room_locked(len(line)))
            ):
                self._count_drop_locked()
                return
            if self._direct:
                direct = self._drop_warning_locked() if self._unreported else b""
                direct += line
            else:
                if self._unreported:
                    self._append_locked(self._drop_warning_locked())
                self._append_locked(line)
                if self._parked:
                    self._parked = False
                    wake = True
        if direct:
            self._fallback.write(direct)
        elif wake:
            self._wake_pump()

    def _has_room_locked(self, size: int) -> bool:
        lines = self._lines
        return not lines or (
            len(lines) < self._capacity and self._buffered_bytes + size <= self._max_bytes
        )

    def _may_wait_locked(self) -> bool:
        # Only worth waiting if a pump is there to make room, and never on the Trio thread:
        # the pump runs on it, so waiting there would wait for ourselves.
        return (
            self._state == "running"
            and not self._stalled
            and threading.get_ident() != self._trio_thread
        )

    def _wait_for_room_locked(self, size: int) -> bool:
        deadline = time.monotonic() + self._worker_wait
        self._room_waiters += 1
        try:
            while not self._direct and not self._has_room_locked(size):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._state != "running":
                    self._stalled = True
                    return False
                self._room.wait(remaining)
            return True
        finally:
            self._room_waiters -= 1

    def _append_locked(self, line: bytes) -> None:
        self._lines.append(line)
        self._buffered_bytes += len(line)
        self._accepted += 1

    def _count_drop_locked(self) -> None:
        self._dropped += 1
        self._unreported += 1

    def _drop_warning_locked(self) -> bytes:
        count, self._unreported = self._unreported, 0
        return self._renderer.render_simple(
            logging.WARNING, _SELF_LOGGER, f"{count} log records dropped", dropped=count
        )

    def _wake_pump(self) -> None:
        token = self._token
        if token is None:
            return
        # After trio.run has returned nobody is left to wake; close() handles the rest.
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(self._on_wake, idempotent=True)

    def _on_wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()
        if self._progress is not None and self._state != "running":
            self._notify_progress()

    # -- consumer side (Trio thread) ----------------------------------------------------

    async def pump(
        self,
        stream: trio.abc.SendStream,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Write buffered records to ``stream`` until :meth:`close`, then return.

        The only task that writes to the logs socket. Starts by flushing what was buffered
        before the socket existed. If a write fails (the supervisor closed the socket), the
        batch in flight and every later record go to the fallback instead; nothing is
        raised. If the pump is cancelled, what it holds is written to the fallback
        synchronously and later records go there directly. It does not close ``stream``.
        """
        with self._lock:
            if self._state != "idle":
                raise RuntimeError("LogPipeline.pump() can run only once")
            self._state = "running"
            self._token = trio.lowlevel.current_trio_token()
            self._trio_thread = threading.get_ident()
        if self._progress is None:
            self._progress = trio.Event()
        task_status.started()
        batch: list[bytes] = []
        try:
            while True:
                with self._lock:
                    batch, upto = self._take_locked()
                    if not batch:
                        if self._closed:
                            break
                        self._wakeup = trio.Event()
                        self._parked = True
                if not batch:
                    if self._wakeup is None:  # set under the lock just above
                        raise RuntimeError("the log pump parked without a wake-up event")
                    await self._wakeup.wait()
                    if not self._closed:
                        # Woken by the first record after a quiet spell: let its neighbours
                        # arrive, so a thread logging in a loop is sent in batches of
                        # hundreds rather than a few records per wake-up and GIL hand-off.
                        await trio.sleep(LINGER)
                    continue
                await self._send(stream, b"".join(batch))
                batch = []
                self._written = upto
                self._notify_progress()
        except BaseException:
            # Cancelled (or worse) with records in hand: they go to the fallback, and so
            # does everything after, since nobody will pump any more.
            with self._lock:
                self._direct = True
                self._state = "done"
                rest, upto = self._take_locked()
            leftover = b"".join(batch + rest)
            if leftover:
                self._fallback.write(leftover)
            self._written = max(self._written, upto)
            self._notify_progress()
            raise
        finally:
            with self._lock:
                self._state = "done"
                self._parked = False

    async def drain(self) -> None:
        """Return once every record accepted before the call is written out.

        Written out means sent on the socket or written to the fallback. Waits as long as
        it takes: put it under a cancel scope.
        """
        with self._lock:
            target = self._accepted
            if self._token is None:
                self._token = trio.lowlevel.current_trio_token()
        while self._written < target:
            if self._progress is None:
                self._progress = trio.Event()
            await self._progress.wait()

    def close(self) -> None:
        """Stop buffering: later records go straight to the fallback; the pump flushes and returns.

        Safe from any thread and idempotent. If no pump is running, buffered records are
        written to the fallback here.
        """
        with self._lock:
            if self._closed:
                return
            if self._truncated:
                # Last in line, like the drop warning: how many records were cut.
                self._append_locked(
                    self._renderer.render_simple(
                        logging.WARNING,
                        _SELF_LOGGER,
                        f"{self._truncated} log records were longer than "
                        f"{self._max_record} bytes and were truncated",
                        truncated=self._truncated,
                    )
                )
            self._closed = True
            self._direct = True
            leftover: list[bytes] = []
            upto = 0
            if self._state != "running":
                leftover, upto = self._take_locked()
            wake = self._parked
            self._parked = False
            if self._room_waiters:
                self._room.notify_all()
        if leftover:
            self._fallback.write(b"".join(leftover))
            self._written = max(self._written, upto)
            wake = True
        if wake:
            self._wake_pump()

    def _take_locked(self) -> tuple[list[bytes], int]:
        batch = self._lines
        if self._unreported and (batch or self._direct):
            batch.append(self._drop_warning_locked())
        self._lines = []
        self._buffered_bytes = 0
        self._stalled = False
        if self._room_waiters:
            self._room.notify_all()
        return batch, self._accepted

    def _notify_progress(self) -> None:
        if self._progress is not None:
            self._progress.set()
            self._progress = trio.Event()

    async def _send(self, stream: trio.abc.SendStream, data: bytes) -> None:
        if not self._socket_dead:
            try:
                await stream.send_all(data)
                return
            except Exception as exc:
                # Usually BrokenResourceError (peer gone) or ClosedResourceError (the runtime
                # closed the stream); anything else is treated the same: the task's logs
                # matter more than the reason the socket failed. Part of `data` may have
                # reached the supervisor; the cut line is dropped there as malformed JSON,
                # and the whole batch is repeated below. Nothing more is written to this
                # stream: its byte position is unknown.
                self._socket_dead = True
                notice = self._renderer.render_simple(
                    logging.WARNING,
                    _SELF_LOGGER,
                    f"logs socket failed ({type(exc).__name__}); writing task logs to stderr",
                )
                data = notice + data
        self._fallback.write(data)
        await trio.lowlevel.checkpoint()

    def _lost(self, lines: int) -> None:
        with self._lock:
            self._dropped += lines
