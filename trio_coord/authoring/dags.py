"""Bundles and DAGs: what Airflow schedules, and where each DAG's tasks live.

Every DAG option has Airflow's name and meaning (``airflow.sdk.DAG``) and is checked when
the DAG is declared, so a mistake fails where it was written (and at ``trio-coord pack``)
rather than later in Airflow's DAG processor. Options trio-coord cannot serialize are not
accepted at all.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, overload

from ..errors import UsageError
from .assets import BaseAsset, iter_leaves
from .context import activate
from .decorators import TaskDecorator
from .groups import TaskGroup
from .params import check_schema, validate_value
from .schedules import Schedule, check_schedule, normalize_schedule
from .sensors import check_sensor_options
from .taskflow import DagFunction, finalize_dag
from .tasks import Task, as_tasks, check_event_loop, injected_parameters
from .validation import (
    NOT_IN_DEFAULT_ARGS,
    TASK_OPTIONS,
    check_id,
    check_json_data,
    check_keywords,
    check_settings,
)

__all__ = ["Bundle", "Dag", "Param", "TRIO_COORD_QUEUE"]

#: The queue stub tasks are routed to unless a DAG or task says otherwise; the worker's
#: ``[sdk] queue_to_coordinator`` maps it to the coordinator that runs bundles.
TRIO_COORD_QUEUE: Final = "trio-coord"


@dataclass(frozen=True)
class Param:
    """A DAG parameter with a default, an optional description and JSON-schema keywords.

    ``Param(10, type="integer", minimum=1)``; a plain value in ``params=`` is the same as
    ``Param(value)``. Values must be JSON data (str, numbers, bool, None, lists, dicts).
    """

    default: Any = None
    description: str | None = None
    schema: Mapping[str, Any] = field(default_factory=dict)

    def __init__(self, default: Any = None, description: str | None = None, **schema: Any):
        object.__setattr__(self, "default", default)
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "schema", dict(schema))


def check_params(where: str, params: Any, *, scheduled: bool = False) -> dict[str, Param]:
    """``params=`` of a DAG or a task, each value as a :class:`Param` with a checked schema."""
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise UsageError(f"{where}: params must be a mapping of name -> default or Param")
    out: dict[str, Param] = {}
    for name, value in params.items():
        if not isinstance(name, str) or not name:
            raise UsageError(f"{where}: param names must be non-empty strings, got {name!r}")
        p = value if isinstance(value, Param) else Param(value)
        check_json_data(f"{where}: param {name!r}", [p.default, dict(p.schema)])
        if p.description is not None and not isinstance(p.description, str):
            raise UsageError(f"{where}: param {name!r} description must be a string")
        check_schema(f"{where}: param {name!r}", p.schema)
        # As Airflow: a scheduled DAG's runs get no conf, so its defaults must be valid.
        problem = validate_value(p.default, p.schema) if scheduled else None
        if problem is not None:
            raise UsageError(
                f"{where}: param {name!r} default is invalid for a scheduled DAG: {problem}"
            )
        out[name] = p
    return out


@dataclass(eq=False)
class Dag:
    """A DAG of the bundle: its schedule, its options and its tasks."""

    bundle: Bundle
    dag_id: str
    schedule: str | datetime.timedelta | BaseAsset | None = None
    start_date: datetime.datetime | None = None
    catchup: bool = False
    description: str | None = None
    tags: tuple[str, ...] = ()
    retries: int = 0
    retry_delay: datetime.timedelta | None = None
    queue: str = TRIO_COORD_QUEUE
    max_active_runs: int | None = None
    end_date: datetime.datetime | None = None
    dag_display_name: str | None = None
    doc_md: str | None = None
    dagrun_timeout: datetime.timedelta | None = None
    render_template_as_native_obj: bool = False
    disable_bundle_versioning: bool = False
    is_paused_upon_creation: bool | None = None
    max_active_tasks: int | None = None
    max_consecutive_failed_dag_runs: int | None = None
    fail_fast: bool = False
    default_args: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Param] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    root_group: TaskGroup = field(init=False)
    #: Ids taken by tasks and groups (they share one namespace, as in Airflow).
    _ids: set[str] = field(default_factory=set, init=False)
    #: Declarations and edges in the order they were written, for the export to replay:
    #: ``("task", id)``, ``("group", id)``, ``("down", ref, [refs])`` for ``ref >> refs`` and
    #: ``("up", ref, [refs])`` for ``ref << refs``; a ref is ``("task"|"group", id)``.
    events: list[tuple[Any, ...]] = field(default_factory=list, init=False)
    #: Open ``with dag:`` blocks (see :mod:`.context`).
    _entered: list[Any] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self.root_group = TaskGroup(self, None)

    @property
    def schedule_text(self) -> str | None:
        """The schedule as text for JSON documents and ``inspect`` (a timedelta is not JSON)."""
        if isinstance(self.schedule, datetime.timedelta):
            return f"every {self.schedule}"
        if isinstance(self.schedule, BaseAsset):
            names = ", ".join(a.name for a in iter_leaves(self.schedule))
            return f"on assets: {names}"
        return self.schedule

    def task_default(self, name: str) -> Any:
        """What a task inherits for option ``name``: ``default_args``, then the DAG shortcuts."""
        if name in self.default_args:
            return self.default_args[name]
        return {"retries": self.retries, "retry_delay": self.retry_delay, "queue": self.queue}.get(
            name
        )

    def claim_id(self, node_id: str, kind: str) -> None:
        if node_id in self._ids:
            raise UsageError(f"{kind} {node_id!r} is declared twice in DAG {self.dag_id!r}")
        self._ids.add(node_id)

    def task_group(self, group_id: str, *, prefix_group_id: bool = True) -> TaskGroup:
        """Declare a top-level task group (nest more with ``group.task_group``)."""
        return self.root_group.task_group(group_id, prefix_group_id=prefix_group_id)

    @property
    def task(self) -> TaskDecorator:
        """``@dag.task``, ``@dag.task(retries=2)``, ``@dag.task.branch``, ``@dag.task.sensor(...)``.

        The options are Airflow's task arguments (``trigger_rule``, ``pool``,
        ``execution_timeout``...); see ``TASK_OPTIONS`` for the full list.
        """
        return TaskDecorator(self, None)

    def trigger_dagrun(self, task_id: str, **options: Any) -> Task:
        """A task that triggers a run of another DAG, without a function of its own:
        ``dag.trigger_dagrun("kick", trigger_dag_id="other", conf={...})``."""
        from .trigger_dagrun import no_conf

        return self.task.trigger_dagrun(no_conf, task_id=task_id, **options)  # type: ignore[no-any-return]

    def hitl(self, task_id: str, **options: Any) -> Task:
        """A task that asks a person, without a function of its own:
        ``dag.hitl("review", subject="Ship it?", options=["yes", "no"])``."""
        from .hitl import no_body

        return self.task.hitl(no_body, task_id=task_id, **options)  # type: ignore[no-any-return]

    def declare_task(
        self,
        func: Callable[..., Any],
        *,
        kind: str = "python",
        kind_options: Mapping[str, Any] | None = None,
        task_id: str | None = None,
        retries: int | None = None,
        retry_delay: datetime.timedelta | None = None,
        multiple_outputs: bool = False,
        queue: str | None = None,
        depends_on: Iterable[Task] = (),
        group: TaskGroup | None = None,
        event_loop: str = "trio",
        **options: Any,
    ) -> Task:
        """Register one task of ``kind`` (see :data:`~.tasks.TASK_KINDS`); the decorators call this."""
        holder = group if group is not None else self.root_group
        if holder.dag is not self:
            raise UsageError(f"{holder!r} belongs to another DAG than {self.dag_id!r}")
        local = check_id("task id", task_id or str(getattr(func, "__name__", "")))
        tid = holder.child_id(local)
        where = f"task {self.dag_id}.{tid}"
        # The accepted names in the message include the keywords bound above (retries...).
        check_keywords(where, options, [*TASK_OPTIONS, *_TASK_ARGUMENTS])
        given = check_settings(where, options)
        check_settings(where, {"retries": retries, "retry_delay": retry_delay, "queue": queue})
        inject = injected_parameters(func, f"{self.dag_id}.{tid}")
        loop = check_event_loop(where, event_loop, func)
        if kind == "sensor":
            check_sensor_options(where, kind_options or {})
        self.claim_id(tid, "task id")
        t = Task(
            dag=self,
            task_id=tid,
            fn=func,
            retries=retries,
            retry_delay=retry_delay,
            multiple_outputs=multiple_outputs,
            queue=queue,
            inject=inject,
            options=given,
            group=group,
            kind=kind,
            kind_options=dict(kind_options or {}),
            event_loop=loop,
        )
        if self.fail_fast and t.option("trigger_rule") not in (None, "all_success"):
            self._ids.discard(tid)
            raise UsageError(
                f"{where}: DAG {self.dag_id!r} has fail_fast=True, which Airflow allows only "
                f"when every task uses trigger_rule 'all_success'"
            )
        self.tasks[tid] = t
        holder.children[tid] = t
        self.events.append(("task", tid))
        ups = as_tasks(where, depends_on)
        if ups:
            t << ups
        return t

    def __enter__(self) -> Dag:
        """``with bundle.dag("id") as dag:``: the module-level ``@task`` declares into it."""
        cm = activate(self)
        cm.__enter__()
        self._entered.append(cm)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._entered.pop().__exit__(*exc)
        if exc[0] is None:
            finalize_dag(self)

    def __call__(self, fn: Callable[..., Any]) -> DagFunction:
        """``@bundle.dag(dag_id="id", ...)`` on a function: the DAG is declared when the
        function is called (Airflow's ``@dag``), not now."""
        if self.tasks or self._ids:
            raise UsageError(
                f"DAG {self.dag_id!r} already has tasks; decorate the function with "
                "@bundle.dag(...) directly"
            )
        if self.bundle.dags.get(self.dag_id) is self:
            del self.bundle.dags[self.dag_id]
        return DagFunction(fn, self)

    def __repr__(self) -> str:
        return f"<Dag {self.dag_id} tasks={list(self.tasks)}>"


#: Task arguments that are not Airflow operator options (``retries``, ``retry_delay`` and
#: ``queue`` have their own parameter too, but are options, in ``TASK_OPTIONS``).
_TASK_ARGUMENTS: Final = ("task_id", "multiple_outputs", "depends_on", "group")

_DAG_KEYWORDS: Final = (
    "schedule",
    "start_date",
    "end_date",
    "catchup",
    "description",
    "dag_display_name",
    "doc_md",
    "tags",
    "retries",
    "retry_delay",
    "queue",
    "dagrun_timeout",
    "render_template_as_native_obj",
    "disable_bundle_versioning",
    "is_paused_upon_creation",
    "max_active_tasks",
    "max_active_runs",
    "max_consecutive_failed_dag_runs",
    "fail_fast",
    "default_args",
    "params",
)


def _positive_or_none(where: str, name: str, value: Any, minimum: int = 1) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int) or value < minimum
    ):
        what = "a positive integer" if minimum == 1 else "a non-negative integer"
        raise UsageError(f"{where}: {name} must be {what}, got {value!r}")


