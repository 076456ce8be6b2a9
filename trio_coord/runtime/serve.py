"""One task try, from the dial to the exit code (protocol.md §2.6, §6, §9).

Theory of operation
-------------------
``run_coordinator`` is what ``trio-coord serve`` and a packed bundle call. It installs
the log handler first (records from the very start are buffered, §2.6 step 3), then
runs Trio: a signal watcher, the two dials under one deadline, and :meth:`Run.serve`.

:meth:`Run.serve` owns one nursery with the log pump, the comm channel's reader
and the conversation:

1. wait (bounded) for the supervisor's first frame; a ``DagFileParseRequest`` hands
   the conversation to the parse workload (``parse.py``); anything else but
   ``StartupDetails`` fails closed: a clear log line, nothing sent, exit 1 (§4);
2. run the task under a cancel scope that SIGTERM/SIGINT and a broken comm channel
   cancel, each with a reason (§9.6, §10);
3. send the terminal message with a fresh id and wait for its reply, bounded
   (§6.1); on SIGTERM the bound shrinks to the shutdown grace, because the
   supervisor SIGKILLs 5 s after its SIGTERM;
4. drain the logs (bounded), close both sockets, return the exit code of §9.9.

Exit codes: 0 once a terminal message was delivered (whatever the state: a failure is
reported, not signalled, §7.2); 1 when the runtime itself failed (no first frame,
broken channel, an undeliverable failure); 2 on a second signal (§9.9). A non-zero
code is never returned after a delivered ``SucceedTask`` (§12 row 44).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import inspect
import logging
import math
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

import trio

from ..authoring import Bundle
from ..client import Client
from ..config import Config
from ..context import TaskContext
from ..errors import CoordError, RemoteProtocolError, RequestTimeout, SupervisorGone
from ..protocol.connection import CommConnection, ParseRequest
from ..protocol.messages import Inbound, Request, RetryTask, SucceedTask, TaskState
from ..protocol.states import State
from .comm import CommChannel
from .entry import build_masker_and_pipeline
from .exit_codes import EXIT_FAILURE, EXIT_OK
from .logs import LogPipeline
from .masking import Masker
from .parse import ACK_TIMEOUT, answer_parse
from .proctitle import set_title, task_title
from .task_runner import run_task
from .telemetry import start as start_tracing
from .trace import mark

__all__ = [
    "Run",
    "serve_streams",
]

log = logging.getLogger("trio_coord.runtime")

#: Airflow's native runner cuts ``retry_reason`` to 500 characters; so do we.
MAX_RETRY_REASON = 500


class Run:
    """One task try over two connected streams; :meth:`terminate` may be called any time."""

    def __init__(
        self,
        bundle: Bundle,
        config: Config,
        pipeline: LogPipeline,
        masker: Masker,
        *,
        environ: Mapping[str, str] = os.environ,
        retitle: bool = False,
    ) -> None:
        self._bundle = bundle
        #: Rename the process after the try (only the real entry point owns its process;
        #: tests and the model run many tries inside pytest).
        self._retitle = retitle
        self._config = config
        self._pipeline = pipeline
        self._masker = masker
        self._environ = environ
        self._task_scope = trio.CancelScope()
        self._cancel_reason: str | None = None
        self.terminating = False
        self.outcome_summary: str | None = None
        self.requests_made = 0

    # -- control -------------------------------------------------------------------------

    def terminate(self, reason: str) -> None:
        """Cancel the task (SIGTERM/SIGINT): it ends as failed or up for retry."""
        self.terminating = True
        self._cancel(reason)

    def _cancel(self, reason: str) -> None:
        if self._cancel_reason is None:
            self._cancel_reason = reason
        self._task_scope.cancel(reason)

    def _on_broken(self, error: CoordError) -> None:
        self._cancel(f"{_LOST}: {what_broke(error)}")

    # -- the try -------------------------------------------------------------------------

    async def serve(self, comm: trio.abc.Stream, logs: trio.abc.Stream) -> int:
        """Run the try over connected streams and return the process exit code."""
        pump_done = trio.Event()

        async def pump(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            try:
                await self._pipeline.pump(logs, task_status=task_status)
            finally:
                pump_done.set()

        code = EXIT_FAILURE
        async with trio.open_nursery() as nursery:
            await nursery.start(pump)
            channel = CommChannel(
                comm,
                CommConnection(max_frame_size=self._config.max_frame_size),
                on_broken=self._on_broken,
                write_timeout=self._config.request_timeout,
                reply_spin=self._config.reply_spin,
            )
            try:
                code = await self._converse(channel, nursery)
            finally:
                with trio.CancelScope(shield=True):
                    await channel.aclose()
                    self._pipeline.close()
                    with trio.move_on_after(self._config.shutdown_grace):
                        await pump_done.wait()
                    await trio.aclose_forcefully(logs)
                nursery.cancel_scope.cancel("the try is over")
        return code

    async def _converse(self, channel: CommChannel, nursery: trio.Nursery) -> int:
        config = self._config
        try:
            with trio.fail_after(config.request_timeout):
                first = await channel.receive_first()
        except trio.TooSlowError:
            log.error(
                "the supervisor sent no first frame within %g s; no task ran (exit 1)",
                config.request_timeout,
            )
            return EXIT_FAILURE
        except (RemoteProtocolError, SupervisorGone) as exc:
            log.error("cannot start: %s; no task ran (exit 1)", what_broke(exc))
            return EXIT_FAILURE
        mark("first frame received")
        if isinstance(first, ParseRequest):
            await nursery.start(channel.run_reader)
            ack_timeout = min(ACK_TIMEOUT, config.request_timeout)
            return await answer_parse(channel, first.request, self._bundle, ack_timeout=ack_timeout)

        details = first.details
        ti = details.ti
        ctx = TaskContext(details)
        self._pipeline.bind(
            ti_id=ti.id,
            dag_id=ctx.dag_id,
            task_id=ctx.task_id,
            run_id=ctx.run_id,
            try_number=ctx.try_number,
            map_index=ctx.map_index,
        )
        if self._retitle:
            title = task_title(
                self._bundle.name, ctx.dag_id, ctx.task_id, ctx.try_number, ctx.map_index
            )
            set_title(title)
        await nursery.start(channel.run_reader)
        send: Callable[..., Awaitable[Inbound | None]] = functools.partial(
            channel.request, timeout=config.request_timeout
        )
        tracing = start_tracing(details, self._environ)  # None unless OpenTelemetry applies
        if tracing is not None:
            send = tracing.wrap(send)
        client = Client(send, details, self._masker, self._environ)
        task = self._bundle.find_task(ti.dag_id, ti.task_id)
        log.info("starting %s.%s (run %s, try %d)", ti.dag_id, ti.task_id, ti.run_id, ti.try_number)
        mark("task called")
        span = tracing.task_span() if tracing is not None else contextlib.nullcontext()
        try:
            with span:
                outcome = await run_task(
                    task,
                    ctx,
                    client,
                    scope=self._task_scope,
                    cancel_reason=lambda: self._cancel_reason,
                    missing=None
                    if task is not None
                    else not_in_bundle(self._bundle, ti.dag_id, ti.task_id),
                )
        except (SupervisorGone, RemoteProtocolError, RequestTimeout) as exc:
            log.error(
                "%s while the task ran; the task was stopped and no final state could be"
                " reported (exit 1)",
                what_broke(channel.broken or exc),
            )
            return EXIT_FAILURE
        finally:
            self.requests_made = client.requests_made
        if channel.broken is not None:
            log.error("%s", self._unreported(channel.broken, outcome.summary))
            return EXIT_FAILURE
        self.outcome_summary = outcome.summary
        if self.terminating:
            log.warning("task stopped: %s", outcome.summary)
        else:
            log.info("task finished: %s", outcome.summary)
        terminal = outcome.terminal
        if client.rendered_map_index is not None and isinstance(
            terminal, (SucceedTask, TaskState, RetryTask)
        ):
            # §6.3: the supervisor stores the terminal message's label even when it is
            # null, so a label the task set must be repeated here.
            terminal = dataclasses.replace(terminal, rendered_map_index=client.rendered_map_index)
        mark("task returned")
        carrier = tracing.task_carrier() if tracing is not None else None
        return await self._deliver(channel, self._masked(terminal), carrier=carrier)

    def _unreported(self, broken: CoordError, summary: str) -> str:
        """The last line of a try whose outcome cannot be sent: what happened, in order."""
        lost = what_broke(broken)
        if self._cancel_reason is not None and self._cancel_reason.startswith(_LOST):
            return f"{lost}; the task was cancelled and no final state could be reported (exit 1)"
        if self.terminating:
            return (
                f"the task was stopped ({self._cancel_reason}), then {lost};"
                " no final state could be reported (exit 1)"
            )
        return (
            f"the task ended ({summary}), but {lost} before it could be reported;"
            " no final state was sent (exit 1)"
        )

    def _masked(self, terminal: Request) -> Request:
        """The terminal message with its free text masked and the reason cut as Airflow does."""
        if isinstance(terminal, RetryTask) and terminal.retry_reason is not None:
            reason = self._masker.mask(terminal.retry_reason)[:MAX_RETRY_REASON]
            terminal = dataclasses.replace(terminal, retry_reason=reason)
        if (
            isinstance(terminal, (SucceedTask, TaskState, RetryTask))
            and terminal.rendered_map_index is not None
        ):
            label = self._masker.mask(terminal.rendered_map_index)
            terminal = dataclasses.replace(terminal, rendered_map_index=label)
        return terminal

    async def _deliver(
        self, channel: CommChannel, terminal: Request, *, carrier: dict[str, str] | None = None
    ) -> int:
        """Send the terminal message and wait for its reply, bounded (§6.1); with the task
        span's trace carrier, when there is one (Airflow's runner sends it from the span)."""
        config = self._config
        timeout = config.terminal_timeout
        if self.terminating:
            timeout = min(timeout, config.shutdown_grace)
        failure = isinstance(terminal, RetryTask) or (
            isinstance(terminal, TaskState) and terminal.state == "failed"
        )
        problem: str
        with trio.CancelScope(shield=self.terminating) as scope:
            scope.deadline = trio.current_time() + timeout if math.isfinite(timeout) else math.inf
            try:
                mark("terminal sending")
                reply = await channel.exchange(terminal, timeout=math.inf, carrier=carrier)
                mark("terminal replied")
            except CoordError as exc:
                problem = what_broke(exc)
            else:
                if reply.error is not None:
                    # §6.1: the API call failed; the supervisor replays it once at exit.
                    log.warning(
                        "the supervisor reported %s for %s: %s (it retries at exit)",
                        reply.error.error,
                        terminal.TYPE,
                        reply.error.detail,
                    )
                elif reply.problem is not None:
                    log.warning("odd reply to %s: %s", terminal.TYPE, reply.problem)
                return EXIT_OK
        if scope.cancelled_caught:
            problem = f"no reply within {timeout:g} s"
        written = channel.conn.state is not State.RUNNING
        # §6.1 / §9.9: fail closed when a failure could not be reported or nothing
        # was written; a written success stays exit 0 (the supervisor may have
        # recorded it, and a non-zero exit would then conflict, §12 row 44).
        if failure or not written:
            log.error(
                "could not deliver %s: %s; exiting 1, so the supervisor records the try as failed"
                " (or up for retry)",
                terminal.TYPE,
                problem,
            )
            return EXIT_FAILURE
        log.error(
            "sent %s but got no confirmation: %s; exiting 0, as the supervisor may have recorded it",
            terminal.TYPE,
            problem,
        )
        return EXIT_OK


#: How a cancellation caused by the comm channel breaking starts (see :meth:`Run._unreported`).
_LOST: Final = "lost the supervisor"


def what_broke(error: BaseException) -> str:
    """What a broken comm channel means for the try, in the words an operator needs."""
    if isinstance(error, SupervisorGone):
        return f"the supervisor closed the connection ({error})"
    if isinstance(error, RemoteProtocolError):
        return f"the supervisor sent data that breaks the protocol ({error})"
    if isinstance(error, RequestTimeout):
        return f"the supervisor stopped answering ({error})"
    return f"the connection to the supervisor broke ({error})"


def not_in_bundle(bundle: Bundle, dag_id: str, task_id: str) -> str:
    """The one log line for a try whose dag/task the bundle does not hold.

    It names the bundle (name, version, and the SHA-256 of its entry file, the value a
    packed bundle's manifest lists first under ``sources``) and what it does hold, so
    the drift between the scheduler's DAG file and the deployed bundle is diagnosable
    from the task log alone.
    """
    dag = bundle.dags.get(dag_id)
    if dag is None:
        what = f"dag {dag_id!r} is not in bundle"
        held = "dags: " + (", ".join(sorted(bundle.dags)) or "none")
    else:
        what = f"task {task_id!r} of dag {dag_id!r} is not in bundle"
        held = f"tasks of {dag_id!r}: " + (", ".join(dag.tasks) or "none")
    return (
        f"{what} {bundle.name!r} version {bundle.version!r} (sha256 {_entry_sha256(bundle)}),"
        f" which holds {held}; the DAG file the scheduler read and the deployed bundle differ"
        " (check with: trio-coord verify BUNDLE --dag-file FILE)"
    )


def _entry_sha256(bundle: Bundle) -> str:
    """SHA-256 of the source of the module that defines ``bundle``, or ``unknown``."""
    for module in list(sys.modules.values()):
        if module is None or not any(v is bundle for v in vars(module).values()):
            continue
        try:
            source = inspect.getsource(module)
        except (OSError, TypeError):
            continue
        return hashlib.sha256(source.encode("utf-8")).hexdigest()
    return "unknown"


async def serve_streams(
    bundle: Bundle,
    comm: trio.abc.Stream,
    logs: trio.abc.Stream,
    config: Config | None = None,
    *,
    environ: Mapping[str, str] = os.environ,
) -> int:
    """Run one try over already-connected streams; return the exit code (tests, the model).

    Installs a log handler on the root logger for the duration of the call.
    """
    config = config or Config()
    masker, pipeline = build_masker_and_pipeline(config, environ)
    root = logging.getLogger()
    old_level = root.level
    pipeline.install(root)
    try:
        run = Run(bundle, config, pipeline, masker, environ=environ)
        return await run.serve(comm, logs)
    finally:
        pipeline.uninstall(root)
        root.setLevel(old_level)
