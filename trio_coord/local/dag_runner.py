"""``trio-coord run BUNDLE DAG``: every task of a DAG, one try at a time, like ``airflow dags test``.

Theory of operation
-------------------
The runner plays the scheduler for one DAG run, and for each try the worker: every try
goes through :func:`~trio_coord.local.supervisor.run_local`, the very path
``trio-coord run BUNDLE DAG TASK`` takes, with a :class:`~trio_coord.local.session.Session`
built on the run's shared :class:`~trio_coord.local.dag_run.XComStore`, so XComs pushed by
one task are what the next one pulls.

Tasks run in the plan's order (:func:`~trio_coord.local.dag_run.plan_dag`). When a task's
turn comes its upstream task instances have all ended, and its trigger rule
(:mod:`.trigger_rules`) settles it: run, skipped or upstream_failed. A
``SkipDownstreamTasks`` from a try marks the named tasks skipped before their turn,
as the API server does. What ends a try decides what happens next:

* ``up_for_retry`` -> the next try (try_number + 1) after the retry delay;
* ``up_for_reschedule`` -> the same try again at its reschedule date;
* ``deferred`` on the temporal trigger -> wait for the moment, then the resume try with
  ``next_method``/``next_kwargs`` plus the trigger's ``event`` (or success, when the
  trigger ends the task itself); any other trigger leaves the task ``deferred``;
* anything else is the task instance's final state.

Every wait is a ``trio.sleep`` bounded by ``--max-wait`` (a longer one stops that task
instance where it is, noted in the summary) and skipped by ``--no-wait``; each task
instance has at most ``--max-tries`` tries; a try interrupted by a signal stops the run.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

import trio

from ..errors import UsageError
from ..protocol.messages import DeferTask, RescheduleTask, RetryTask
from . import dag_run
from .dag_run import FINISHED, PlannedTask, Temporal, XComStore
from .hitl import answered
from .logs import Printer
from .options import RunOptions
from .queries import Catalogue
from .session import Report, Session
from .supervisor import run_local
from .trigger_rules import RUN, UpstreamStates, decide

__all__ = ["DagRunReport", "TaskInstanceResult", "TryRunner", "run_dag"]

#: One try: ``(options, printer, session) -> report`` (tests substitute a fake).
TryRunner = Callable[[RunOptions, Printer, Session], Awaitable[Report]]

_UTC: Final = datetime.UTC


@dataclass(slots=True)
class TaskInstanceResult:
    """One task instance's outcome in the DAG run (a summary row)."""

    task_id: str
    map_index: int
    state: str = "none"
    tries: int = 0
    duration: float = 0.0
    note: str | None = None
    #: XComs the task instance pushed (its last try's), for the JSON summary.
    xcoms: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class DagRunReport:
    """The whole run: every task instance in run order, and the run's state."""

    dag_id: str
    run_id: str
    state: str
    task_instances: list[TaskInstanceResult]
    duration: float
    #: Why the run stopped early (a signal), if it did.
    stopped: str | None = None

    @property
    def status(self) -> int:
        """Exit status: 0 only when the DAG run would succeed."""
        return 0 if self.state == "success" else 1


async def _run_try(opts: RunOptions, printer: Printer, session: Session) -> Report:
    return await run_local(opts, printer, session=session)


class _Waiter:
    """Sleeps for retries, reschedules and deferrals within the run's limits."""

    def __init__(self, opts: RunOptions, printer: Printer) -> None:
        self.opts = opts
        self.printer = printer

    async def until(self, seconds: float, why: str) -> str | None:
        """Wait ``seconds`` (or not, with --no-wait); the reason it did not, if too long."""
        seconds = max(0.0, seconds)
        if self.opts.no_wait or seconds == 0:
            if seconds > 0:
                self.printer.notice(f"{why}: not waiting {seconds:.1f} s (--no-wait)")
            return None
        if seconds > self.opts.max_wait:
            return (
                f"{why} would wait {seconds:.1f} s, more than --max-wait "
                f"{self.opts.max_wait:g} s (use --no-wait or a larger --max-wait)"
            )
        self.printer.notice(f"{why}: waiting {seconds:.1f} s")
        await trio.sleep(seconds)
        return None


