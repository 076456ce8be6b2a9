"""The embedded supervisor: a Trio stand-in for the Task SDK's, on 127.0.0.1.

Theory of operation
-------------------
``trio-coord run`` does what a worker does (protocol.md §2.4-2.5), minus Airflow:

1. bind two listeners on 127.0.0.1 port 0 and start ``python -m trio_coord serve
   --bundle B --comm=127.0.0.1:P --logs=127.0.0.1:Q`` with the caller's environment plus
   ``AIRFLOW__LOGGING__LOGGING_LEVEL`` and ``AIRFLOW__LOGGING__NAMESPACE_LEVELS``;
2. accept one connection on each within the start-up timeout (10 s, as the real one);
   otherwise SIGTERM the process, then SIGKILL it after another start-up timeout (§7.4);
3. send ``StartupDetails`` as frame 0, then answer requests one at a time, in arrival
   order, from the :class:`~trio_coord.local.session.Session` (§3.8);
4. meanwhile print task-log lines and the process's stdout/stderr as they arrive;
5. when the process has exited and its sockets and pipes have reached EOF (bounded),
   derive the final state (§7.1).

Every wait is bounded: the whole run by ``--timeout`` (then SIGTERM, and SIGKILL after
the 5 s grace the real supervisor gives), a process still alive 20 s after its terminal
reply (``task_success_overtime``), sockets still open after exit, and each reply write.
A SIGINT or SIGTERM to ``trio-coord run`` forwards SIGTERM to the task; a second one
SIGKILLs it.

The process is started in a session of its own. The real supervisor does not do that,
but a Ctrl-C in a terminal signals the whole foreground process group, and the runtime
would see the terminal's SIGINT *and* our forwarded SIGTERM - a second signal, which
makes it exit at once without reporting (§9.6).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

import trio

from ..errors import RemoteProtocolError
from ..protocol.framing import NEED_DATA, WIRE_MAX_FRAME_SIZE, FrameDecoder
from ..protocol.peer import decode_request_frame, encode_first_frame, encode_reply_frame
from .logs import SUPERVISOR_LEVELS, Printer, check_log_line, try_context
from .options import DEFAULT_TIMEOUT, RunOptions
from .queries import Catalogue
from .session import Report, Session, describe_exit
from .target import bundle_program

__all__ = ["EmbeddedSupervisor", "Limits", "ProcessLike", "child_command", "run_local"]

_READ_SIZE: Final = 65536
#: Bound on reading the bundle's DAGs for GetDag and asset lookups (one more bundle import).
_CATALOGUE_TIMEOUT: Final = 60.0


@dataclass(frozen=True, slots=True)
class Limits:
    """How long each wait may last, in seconds."""

    #: Both connections must be accepted within this (the real ``startup_timeout``, §2.5).
    startup: float = 10.0
    #: The whole run (``--timeout``).
    run: float = DEFAULT_TIMEOUT
    #: SIGTERM to SIGKILL, as the real supervisor escalates (§7.4).
    grace: float = 5.0
    #: Alive this long after the terminal reply: terminated (``task_success_overtime``, §6.1).
    overtime: float = 20.0
    #: Sockets and pipes still open this long after exit are closed (the real one waits 60 s).
    cleanup: float = 5.0
    #: One reply frame must be written within this.
    write: float = 30.0


class ProcessLike(Protocol):
    """What the supervisor needs of a process (``trio.Process``, or a test's fake)."""

    @property
    def pid(self) -> int: ...

    @property
    def stdout(self) -> trio.abc.ReceiveStream | None: ...

    @property
    def stderr(self) -> trio.abc.ReceiveStream | None: ...

    async def wait(self) -> int: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...


def child_command(bundle: str, comm_port: int, logs_port: int) -> list[str]:
    """The runtime's argv, as a worker builds it: the bundle program plus the two sockets."""
    return [
        *bundle_program(bundle),
        f"--comm=127.0.0.1:{comm_port}",
        f"--logs=127.0.0.1:{logs_port}",
    ]


def child_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment plus the two logging variables a worker sets (§2.4)."""
    env = dict(os.environ if environ is None else environ)
    env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = env.get("AIRFLOW__LOGGING__LOGGING_LEVEL") or "INFO"
    env["AIRFLOW__LOGGING__NAMESPACE_LEVELS"] = env.get("AIRFLOW__LOGGING__NAMESPACE_LEVELS", "")
    # print() output should show up when it happens, not when the process exits.
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class EmbeddedSupervisor:
    """Supervises one process through its try; :meth:`supervise` returns the report."""

    def __init__(self, session: Session, printer: Printer, limits: Limits | None = None) -> None:
        self.session = session
        self.printer = printer
        self.limits = limits or Limits()
        self.returncode: int | None = None
        self.startup_error: str | None = None
        self.interrupted: str | None = None
        self._exited = trio.Event()
        self._terminating = False
        self._log_problems: set[str] = set()
        printer.context = try_context(session.details.ti)

    # -- the whole try ------------------------------------------------------------------------

    async def supervise(
        self,
        process: ProcessLike,
        comm_listener: trio.abc.Listener[trio.abc.Stream],
        logs_listener: trio.abc.Listener[trio.abc.Stream],
        *,
        handle_signals: bool = False,
    ) -> Report:
        """Run the try to its end and derive the report; never raises for the task's doing."""
        start = trio.current_time()
        deadline = start + self.limits.run
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._reap, process)
            if handle_signals:
                await nursery.start(self._watch_signals, process, nursery)
            async with trio.open_nursery() as channels:
                for stream, logger, level in (
                    (process.stdout, "task.stdout", "info"),
                    (process.stderr, "task.stderr", "error"),
                ):
                    if stream is not None:
                        channels.start_soon(self._pump_output, stream, logger, level)
                streams = await self._accept(
                    process, comm_listener, logs_listener, nursery, deadline
                )
                await comm_listener.aclose()
                await logs_listener.aclose()
                if streams is not None:
                    comm, logs = streams
                    channels.start_soon(self._read_logs, logs)
                    channels.start_soon(self._serve_comm, comm, process, nursery)
                with trio.move_on_at(deadline):
                    await self._exited.wait()
                if not self._exited.is_set():
                    self._stop(f"timed out after {self.limits.run:g} s", process, nursery)
                    # SIGTERM, the grace, SIGKILL: the kernel reaps a SIGKILLed process at once.
                    with trio.move_on_after(self.limits.grace + self.limits.cleanup):
                        await self._exited.wait()
                # The sockets and pipes reach EOF once the process is gone; bound that too.
                channels.cancel_scope.deadline = trio.current_time() + self.limits.cleanup
            if channels.cancel_scope.cancelled_caught:
                self.session.defect(
                    f"sockets or pipes still open {self.limits.cleanup:g} s after the process "
                    "ended (a child process holding them?); closed them"
                )
            nursery.cancel_scope.cancel("the try is over")
        return self.session.report(
            self.returncode,
            duration=trio.current_time() - start,
            startup_error=self.startup_error,
            interrupted=self.interrupted,
        )

    # -- process control ------------------------------------------------------------------------

    async def _reap(self, process: ProcessLike) -> None:
        self.returncode = await process.wait()
        self._exited.set()

    def _stop(self, why: str, process: ProcessLike, nursery: trio.Nursery) -> None:
        """Terminate the process the way the real supervisor does: SIGTERM, grace, SIGKILL."""
        if self.interrupted is None:
            self.interrupted = why
        if self._terminating or self._exited.is_set():
            return
        self._terminating = True
        self.printer.notice(f"{why}; sending SIGTERM to the task (pid {process.pid})")
        nursery.start_soon(self._terminate, process, self.limits.grace)

    async def _terminate(self, process: ProcessLike, grace: float) -> None:
        _signal(process, signal.SIGTERM)
        with trio.move_on_after(grace):
            await self._exited.wait()
        if not self._exited.is_set():
            self.printer.notice(f"the task did not exit {grace:g} s after SIGTERM; sending SIGKILL")
            _kill(process)

    async def _watch_signals(
        self,
        process: ProcessLike,
        nursery: trio.Nursery,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for signum in signals:
                name = signal.Signals(signum).name
                if self._terminating and not self._exited.is_set():
                    self.printer.notice(f"second {name}; sending SIGKILL to the task")
                    _kill(process)
                else:
                    self._stop(f"interrupted by {name}", process, nursery)

    async def _overtime(self, process: ProcessLike, nursery: trio.Nursery) -> None:
        with trio.move_on_after(self.limits.overtime):
            await self._exited.wait()
        if not self._exited.is_set():
            self.session.defect(
                f"still running {self.limits.overtime:g} s after its terminal message: a worker "
                "would SIGTERM it too (task_success_overtime, §6.1)"
            )
            self._stop("the task outlived its terminal message", process, nursery)

    # -- start-up -----------------------------------------------------------------------------

    async def _accept(
        self,
        process: ProcessLike,
        comm_listener: trio.abc.Listener[trio.abc.Stream],
        logs_listener: trio.abc.Listener[trio.abc.Stream],
        nursery: trio.Nursery,
        deadline: float,
    ) -> tuple[trio.abc.Stream, trio.abc.Stream] | None:
        got: dict[str, trio.abc.Stream] = {}
        startup_deadline = trio.current_time() + self.limits.startup
        with trio.move_on_at(min(startup_deadline, deadline)):
            async with trio.open_nursery() as waits:

                async def accept(name: str, listener: trio.abc.Listener[trio.abc.Stream]) -> None:
                    got[name] = await listener.accept()
                    if len(got) == 2:
                        waits.cancel_scope.cancel("both connected")

                async def exited() -> None:
                    await self._exited.wait()
                    waits.cancel_scope.cancel("the process exited")

                waits.start_soon(accept, "comm", comm_listener)
                waits.start_soon(accept, "logs", logs_listener)
                waits.start_soon(exited)
        if len(got) == 2:
            return got["comm"], got["logs"]
        for stream in got.values():
            await trio.aclose_forcefully(stream)
        if self._exited.is_set():
            how = (
                "exit status unknown" if self.returncode is None else describe_exit(self.returncode)
            )
            self.startup_error = f"the process ended ({how}) before connecting"
            self.printer.notice(self.startup_error)
        elif deadline < startup_deadline:
            self.startup_error = f"timed out after {self.limits.run:g} s, before connecting"
            self._stop(self.startup_error, process, nursery)
        else:
            missing = " and ".join(n for n in ("comm", "logs") if n not in got)
            self.startup_error = (
                f"the process did not connect ({missing}) within {self.limits.startup:g} s"
            )
            self._terminating = True
            self.printer.notice(f"{self.startup_error}; sending SIGTERM (pid {process.pid})")
            # §2.5: SIGKILL follows after another start-up timeout, not the usual grace.
            nursery.start_soon(self._terminate, process, self.limits.startup)
        return None

    # -- comm -----------------------------------------------------------------------------------

    async def _serve_comm(
        self, comm: trio.abc.Stream, process: ProcessLike, nursery: trio.Nursery
    ) -> None:
        try:
            if not await self._send(comm, encode_first_frame(self.session.details)):
                return
            await self._answer_requests(comm, process, nursery)
        finally:
            await trio.aclose_forcefully(comm)

    async def _answer_requests(
        self, comm: trio.abc.Stream, process: ProcessLike, nursery: trio.Nursery
    ) -> None:
        decoder = FrameDecoder(WIRE_MAX_FRAME_SIZE)
        while True:
            data = await _receive(comm)
            if not data and decoder.buffered:
                # §12 row 5: the supervisor discards a half frame and treats it as EOF.
                self.session.defect("the comm socket closed in the middle of a frame")
                return
            decoder.receive_data(data)
            while True:
                try:
                    payload = decoder.next_frame()
                    if payload is NEED_DATA:
                        break
                    if payload is None:
                        return
                    frame = decode_request_frame(payload)
                except RemoteProtocolError as exc:
                    # §12 rows 1-4: the real supervisor dies (or wedges) here; nothing more
                    # on this socket can be trusted, so end the try.
                    self.session.crash(f"comm: {exc}")
                    self._stop(f"bad frame on the comm socket ({exc})", process, nursery)
                    return
                if self.session.wants_catalogue(frame.body):
                    await self._load_catalogue()
                answer = self.session.answer(frame)
                if answer is None:
                    self.printer.notice(
                        f"request id {frame.request_id} dropped without a reply: {frame.problem}"
                    )
                    continue
                body, error = answer
                if not await self._send(comm, encode_reply_frame(frame.request_id, body, error)):
                    return
                if frame.body is not None and frame.body.TERMINAL:
                    nursery.start_soon(self._overtime, process, nursery)

    async def _load_catalogue(self) -> None:
        """Read the bundle's DAGs (for GetDag and asset lookups) through its parse workload.

        Done at the first such request, not up front: most tries never ask, and the
        parse starts the bundle once more.
        """
        from .parse import run_parse  # parse builds on this module

        spec = self.session.options.bundle
        target, root = _parse_paths(spec)
        outcome = await run_parse(
            spec, target, root, timeout=min(self.limits.run, _CATALOGUE_TIMEOUT)
        )
        self.session.catalogue = Catalogue.from_parse_result(
            outcome.result, outcome.problem or (outcome.log_text() or None)
        )

    async def _send(self, comm: trio.abc.Stream, data: bytes) -> bool:
        with trio.move_on_after(self.limits.write):
            try:
                await comm.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return False  # the process went away; its exit tells the rest (§12 row 17)
            return True
        self.session.defect(f"the task did not read a reply within {self.limits.write:g} s")
        return False

    # -- logs, stdout, stderr -------------------------------------------------------------------

    async def _read_logs(self, logs: trio.abc.Stream) -> None:
        try:
            await _lines(logs, self._log_line)
        finally:
            await trio.aclose_forcefully(logs)

    def _log_line(self, raw: bytes) -> None:
        line = check_log_line(raw)
        if line.fatal is not None:
            self.session.crash(f"logs: {line.fatal}")
            self.printer.notice(f"log line fatal for the real supervisor: {line.fatal}")
        elif line.dropped is not None:
            kind = line.dropped.split(" ", 3)[:3]
            key = " ".join(kind)
            if key not in self._log_problems:
                self._log_problems.add(key)
                self.session.defect(f"logs: the real supervisor drops {line.dropped}")
                self.printer.notice(f"the real supervisor would drop {line.dropped}")
        elif line.record is not None:
            record = line.record
            self.session.log_lines += 1
            if SUPERVISOR_LEVELS.get(str(record.get("level")), 0) >= 40:
                event = record.get("event")
                self.session.last_error = self.printer.masker.mask(str(event or ""))
            self.printer.record(record)

    async def _pump_output(self, stream: trio.abc.ReceiveStream, logger: str, level: str) -> None:
        def line(raw: bytes) -> None:
            # §8.6: split on \n, strip trailing whitespace, UTF-8 with replacement.
            self.session.log_lines += 1
            self.printer.output(logger, level, raw.decode("utf-8", "replace").rstrip())

        try:
            await _lines(stream, line)
        finally:
            await trio.aclose_forcefully(stream)


def _parse_paths(spec: str) -> tuple[str, str]:
    """The file and bundle root a parse request names for ``spec`` (``FILE.py:ATTR`` too)."""
    target = os.path.abspath(spec.partition(":")[0])
    return target, os.path.dirname(target)


async def _receive(stream: trio.abc.ReceiveStream) -> bytes:
    try:
        return bytes(await stream.receive_some(_READ_SIZE))
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return b""


async def _lines(stream: trio.abc.ReceiveStream, handle: Callable[[bytes], None]) -> None:
    """Call ``handle`` with each ``\\n``-terminated line, and a final unterminated one (§8.1)."""
    pending = b""
    while True:
        data = await _receive(stream)
        if not data:
            if pending:
                handle(pending)
            return
        pending += data
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            handle(raw)


def _signal(process: ProcessLike, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(sig)


def _kill(process: ProcessLike) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.kill()


async def run_local(
    opts: RunOptions,
    printer: Printer,
    *,
    limits: Limits | None = None,
    handle_signals: bool = True,
    session: Session | None = None,
) -> Report:
    """Run one try of ``opts``' task in a real ``trio-coord serve`` process; return the report.

    ``session`` is the supervisor state to answer from (a whole-DAG run passes one that
    shares its XCom store); by default a fresh one for ``opts``.

    Raises:
        OSError: the listeners could not be bound.
    """
    limits = limits or Limits(run=opts.timeout)
    if session is None:
        session = Session(opts, masker=printer.masker)
    supervisor = EmbeddedSupervisor(session, printer, limits)
    (comm_listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1", backlog=1)
    (logs_listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1", backlog=1)
    command = child_command(opts.bundle, _port(comm_listener), _port(logs_listener))
    try:
        process = await trio.lowlevel.open_process(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_environment(),
            start_new_session=True,
        )
    except OSError as exc:
        await comm_listener.aclose()
        await logs_listener.aclose()
        return session.report(
            None, duration=0.0, startup_error=f"could not start {command[0]}: {exc}"
        )
    try:
        return await supervisor.supervise(
            process, comm_listener, logs_listener, handle_signals=handle_signals
        )
    finally:
        if process.returncode is None:
            _kill(process)
            with trio.CancelScope(shield=True), trio.move_on_after(limits.cleanup):
                await process.wait()


def _port(listener: trio.SocketListener) -> int:
    port: int = listener.socket.getsockname()[1]
    return port
