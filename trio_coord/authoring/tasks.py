"""A task: a plain function, its id in the DAG, its options and its place in the graph.

A task asks for what it needs by naming a parameter (see :data:`INJECTABLE`):
``context``, ``client``, ``log`` and the common context fields. Its return value
becomes the ``return_value`` XCom. Async functions run in the Trio task (or, with
``event_loop="asyncio"``, on their own asyncio loop in a worker thread); plain
functions run in a worker thread with a blocking client.
"""

from __future__ import annotations

import datetime
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from ..errors import UsageError

if TYPE_CHECKING:
    from .dags import Dag
    from .edges import Nodes
    from .groups import TaskGroup
    from .mapping import PartialTask, TaskMapping
    from .taskflow import BoundCall
    from .xcom_args import XComArg

__all__ = [
    "EVENT_LOOPS",
    "INJECTABLE",
    "TASK_KINDS",
    "FailTask",
    "SkipTask",
    "Task",
    "TaskTimeout",
    "Wirable",
    "check_event_loop",
]

#: The kinds of task the decorators declare: ``@dag.task`` and its Airflow-named variants.
TASK_KINDS: Final = ("python", "branch", "short_circuit", "sensor", "trigger_dagrun", "hitl")

#: What an ``async def`` task's coroutine runs on (``event_loop=``, trio-coord's own option:
#: never exported to Airflow). "asyncio" runs it on a fresh asyncio loop in a worker thread.
EVENT_LOOPS: Final = ("trio", "asyncio")

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
    "outlet_events": "the outlet event accessors (``outlet_events[asset].extra[...] = ...``)",
    "inlet_events": "the inlet events (``inlet_events[asset]``: that asset's events)",
    "params": "the run's params: the DAG's defaults with the run's conf on top, validated",
}


class SkipTask(Exception):
    """Raise from a task to end it as ``skipped`` (Airflow's AirflowSkipException)."""


class FailTask(Exception):
    """Raise from a task to fail it without a retry, whatever the retries left."""


class TaskTimeout(Exception):
    """The try ran past its ``execution_timeout`` (Airflow's AirflowTaskTimeout).

    Raised by the runtime, not by tasks; a retry policy can match it.
    """


class Wirable:
    """``>>`` and ``<<`` for tasks and task groups (resolved by :mod:`.edges`)."""

    def __rshift__(self, other: Nodes) -> Nodes:
        from .edges import link

        link(self, other)  # type: ignore[arg-type]
        return other

    def __lshift__(self, other: Nodes) -> Nodes:
        from .edges import link_up

        link_up(self, other)  # type: ignore[arg-type]
        return other

    def __rrshift__(self, other: Nodes) -> Any:
        from .edges import link_up

        link_up(self, other)  # type: ignore[arg-type]
        return self

    def __rlshift__(self, other: Nodes) -> Any:
        from .edges import link

        link(self, other)  # type: ignore[arg-type]
        return self