class _DagRun:
    def __init__(self, opts: RunOptions, printer: Printer, plan: list[PlannedTask]) -> None:
        self.opts = opts
        self.printer = printer
        self.plan = plan
        self.by_id = {t.task_id: t for t in plan}
        self.store = XComStore()
        #: State stores for the whole run: each task instance's, and each asset's.
        self.task_stores: dict[tuple[str, int], dict[str, Any]] = {}
        self.asset_stores: dict[tuple[str, str], dict[str, Any]] = {}
        self.results: dict[tuple[str, int], TaskInstanceResult] = {}
        #: Skips requested by SkipDownstreamTasks: task id -> map indexes (None: all).
        self.skips: dict[str, set[int] | None] = {}
        self.stopped: str | None = None
        self.waiter = _Waiter(opts, printer)
        #: The bundle's DAGs, once a try made the supervisor read them (shared by later tries).
        self.catalogue: Catalogue | None = None

    # -- the run ------------------------------------------------------------------------

    async def run(self, run_try: TryRunner) -> None:
        for task in self.plan:
            if self.stopped is not None:
                self._settle(task.task_id, -1, "none", f"not run: {self.stopped}")
                continue
            verdict = self._verdict(task)
            if verdict is not None:
                state, note = verdict
                self._settle(task.task_id, -1, state, note)
                continue
            try:
                count = dag_run.mapped_count(task, self.store)
            except dag_run.MissingMapValues as exc:
                self._settle(task.task_id, -1, "upstream_failed", f"cannot expand: {exc}")
                continue
            if count == 0:
                self._settle(task.task_id, -1, "skipped", "mapped over nothing (0 items)")
                continue
            for index in [-1] if count is None else range(count):
                if self._halted():
                    self._settle(task.task_id, index, "none", f"not run: {self.stopped}")
                elif self._skip_requested(task.task_id, index):
                    self._settle(task.task_id, index, "skipped", "skipped by SkipDownstreamTasks")
                else:
                    await self._run_instance(task, index, run_try)

    def _halted(self) -> bool:
        """Whether a try was interrupted (by a signal): nothing more runs."""
        return self.stopped is not None

    def _settle(self, task_id: str, index: int, state: str, note: str | None) -> None:
        self.results[(task_id, index)] = TaskInstanceResult(task_id, index, state, note=note)
        shown = f"{task_id}[{index}]" if index >= 0 else task_id
        self.printer.notice(f"{shown}: {state}" + (f" ({note})" if note else ""))

    def _skip_requested(self, task_id: str, index: int) -> bool:
        if task_id not in self.skips:
            return False
        indexes = self.skips[task_id]
        return indexes is None or index in indexes

    def _verdict(self, task: PlannedTask) -> tuple[str, str] | None:
        """``(state, note)`` when the task does not run; None when it does."""
        if task.task_id in self.skips and self.skips[task.task_id] is None:
            return "skipped", "skipped by SkipDownstreamTasks"
        states = [r.state for (tid, _i), r in self.results.items() if tid in set(task.upstream)]
        setups = [
            r.state
            for (tid, _i), r in self.results.items()
            if tid in set(task.upstream) and self.by_id[tid].is_setup
        ]
        unfinished = sorted({s for s in states if s not in FINISHED})
        if unfinished:
            return "none", f"not run: upstream not finished ({', '.join(unfinished)})"
        decision = decide(task.trigger_rule, UpstreamStates.of(states, setups))
        if decision == RUN:
            return None
        counts = ", ".join(f"{s} {states.count(s)}" for s in sorted(set(states)))
        why = f"trigger rule {task.trigger_rule}, upstream: {counts}"
        if decision == "blocked":
            return "none", f"never runnable ({why}): the DAG run would deadlock"
        return decision, why

    # -- one task instance ----------------------------------------------------------------

    async def _run_instance(self, task: PlannedTask, index: int, run_try: TryRunner) -> None:
        result = TaskInstanceResult(task.task_id, index)
        self.results[(task.task_id, index)] = result
        try_number = 1
        reschedules = 0
        first_start: datetime.datetime | None = None
        next_method: str | None = None
        next_kwargs: dict[str, Any] | None = None
        while True:
            if result.tries >= self.opts.max_tries:
                result.note = f"stopped after {result.tries} tries (--max-tries)"
                return
            opts = dataclasses.replace(
                self.opts,
                task_id=task.task_id,
                map_index=index,
                try_number=try_number,
                should_retry=try_number <= task.retries,
                next_method=next_method,
                next_kwargs=next_kwargs,
                task_reschedule_count=reschedules,
            )
            session = Session(
                opts,
                masker=self.printer.masker,
                xcoms=self.store.values,
                mapped_lengths=self.store.mapped_lengths,
                reschedule_start=first_start if reschedules else None,
                task_instances=self.results,
                task_store=self.task_stores.setdefault((task.task_id, index), {}),
                asset_stores=self.asset_stores,
            )
            session.catalogue = self.catalogue
            started = datetime.datetime.now(_UTC)
            report = await run_try(opts, self.printer, session)
            result.tries += 1
            result.duration += report.duration
            result.state = report.state
            result.note = report.note
            if report.state in ("failed", "up_for_retry") and report.last_error:
                result.note = report.last_error if not report.note else report.note
            result.xcoms = dict(report.xcoms)
            self.catalogue = session.catalogue
            self._record_skips(session)
            next_method, next_kwargs = None, None
            if report.note and report.note.startswith("interrupted by"):
                self.stopped = report.note
                return
            terminal = session.terminal
            if report.state == "up_for_retry":
                override = terminal.retry_delay_seconds if isinstance(terminal, RetryTask) else None
                delay = dag_run.retry_delay(
                    task,
                    try_number,
                    dag_id=self.opts.dag_id,
                    logical_date=session.details.ti_context.dag_run.logical_date,
                    override=override,
                )
                if await self._wait(result, delay, f"retry of {task.task_id}"):
                    return
                try_number += 1
            elif report.state == "up_for_reschedule" and isinstance(terminal, RescheduleTask):
                first_start = first_start or started
                reschedules += 1
                delay = (terminal.reschedule_date - datetime.datetime.now(_UTC)).total_seconds()
                if await self._wait(result, delay, f"reschedule of {task.task_id}"):
                    return
            elif report.state == "deferred" and isinstance(terminal, DeferTask):
                temporal = dag_run.temporal_moment(terminal)
                if not isinstance(temporal, Temporal):
                    result.note = temporal
                    return
                delay = (temporal.moment - datetime.datetime.now(_UTC)).total_seconds()
                if await self._wait(result, delay, f"deferral of {task.task_id}"):
                    return
                if temporal.end_from_trigger:
                    result.state, result.note = "success", "ended by its trigger"
                    return
                next_method = terminal.next_method
                next_kwargs = temporal.next_kwargs
            elif report.state == "awaiting_input":
                try:
                    resumed = answered(self.opts, session.hitl, terminal)
                except UsageError as exc:
                    result.note = str(exc)
                    return
                if resumed is None:
                    result.note = "awaiting input (answer with --hitl-answer)"
                    return
                next_method, next_kwargs = resumed.next_method, resumed.next_kwargs
            else:
                return

    async def _wait(self, result: TaskInstanceResult, seconds: float, why: str) -> bool:
        """Wait; True (and a note) when the task instance must stop where it is."""
        problem = await self.waiter.until(seconds, why)
        if problem is not None:
            result.note = problem
            return True
        return False

    def _record_skips(self, session: Session) -> None:
        for task_id, index in session.skip_downstream:
            if task_id not in self.by_id:
                self.printer.notice(f"SkipDownstreamTasks names {task_id!r}, not in the DAG")
                continue
            if index is None:
                self.skips[task_id] = None
            else:
                current = self.skips.setdefault(task_id, set())
                if current is not None:
                    current.add(index)


async def run_dag(
    opts: RunOptions,
    printer: Printer,
    plan: list[PlannedTask],
    *,
    run_try: TryRunner = _run_try,
) -> DagRunReport:
    """Run every task of ``plan`` as one DAG run and report each task instance."""
    start = trio.current_time()
    now = datetime.datetime.now(_UTC)
    logical = opts.logical_date or now
    # One run id for every try, as the scheduler's run has.
    opts = dataclasses.replace(
        opts, run_id=opts.run_id or f"manual__{logical.isoformat()}", logical_date=logical
    )
    run = _DagRun(opts, printer, plan)
    await run.run(run_try)
    states = {key: r.state for key, r in run.results.items()}
    state = dag_run.dag_run_state(plan, states)
    return DagRunReport(
        dag_id=opts.dag_id,
        run_id=opts.run_id or "",
        state=state,
        task_instances=list(run.results.values()),
        duration=trio.current_time() - start,
        stopped=run.stopped,
    )
