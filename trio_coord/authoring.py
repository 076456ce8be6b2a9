"""The Python authoring API: a bundle of DAGs whose tasks are plain functions.

A bundle file declares DAGs and tasks with decorators; the same declarations serve
the runtime (which looks a task up by ``(dag_id, task_id)`` from ``StartupDetails``)
and the packer/Airflow side (which needs ids, dependencies, retries and schedule).
Nothing here imports trio or Airflow, so a bundle imports anywhere.

A task asks for what it needs by naming a parameter (see :data:`INJECTABLE`):
``context``, ``client``, ``log`` and the common context fields. Its return value
becomes the ``return_value`` XCom. Async functions run in the Trio task; plain
functions run in a worker thread with a blocking client.
"""

from __future__ import annotations

import datetime
import difflib
import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar, overload

from .errors import UsageError

__all__ = [
    "Bundle",
    "Dag",
    "Task",
    "SkipTask",
    "FailTask",
    "INJECTABLE",
    "TRIO_COORD_QUEUE",
]

#: The queue stub tasks are routed to unless a DAG or task says otherwise; the worker's
#: ``[sdk] queue_to_coordinator`` maps it to the coordinator that runs bundles.
TRIO_COORD_QUEUE: Final = "trio-coord"

#: Parameter names a task function may declare, and what each receives.
INJECTABLE: Final[Mapping[str, str]] = {
    "context": "the TaskContext (everything below, and more)",
    "ctx": "the TaskContext",
    "client": "the supervisor client (async for async tasks, blocking for sync ones)",
    "log": "a logging.Logger whose records reach the task log",
    "logger": "a logging.Logger whose records reach the task log",
    "ti": "the TaskInstance from StartupDetails",
    "dag_run": "the DagRun from the run context",
    "dag_id": "str",
    "task_id": "str",
    "run_id": "str",
    "map_index": "int (-1 when not mapped)",
    "try_number": "int",
    "start_date": "aware datetime this try started",
    "logical_date": "aware datetime or None",
    "data_interval_start": "aware datetime or None",
    "data_interval_end": "aware datetime or None",
    "conf": "the run's conf mapping (empty when none)",
}

_ID_RE: Final = re.compile(r"^[A-Za-z0-9_.\-]{1,250}$")

#: Schedule strings Airflow 3.3 accepts besides cron expressions. ``@once`` and
#: ``@continuous`` are their own timetables; the others are cron shorthands.
SCHEDULE_PRESETS: Final = frozenset(
    {"@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly"}
)
#: One cron field: numbers, names (``MON``, ``JAN``), ``*``, ranges, steps, lists and the
#: ``? L W #`` extensions. A shape check only: Airflow's parser has the last word at parse
#: time, but a typo like ``"daily"`` or ``"0 * *"`` fails here, at declaration.
_CRON_FIELD: Final = re.compile(r"^[0-9A-Za-z*?,/#\-]+$")

#: A schedule: None (triggered only), a preset or cron string, or a fixed interval.
Schedule = str | datetime.timedelta | None

F = TypeVar("F", bound=Callable[..., Any])


class SkipTask(Exception):
    """Raise from a task to end it as ``skipped`` (Airflow's AirflowSkipException)."""


class FailTask(Exception):
    """Raise from a task to fail it without a retry, whatever the retries left."""