@dataclass(eq=False)
class Task(Wirable):
    """One task: its function, its identity in the DAG and how it is called.

    ``options`` holds only what the author wrote on the task; :meth:`option` resolves a
    value the way Airflow does (the task's own, then the DAG's ``default_args``).
    """

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
    #: Every other option written on the task (Airflow's BaseOperator argument names).
    options: dict[str, Any] = field(default_factory=dict)
    #: The group holding the task (None: the DAG's root).
    group: TaskGroup | None = None
    #: What the task is (one of :data:`TASK_KINDS`); the runtime acts on it.
    kind: str = "python"
    #: The kind's own options (a sensor's ``poke_interval``, ``mode``...), as written.
    kind_options: dict[str, Any] = field(default_factory=dict)
    #: The event loop an async task runs on (one of :data:`EVENT_LOOPS`).
    event_loop: str = "trio"
    #: The arguments the DAG passed when it called the task (TaskFlow), or None.
    call: BoundCall | None = None
    #: Functions resuming the task after a deferral, by method name (see :meth:`resume`).
    resumers: dict[str, Callable[..., Any]] = field(default_factory=dict)
    #: Set by ``expand``/``expand_kwargs``: the task runs once per element (see .mapping).
    mapping: TaskMapping | None = None

    @property
    def is_mapped(self) -> bool:
        return self.mapping is not None

    def partial(self, **constants: Any) -> PartialTask:
        """Arguments every mapped instance receives; follow with ``.expand(...)``."""
        from .mapping import PartialTask

        return PartialTask(self, constants)

    def expand(self, **inputs: Any) -> XComArg:
        """Map the task over lists, dicts or upstream outputs (Airflow's ``expand``)."""
        return self.partial().expand(**inputs)

    def expand_kwargs(self, kwargs: Any) -> XComArg:
        """Map the task over a list of argument dicts (Airflow's ``expand_kwargs``)."""
        return self.partial().expand_kwargs(kwargs)

    @property
    def is_async(self) -> bool:
        """Async tasks run in the runtime's Trio task; others in a worker thread."""
        return inspect.iscoroutinefunction(self.fn)

    def option(self, name: str) -> Any:
        """The effective value of an option, or None when neither the task nor the DAG sets it."""
        own = {"retries": self.retries, "retry_delay": self.retry_delay, "queue": self.queue}
        if name in own:
            if own[name] is not None:
                return own[name]
        elif name in self.options:
            return self.options[name]
        return self.dag.task_default(name)

    @property
    def effective_queue(self) -> str:
        queue = self.option("queue")
        if not isinstance(queue, str):  # the validator admits only strings
            raise TypeError(f"task {self.task_id!r}: queue {queue!r} is not a string")
        return queue

    @property
    def effective_retries(self) -> int:
        retries = self.option("retries")
        if not isinstance(retries, int):  # the validator admits only integers
            raise TypeError(f"task {self.task_id!r}: retries {retries!r} is not an integer")
        return retries

    def set_upstream(self, other: Nodes) -> None:
        """``self << other``: Airflow's method name for the same edge."""
        from .edges import link_up

        link_up(self, other)

    def add_upstream_edge(self, other: Task) -> None:
        """Add one task edge (no group bookkeeping, no event): for :mod:`.edges` only."""
        if other.dag is not self.dag:
            raise UsageError(f"{other.task_id!r} and {self.task_id!r} belong to different DAGs")
        if other is self:
            raise UsageError(f"task {self.task_id!r} cannot depend on itself")
        if other.task_id not in self.upstream:
            self.upstream.append(other.task_id)

    @property
    def output(self) -> XComArg:
        """This task's return value as an argument for other tasks (Airflow's ``.output``)."""
        from .xcom_args import XComArg

        return XComArg(self)

    def resume(self, method_name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """``@task.resume("name")``: the function a try resumed after ``Defer(method_name=
        "name")`` runs instead of the task's (see :mod:`.deferral`)."""
        from .deferral import register_resume

        return lambda fn: register_resume(self, method_name, fn)

    @property
    def function(self) -> Callable[..., Any]:
        """The undecorated function (Airflow's ``.function``), for unit tests."""
        return self.fn

    def __call__(self, *args: Any, **kwargs: Any) -> XComArg:
        """Bind arguments as Airflow's TaskFlow does (``b(a())``) and return the output;
        the function itself runs only in a task try (unit tests call :attr:`function`)."""
        from .taskflow import bind_call

        return bind_call(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<Task {self.dag.dag_id}.{self.task_id}>"


def check_event_loop(where: str, value: Any, fn: Callable[..., Any]) -> str:
    """``event_loop=`` must name a known loop, and asyncio needs a coroutine function."""
    if value not in EVENT_LOOPS:
        raise UsageError(
            f"{where}: event_loop must be one of {', '.join(map(repr, EVENT_LOOPS))}, got {value!r}"
        )
    if value == "asyncio" and not inspect.iscoroutinefunction(fn):
        raise UsageError(
            f"{where}: event_loop='asyncio' runs a coroutine, so the task must be an async def "
            "function (a plain function already runs in a thread, where it may call asyncio.run)"
        )
    return str(value)


def injected_parameters(fn: Callable[..., Any], where: str) -> tuple[str, ...]:
    """The parameters of ``fn`` the runtime fills in; any other one must have a default or
    be given by a call in the DAG (checked once the DAG is complete: ``taskflow.finalize_dag``)."""
    if not callable(fn):
        raise UsageError(f"{where}: a task must be a function")
    return tuple(
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name in INJECTABLE
    )


def as_tasks(where: str, tasks: Iterable[Any]) -> list[Task]:
    """``depends_on=`` must name tasks (not ids or groups)."""
    out = list(tasks)
    for t in out:
        if not isinstance(t, Task):
            raise UsageError(f"{where}: depends_on takes tasks, got {type(t).__name__}")
    return out