def _bool(where: str, name: str, value: Any, *, optional: bool = False) -> None:
    if not isinstance(value, bool) and not (optional and value is None):
        raise UsageError(f"{where}: {name} must be True or False, got {value!r}")


def _text_or_none(where: str, name: str, value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise UsageError(f"{where}: {name} must be a string, got {value!r}")


class Bundle:
    """A named, versioned set of DAGs: the unit that is packed and deployed."""

    def __init__(self, name: str, version: str = "0.1.0", *, description: str | None = None):
        self.name = check_id("bundle name", name)
        if not isinstance(version, str) or not version.strip():
            raise UsageError(f"bundle version {version!r} must be a non-empty string")
        self.version = version
        self.description = description
        self.dags: dict[str, Dag] = {}

    @overload
    def dag(self, dag_id: str, /, **options: Any) -> Dag: ...

    @overload
    def dag(self, dag_id: Callable[[], Any], /, **options: Any) -> DagFunction: ...

    @overload
    def dag(self, dag_id: None = None, /, **options: Any) -> Any: ...

    def dag(self, dag_id: Any = None, /, **options: Any) -> Any:
        """Declare a DAG: ``bundle.dag("id", ...)`` returns it (also a ``with`` context);
        ``@bundle.dag(...)`` / ``@bundle.dag`` on a function declares it when the function
        is called, as Airflow's ``@dag`` (the dag id is the function's name unless
        ``dag_id=`` says otherwise).

        The keywords are Airflow's DAG arguments; ``retries``, ``retry_delay`` and ``queue``
        are shortcuts for the same keys of ``default_args``.
        """
        if isinstance(dag_id, str):
            if "dag_id" in options:
                raise UsageError(f"DAG {dag_id!r}: the dag id is given twice")
            return self._new_dag(dag_id, **options)
        named = options.pop("dag_id", None)
        if callable(dag_id):
            return self._new_dag(named or dag_id.__name__, **options)(dag_id)
        if dag_id is not None:
            raise UsageError(f"bundle.dag takes a dag id (a string) or a function, got {dag_id!r}")
        if named is not None:
            return self._new_dag(named, **options)
        return lambda fn: self.dag(fn, **options)

    def add_dag(self, dag: Dag) -> None:
        """Register a DAG declared by a ``@bundle.dag`` function when it is called."""
        if dag.dag_id in self.dags:
            raise UsageError(f"dag id {dag.dag_id!r} is declared twice in bundle {self.name!r}")
        self.dags[dag.dag_id] = dag

    def _new_dag(
        self,
        dag_id: str,
        *,
        schedule: Schedule = None,
        start_date: datetime.datetime | None = None,
        end_date: datetime.datetime | None = None,
        catchup: bool = False,
        description: str | None = None,
        dag_display_name: str | None = None,
        doc_md: str | None = None,
        tags: Iterable[str] = (),
        retries: int = 0,
        retry_delay: datetime.timedelta | None = None,
        queue: str = TRIO_COORD_QUEUE,
        dagrun_timeout: datetime.timedelta | None = None,
        render_template_as_native_obj: bool = False,
        disable_bundle_versioning: bool = False,
        is_paused_upon_creation: bool | None = None,
        max_active_tasks: int | None = None,
        max_active_runs: int | None = None,
        max_consecutive_failed_dag_runs: int | None = None,
        fail_fast: bool = False,
        default_args: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        **unknown: Any,
    ) -> Dag:
        check_id("dag id", dag_id)
        where = f"DAG {dag_id!r}"
        check_keywords(where, unknown, _DAG_KEYWORDS)
        if dag_id in self.dags:
            raise UsageError(f"dag id {dag_id!r} is declared twice in bundle {self.name!r}")
        defaults = dict(default_args or {})
        if default_args is not None and not isinstance(default_args, Mapping):
            raise UsageError(f"{where}: default_args must be a mapping of task options")
        check_keywords(
            f"{where}: default_args",
            defaults,
            [k for k in TASK_OPTIONS if k not in NOT_IN_DEFAULT_ARGS],
        )
        defaults = check_settings(f"{where}: default_args", defaults)
        if callable(defaults.get("map_index_template")):  # default_args are stored as data
            raise UsageError(f"{where}: default_args map_index_template must be text")
        for name, value, unset in (
            ("retries", retries, 0),
            ("retry_delay", retry_delay, None),
            ("queue", queue, TRIO_COORD_QUEUE),
        ):
            if name in defaults and value != unset:
                raise UsageError(f"{where}: {name} is given both as a keyword and in default_args")
        check_settings(
            where,
            {
                "retries": retries,
                "retry_delay": retry_delay,
                "queue": queue,
                "start_date": start_date,
                "end_date": end_date,
            },
        )
        if start_date and end_date and end_date < start_date:
            raise UsageError(f"{where}: end_date {end_date} is before start_date {start_date}")
        if dagrun_timeout is not None and (
            not isinstance(dagrun_timeout, datetime.timedelta)
            or dagrun_timeout <= datetime.timedelta(0)
        ):
            raise UsageError(
                f"{where}: dagrun_timeout must be a positive datetime.timedelta, got {dagrun_timeout!r}"
            )
        _positive_or_none(where, "max_active_runs", max_active_runs)
        _positive_or_none(where, "max_active_tasks", max_active_tasks)
        _positive_or_none(
            where, "max_consecutive_failed_dag_runs", max_consecutive_failed_dag_runs, minimum=0
        )
        for name, flag in (
            ("catchup", catchup),
            ("render_template_as_native_obj", render_template_as_native_obj),
            ("disable_bundle_versioning", disable_bundle_versioning),
            ("fail_fast", fail_fast),
        ):
            _bool(where, name, flag)
        _bool(where, "is_paused_upon_creation", is_paused_upon_creation, optional=True)
        for name, text in (
            ("description", description),
            ("dag_display_name", dag_display_name),
            ("doc_md", doc_md),
        ):
            _text_or_none(where, name, text)
        check_schedule(where, schedule, max_active_runs)
        if isinstance(tags, str):
            raise UsageError(f"{where}: tags must be a list of strings, not one string")
        tag_list = tuple(tags)
        for tag in tag_list:
            if not isinstance(tag, str) or not tag or len(tag) > 100:
                raise UsageError(
                    f"{where}: each tag must be a string of 1-100 characters, got {tag!r}"
                )
        if fail_fast and defaults.get("trigger_rule", "all_success") != "all_success":
            raise UsageError(
                f"{where}: fail_fast=True needs every task on trigger_rule 'all_success', "
                f"but default_args sets {defaults['trigger_rule']!r}"
            )
        d = Dag(
            bundle=self,
            dag_id=dag_id,
            schedule=normalize_schedule(schedule),
            start_date=start_date,
            catchup=catchup,
            description=description,
            tags=tag_list,
            retries=retries,
            retry_delay=retry_delay,
            queue=queue,
            max_active_runs=max_active_runs,
            end_date=end_date,
            dag_display_name=dag_display_name,
            doc_md=doc_md,
            dagrun_timeout=dagrun_timeout,
            render_template_as_native_obj=render_template_as_native_obj,
            disable_bundle_versioning=disable_bundle_versioning,
            is_paused_upon_creation=is_paused_upon_creation,
            max_active_tasks=max_active_tasks,
            max_consecutive_failed_dag_runs=max_consecutive_failed_dag_runs,
            fail_fast=fail_fast,
            default_args=defaults,
            params=check_params(where, params, scheduled=schedule is not None),
        )
        self.dags[dag_id] = d
        return d

    def find_task(self, dag_id: str, task_id: str) -> Task | None:
        """The task for a ``StartupDetails``, or None (which ends the try as removed)."""
        d = self.dags.get(dag_id)
        return None if d is None else d.tasks.get(task_id)

    def __repr__(self) -> str:
        return f"<Bundle {self.name} {self.version} dags={list(self.dags)}>"