def _check_id(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise UsageError(
            f"{kind} {value!r} is not valid: use 1-250 letters, digits, '_', '-' or '.'"
        )
    return value


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to a mistyped ``word``, or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_keywords(where: str, given: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Unknown keywords are typos; say which one and what was probably meant."""
    for key in given:
        raise UsageError(f"{where}: unknown keyword {key!r}{did_you_mean(key, allowed)}")


def _check_settings(
    where: str,
    *,
    retries: Any = None,
    retry_delay: Any = None,
    queue: Any = None,
) -> None:
    """The settings a DAG and a task share, checked the same way for both.

    ``None`` means "not given" (a task then inherits the DAG's value).
    """
    if retries is not None and (
        isinstance(retries, bool) or not isinstance(retries, int) or retries < 0
    ):
        raise UsageError(f"{where}: retries must be a non-negative integer, got {retries!r}")
    if retry_delay is not None and (
        not isinstance(retry_delay, datetime.timedelta) or retry_delay < datetime.timedelta(0)
    ):
        raise UsageError(
            f"{where}: retry_delay must be a non-negative datetime.timedelta, got {retry_delay!r}"
        )
    if queue is not None and (not isinstance(queue, str) or not queue.strip()):
        raise UsageError(f"{where}: queue must be a non-empty string, got {queue!r}")


def _check_schedule(where: str, schedule: Any, max_active_runs: int | None) -> None:
    if schedule is None:
        return
    if isinstance(schedule, datetime.timedelta):
        if schedule <= datetime.timedelta(0):
            raise UsageError(f"{where}: a timedelta schedule must be positive, got {schedule!r}")
        return
    if not isinstance(schedule, str):
        raise UsageError(
            f"{where}: schedule must be None, a cron string, a preset such as '@daily', or a "
            f"datetime.timedelta, got {type(schedule).__name__}"
        )
    if schedule.startswith("@"):
        if schedule not in SCHEDULE_PRESETS:
            raise UsageError(
                f"{where}: unknown schedule preset {schedule!r}{did_you_mean(schedule, SCHEDULE_PRESETS)} "
                f"(presets: {', '.join(sorted(SCHEDULE_PRESETS))})"
            )
        if schedule == "@continuous" and (max_active_runs or 0) != 1:
            raise UsageError(
                f"{where}: schedule '@continuous' needs max_active_runs=1 "
                "(Airflow refuses more than one continuous run at a time)"
            )
        return
    fields = schedule.split()
    if len(fields) not in (5, 6) or not all(_CRON_FIELD.match(f) for f in fields):
        hint = did_you_mean("@" + schedule, SCHEDULE_PRESETS) if len(fields) == 1 else ""
        raise UsageError(
            f"{where}: schedule {schedule!r} is not a cron expression (5 fields, e.g. "
            f"'0 * * * *') or a preset such as '@daily'{hint}"
        )


@dataclass(eq=False)
class Task:
    """One task: its function, its identity in the DAG and how it is called."""

    dag: Dag
    task_id: str
    fn: Callable[..., Any]
    retries: int | None = None
    retry_delay: datetime.timedelta | None = None
    multiple_outputs: bool = False
    queue: str | None = None
    upstream: list[str] = field(default_factory=list)
    #: Parameter names of ``fn`` that receive injected values (all of them).
    inject: tuple[str, ...] = ()

    @property
    def is_async(self) -> bool:
        """Async tasks run in the runtime's Trio task; others in a worker thread."""
        return inspect.iscoroutinefunction(self.fn)

    @property
    def effective_queue(self) -> str:
        return self.queue or self.dag.queue

    @property
    def effective_retries(self) -> int:
        if self.retries is not None:
            return self.retries
        return self.dag.retries

    def __rshift__(self, other: Task | Iterable[Task]) -> Task | Iterable[Task]:
        for t in [other] if isinstance(other, Task) else list(other):
            t.set_upstream(self)
        return other

    def __lshift__(self, other: Task | Iterable[Task]) -> Task | Iterable[Task]:
        for t in [other] if isinstance(other, Task) else list(other):
            self.set_upstream(t)
        return other

    def __rrshift__(self, other: Iterable[Task]) -> Task:
        for t in other:
            self.set_upstream(t)
        return self

    def __rlshift__(self, other: Iterable[Task]) -> Task:
        for t in other:
            t.set_upstream(self)
        return self

    def set_upstream(self, other: Task) -> None:
        if other.dag is not self.dag:
            raise UsageError(f"{other.task_id!r} and {self.task_id!r} belong to different DAGs")
        if other is self:
            raise UsageError(f"task {self.task_id!r} cannot depend on itself")
        if other.task_id not in self.upstream:
            self.upstream.append(other.task_id)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function directly, so tasks stay unit-testable."""
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Task {self.dag.dag_id}.{self.task_id}>"


@dataclass(eq=False)
class Dag:
    """A DAG of the bundle: what Airflow schedules, and where its tasks live."""

    bundle: Bundle
    dag_id: str
    schedule: Schedule = None
    start_date: datetime.datetime | None = None
    catchup: bool = False
    description: str | None = None
    tags: tuple[str, ...] = ()
    retries: int = 0
    retry_delay: datetime.timedelta | None = None
    queue: str = TRIO_COORD_QUEUE
    max_active_runs: int | None = None
    tasks: dict[str, Task] = field(default_factory=dict)

    @property
    def schedule_text(self) -> str | None:
        """The schedule as text for JSON documents and ``inspect`` (a timedelta is not JSON)."""
        if isinstance(self.schedule, datetime.timedelta):
            return f"every {self.schedule}"
        return self.schedule

    @overload
    def task(self, fn: F) -> Task: ...

    @overload
    def task(
        self,
        *,
        task_id: str | None = None,
        retries: int | None = None,
        retry_delay: datetime.timedelta | None = None,
        multiple_outputs: bool = False,
        queue: str | None = None,
        depends_on: Iterable[Task] = (),
    ) -> Callable[[F], Task]: ...

    def task(
        self,
        fn: F | None = None,
        *,
        task_id: str | None = None,
        retries: int | None = None,
        retry_delay: datetime.timedelta | None = None,
        multiple_outputs: bool = False,
        queue: str | None = None,
        depends_on: Iterable[Task] = (),
    ) -> Task | Callable[[F], Task]:
        """Declare a task; use as ``@dag.task`` or ``@dag.task(task_id=..., ...)``."""

        def register(func: F) -> Task:
            tid = _check_id("task id", task_id or func.__name__)
            if tid in self.tasks:
                raise UsageError(f"task id {tid!r} is declared twice in DAG {self.dag_id!r}")
            _check_settings(
                f"task {self.dag_id}.{tid}", retries=retries, retry_delay=retry_delay, queue=queue
            )
            t = Task(
                dag=self,
                task_id=tid,
                fn=func,
                retries=retries,
                retry_delay=retry_delay,
                multiple_outputs=multiple_outputs,
                queue=queue,
                inject=_injected_parameters(func, f"{self.dag_id}.{tid}"),
            )
            self.tasks[tid] = t
            for up in depends_on:
                t.set_upstream(up)
            return t

        if fn is not None:
            return register(fn)
        return register

    def __repr__(self) -> str:
        return f"<Dag {self.dag_id} tasks={list(self.tasks)}>"


def _injected_parameters(fn: Callable[..., Any], where: str) -> tuple[str, ...]:
    if not callable(fn):
        raise UsageError(f"{where}: a task must be a function")
    names = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name in INJECTABLE:
            names.append(p.name)
        elif p.default is p.empty:
            known = ", ".join(INJECTABLE)
            raise UsageError(
                f"{where}: parameter {p.name!r} has no default and is not one the runtime "
                f"provides ({known})"
            )
    return tuple(names)


_DAG_KEYWORDS: Final = (
    "schedule",
    "start_date",
    "catchup",
    "description",
    "tags",
    "retries",
    "retry_delay",
    "queue",
    "max_active_runs",
)


class Bundle:
    """A named, versioned set of DAGs: the unit that is packed and deployed."""

    def __init__(self, name: str, version: str = "0.1.0", *, description: str | None = None):
        self.name = _check_id("bundle name", name)
        if not isinstance(version, str) or not version.strip():
            raise UsageError(f"bundle version {version!r} must be a non-empty string")
        self.version = version
        self.description = description
        self.dags: dict[str, Dag] = {}

    def dag(
        self,
        dag_id: str,
        *,
        schedule: Schedule = None,
        start_date: datetime.datetime | None = None,
        catchup: bool = False,
        description: str | None = None,
        tags: Iterable[str] = (),
        retries: int = 0,
        retry_delay: datetime.timedelta | None = None,
        queue: str = TRIO_COORD_QUEUE,
        max_active_runs: int | None = None,
        **unknown: Any,
    ) -> Dag:
        """Declare a DAG; its tasks are added with ``@dag.task``.

        Everything is checked here, so a mistake fails where it was written (and at
        ``trio-coord pack``) rather than later in Airflow's DAG processor.
        """
        _check_id("dag id", dag_id)
        where = f"DAG {dag_id!r}"
        _check_keywords(where, unknown, _DAG_KEYWORDS)
        if dag_id in self.dags:
            raise UsageError(f"dag id {dag_id!r} is declared twice in bundle {self.name!r}")
        _check_settings(where, retries=retries, retry_delay=retry_delay, queue=queue)
        if start_date is not None and (
            not isinstance(start_date, datetime.datetime) or start_date.tzinfo is None
        ):
            raise UsageError(
                f"{where}: start_date must be a timezone-aware datetime, e.g. "
                "datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)"
            )
        if max_active_runs is not None and (
            isinstance(max_active_runs, bool)
            or not isinstance(max_active_runs, int)
            or max_active_runs < 1
        ):
            raise UsageError(
                f"{where}: max_active_runs must be a positive integer, got {max_active_runs!r}"
            )
        _check_schedule(where, schedule, max_active_runs)
        if isinstance(tags, str):
            raise UsageError(f"{where}: tags must be a list of strings, not one string")
        d = Dag(
            bundle=self,
            dag_id=dag_id,
            schedule=schedule,
            start_date=start_date,
            catchup=catchup,
            description=description,
            tags=tuple(tags),
            retries=retries,
            retry_delay=retry_delay,
            queue=queue,
            max_active_runs=max_active_runs,
        )
        self.dags[dag_id] = d
        return d

    def find_task(self, dag_id: str, task_id: str) -> Task | None:
        """The task for a ``StartupDetails``, or None (which ends the try as removed)."""
        d = self.dags.get(dag_id)
        return None if d is None else d.tasks.get(task_id)

    def __repr__(self) -> str:
        return f"<Bundle {self.name} {self.version} dags={list(self.dags)}>"
