"""TaskFlow: calling a task wires it, as Airflow's ``b(a())`` and ``c(x=a()["key"])`` do.

In an Airflow DAG file, calling a ``@task`` function does not run it: it *binds* the call's
arguments to the task, makes every upstream output passed in (an ``XComArg``, also inside
lists, tuples and dicts) an upstream task, and returns the task's own output for the next
call. trio-coord does the same with the task already declared by ``@dag.task``:

* the first call binds its arguments to that task (:class:`BoundCall`);
* a later call declares a copy (same function, options and group) with Airflow's id
  suffix (``load__1``, ``load__2``...) and binds to it;
* the edges go through the same machinery as ``>>`` (so the export replays them in
  order), and the runtime pulls each ``XComArg`` before calling the function
  (``runtime/arguments.py``).

A required parameter must be bound by the time the DAG is complete: :func:`finalize_dag`
checks that, and runs when a ``@bundle.dag`` function returns, when a ``with`` block
ends, and before any export, serialization, pack or run of the bundle.

The Airflow-shaped spellings live here too: :func:`task` and :func:`task_group`, which
act on the DAG that is active (:mod:`.context`), and :class:`DagFunction`, the
``@bundle.dag`` decorator form.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from .context import activate, require_current
from .tasks import INJECTABLE, Task
from .xcom_args import XComArg

if TYPE_CHECKING:
    from .dags import Bundle, Dag
    from .decorators import TaskDecorator
    from .groups import TaskGroup

__all__ = [
    "BoundCall",
    "DagFunction",
    "bind_call",
    "finalize_dag",
    "iter_xcom_args",
    "task",
    "task_group",
]


@dataclass(frozen=True, slots=True)
class BoundCall:
    """The arguments a DAG passed to a task, as written (``XComArg`` values unresolved)."""

    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def bound_names(self, fn: Callable[..., Any]) -> set[str]:
        """The parameter names of ``fn`` this call gives a value to."""
        bound = inspect.signature(fn).bind_partial(*self.args, **self.kwargs)
        return set(bound.arguments)


def iter_xcom_args(value: Any) -> Iterator[XComArg]:
    """Every ``XComArg`` in ``value``, looking inside lists, tuples, sets and dict values."""
    if isinstance(value, XComArg):
        yield value
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from iter_xcom_args(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_xcom_args(item)


def _local_id(t: Task) -> str:
    """The id the task was declared with, without its group's prefix."""
    group = t.group
    if group is not None and group.prefix_group_id and group.group_id is not None:
        return t.task_id[len(group.group_id) + 1 :]
    return t.task_id


def unique_task_id(dag: Dag, group: TaskGroup | None, local: str) -> str:
    """The id a repeated call declares, by Airflow's rule: ``core__N`` with N one past the
    highest suffix any task of the DAG already has for that id (``get_unique_task_id``)."""
    full = group.child_id(local) if group is not None else local
    if full not in dag.tasks:
        return local
    prefix = re.escape(re.split(r"__\d+$", full)[0])
    suffixes = [int(m.group(1)) for tid in dag.tasks if (m := re.match(rf"^{prefix}__(\d+)$", tid))]
    core = re.split(r"__\d+$", local)[0]
    return f"{core}__{max(suffixes, default=0) + 1}"


def _copy(t: Task) -> Task:
    """A new task of the same function, kind, options and group (Airflow's second call)."""
    return t.dag.declare_task(
        t.fn,
        kind=t.kind,
        kind_options=t.kind_options,
        task_id=unique_task_id(t.dag, t.group, _local_id(t)),
        retries=t.retries,
        retry_delay=t.retry_delay,
        multiple_outputs=t.multiple_outputs,
        queue=t.queue,
        group=t.group,
        **t.options,
    )


def _shape(fn: Callable[..., Any]) -> str:
    """``name(a, b=1, *, c)``: the parameters a call must match, without annotations."""
    sig = inspect.signature(fn)
    params = [p.replace(annotation=p.empty) for p in sig.parameters.values()]
    return f"{getattr(fn, '__name__', 'task')}{sig.replace(parameters=params, return_annotation=sig.empty)}"


def bind_call(t: Task, args: tuple[Any, ...], kwargs: dict[str, Any]) -> XComArg:
    """``t(*args, **kwargs)`` in a DAG: bind the call, wire the upstream tasks, return the output.

    Raises:
        UsageError: the function does not accept these arguments, an argument names a
            parameter the runtime fills in, or an upstream output is of another DAG.
    """
    where = f"task {t.dag.dag_id}.{t.task_id}"
    try:
        bound = inspect.signature(t.fn).bind_partial(*args, **kwargs)
    except TypeError as exc:
        raise UsageError(f"{where}: the call does not match {_shape(t.fn)}: {exc}") from None
    injected = sorted(set(bound.arguments) & set(t.inject))
    if injected:
        raise UsageError(
            f"{where}: {', '.join(map(repr, injected))} is filled in by the runtime when the "
            "task runs; do not pass it in the call (rename the parameter to pass your own value)"
        )
    upstream: dict[int, Task] = {}
    for arg in iter_xcom_args((args, kwargs)):
        if arg.task.dag is not t.dag:
            raise UsageError(
                f"{where}: {arg!r} is the output of a task of another DAG; "
                "only outputs of the same DAG can be passed"
            )
        upstream.setdefault(id(arg.task), arg.task)
    target = t if t.call is None else _copy(t)
    if target in upstream.values():
        raise UsageError(f"{where}: a task cannot take its own output as an argument")
    target.call = BoundCall(tuple(args), dict(kwargs))
    if upstream:
        target << list(upstream.values())
    return target.output


