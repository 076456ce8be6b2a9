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
    schedule: str | None = None
    start_date: datetime.datetime | None = None
    catchup: bool = False
    description: str | None = None
    tags: tuple[str, ...] = ()
    retries: int = 0
    retry_delay: datetime.timedelta | None = None
    queue: str = TRIO_COORD_QUEUE
    max_active_runs: int | None = None
    tasks: dict[str, Task] = field(default_factory=dict)

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
            if retries is not None and (not isinstance(retries, int) or retries < 0):
                raise UsageError(f"task {tid!r}: retries must be a non-negative integer")
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
        schedule: str | None = None,
        start_date: datetime.datetime | None = None,
        catchup: bool = False,
        description: str | None = None,
        tags: Iterable[str] = (),
        retries: int = 0,
        retry_delay: datetime.timedelta | None = None,
        queue: str = TRIO_COORD_QUEUE,
        max_active_runs: int | None = None,
    ) -> Dag:
        """Declare a DAG; its tasks are added with ``@dag.task``."""
        _check_id("dag id", dag_id)
        if dag_id in self.dags:
            raise UsageError(f"dag id {dag_id!r} is declared twice in bundle {self.name!r}")
        if start_date is not None and start_date.tzinfo is None:
            raise UsageError(f"DAG {dag_id!r}: start_date must be timezone-aware")
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