def unbound_parameters(t: Task) -> list[str]:
    """Required parameters of the task's function that nothing gives a value to.

    A mapped task's parameters were checked by ``expand`` (``expand_kwargs`` over an upstream
    output can only be checked when the try runs).
    """
    if t.mapping is not None:
        return []
    bound = t.call.bound_names(t.fn) if t.call is not None else set()
    return [
        p.name
        for p in inspect.signature(t.fn).parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and p.default is p.empty
        and p.name not in t.inject
        and p.name not in bound
    ]


def finalize_dag(dag: Dag) -> None:
    """Refuse a task whose required parameter is never given a value.

    Raises:
        UsageError: names the task and parameter, and the three ways to fix it.
    """
    for t in dag.tasks.values():
        missing = unbound_parameters(t)
        if missing:
            name = missing[0]
            raise UsageError(
                f"task {dag.dag_id}.{t.task_id}: parameter {name!r} has no default and nothing "
                f"passes it: call the task in the DAG with it (e.g. {_local_id(t)}({name}="
                f"other_task()) to pass another task's output), give it a default, or name it "
                f"as one of the values the runtime provides ({', '.join(INJECTABLE)})"
            )


def finalize_bundle(bundle: Bundle) -> None:
    """:func:`finalize_dag` on every DAG of the bundle."""
    for dag in bundle.dags.values():
        finalize_dag(dag)


def _decorator_here(what: str) -> TaskDecorator:
    active = require_current(what)
    return active.group.task if active.group is not None else active.dag.task


class _ContextTask:
    """``from trio_coord import task``: the active DAG's (or task group's) ``@task``.

    Every variant (``task.branch``, ``task.sensor(...)``...) is looked up on that DAG's
    own :class:`~.decorators.TaskDecorator`, so a new variant needs no change here.
    """

    __slots__ = ()

    def __call__(self, fn: Callable[..., Any] | None = None, **options: Any) -> Any:
        return _decorator_here("@task")(fn, **options)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # introspection (copy, pickle, doc tools) is not a variant
            raise AttributeError(name)
        return getattr(_decorator_here(f"@task.{name}"), name)

    def __repr__(self) -> str:
        return "<trio_coord.task: @task of the active DAG>"


#: ``@task``, ``@task(retries=2)``, ``@task.branch``... inside an active DAG.
task = _ContextTask()


class _TaskGroupFunction:
    """A function decorated with ``@task_group``: each call declares a group and runs it."""

    def __init__(self, fn: Callable[..., Any], group_id: str | None, options: dict[str, Any]):
        if not callable(fn):
            raise UsageError("@task_group decorates a function")
        self.fn = fn
        self.group_id = group_id or str(getattr(fn, "__name__", ""))
        self.options = options
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Declare the group in the active DAG (or group) and run the function inside it.

        Returns what the function returns (so ``g(...) >> t`` wires its last output), or
        the group when it returns None, as Airflow does.
        """
        active = require_current("@task_group")
        parent = active.group if active.group is not None else active.dag.root_group
        group_id = self.group_id
        n = 0
        while parent.child_id(group_id) in active.dag._ids:
            n += 1
            group_id = f"{self.group_id}__{n}"
        group = parent.task_group(group_id, **self.options)
        with activate(active.dag, group):
            value = self.fn(*args, **kwargs)
        return group if value is None else value


def task_group(
    fn: Callable[..., Any] | None = None,
    *,
    group_id: str | None = None,
    prefix_group_id: bool = True,
) -> Any:
    """``@task_group`` / ``@task_group(group_id=..., prefix_group_id=...)`` (Airflow's name).

    The group is declared each time the function is called inside a DAG; a second call
    declares ``id__1``, as Airflow does.
    """
    if fn is not None and not callable(fn):
        raise UsageError(
            "task_group decorates a function: @task_group or @task_group(group_id=...); "
            "for a group without a function use 'with dag.task_group(\"id\"):'"
        )
    options = {"prefix_group_id": prefix_group_id}
    if fn is not None:
        return _TaskGroupFunction(fn, group_id, options)
    return lambda f: _TaskGroupFunction(f, group_id, options)


class DagFunction:
    """A function decorated with ``@bundle.dag(...)``: calling it declares the DAG.

    As with Airflow's ``@dag``, the DAG exists once the function is called (``etl()``),
    and the function's body declares its tasks with the module-level ``task``.
    """

    def __init__(self, fn: Callable[..., Any], dag: Dag):
        if not callable(fn):
            raise UsageError("@bundle.dag decorates a function (or call bundle.dag('dag_id'))")
        params = [
            p.name
            for p in inspect.signature(fn).parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if params:
            raise UsageError(
                f"@bundle.dag function {fn.__name__!r}: parameters ({', '.join(params)}) would "
                "be Airflow DAG params, which trio-coord declares with params={...} instead"
            )
        self.fn = fn
        self.dag = dag
        functools.update_wrapper(self, fn)

    def __call__(self) -> Dag:
        """Add the DAG to its bundle, run the function with it active, check it, return it."""
        self.dag.bundle.add_dag(self.dag)
        with activate(self.dag):
            self.fn()
        finalize_dag(self.dag)
        return self.dag

    def __repr__(self) -> str:
        return f"<DagFunction {self.dag.dag_id} (call it to declare the DAG)>"
