"""``@dag.task`` and its Airflow-named variants: ``.branch``, ``.short_circuit``, ``.sensor``,
``.trigger_dagrun``, ``.hitl``.

Airflow spells a task's *kind* as an attribute of its ``task`` decorator (``@task.branch``,
``@task.sensor``); so does trio-coord, on the decorator a DAG or a task group hands out.
Every variant registers a :class:`~.tasks.Task` through :meth:`Dag.declare_task` with its
kind and the kind's own options; what a kind does when it runs lives in ``runtime/``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    from .dags import Dag
    from .groups import TaskGroup
    from .tasks import Task

__all__ = ["TaskDecorator"]

F = TypeVar("F", bound=Callable[..., Any])


class TaskDecorator:
    """The ``task`` decorator of one DAG (and, for ``group.task``, one task group)."""

    __slots__ = ("_dag", "_group")

    def __init__(self, dag: Dag, group: TaskGroup | None) -> None:
        self._dag = dag
        self._group = group

    def _declare(
        self, fn: Callable[..., Any] | None, kind: str, kind_options: dict[str, Any], **kw: Any
    ) -> Any:
        if self._group is not None and self._group.group_id is not None:
            if "group" in kw:
                from ..errors import UsageError

                raise UsageError("group.task(...) already places the task in a group")
            kw["group"] = self._group

        def register(func: Callable[..., Any]) -> Task:
            return self._dag.declare_task(func, kind=kind, kind_options=kind_options, **kw)

        return register(fn) if fn is not None else register

    @overload
    def __call__(self, fn: F) -> Task: ...

    @overload
    def __call__(self, fn: None = None, **options: Any) -> Callable[[F], Task]: ...

    def __call__(self, fn: Callable[..., Any] | None = None, **options: Any) -> Any:
        """``@dag.task`` or ``@dag.task(task_id=..., retries=..., **airflow_task_args)``."""
        return self._declare(fn, "python", {}, **options)

    @overload
    def branch(self, fn: F) -> Task: ...

    @overload
    def branch(self, fn: None = None, **options: Any) -> Callable[[F], Task]: ...

    def branch(self, fn: Callable[..., Any] | None = None, **options: Any) -> Any:
        """A branch task: returns the task id(s) to follow; the rest of its direct
        downstream is skipped (Airflow's ``@task.branch``)."""
        return self._declare(fn, "branch", {}, **options)

    @overload
    def short_circuit(self, fn: F) -> Task: ...

    @overload
    def short_circuit(
        self, fn: None = None, *, ignore_downstream_trigger_rules: bool = True, **options: Any
    ) -> Callable[[F], Task]: ...

    def short_circuit(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        ignore_downstream_trigger_rules: bool = True,
        **options: Any,
    ) -> Any:
        """A short-circuit task: a falsy return skips downstream (Airflow's
        ``@task.short_circuit``)."""
        flag: object = ignore_downstream_trigger_rules  # typed bool, but any value can come
        if not isinstance(flag, bool):
            from ..errors import UsageError

            raise UsageError(
                "short_circuit: ignore_downstream_trigger_rules must be True or False, "
                f"got {ignore_downstream_trigger_rules!r}"
            )
        kind_options = {"ignore_downstream_trigger_rules": ignore_downstream_trigger_rules}
        return self._declare(fn, "short_circuit", kind_options, **options)

    def sensor(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        poke_interval: Any = 60.0,
        timeout: Any = 7 * 24 * 3600.0,
        mode: str = "poke",
        soft_fail: bool = False,
        exponential_backoff: bool = False,
        max_wait: Any = None,
        silent_fail: bool = False,
        **options: Any,
    ) -> Any:
        """A sensor: the function is the poke, called until it returns a truthy value
        (Airflow's ``@task.sensor`` and ``BaseSensorOperator`` arguments)."""
        kind_options = {
            "poke_interval": poke_interval,
            "timeout": timeout,
            "mode": mode,
            "soft_fail": soft_fail,
            "exponential_backoff": exponential_backoff,
            "max_wait": max_wait,
            "silent_fail": silent_fail,
        }
        return self._declare(fn, "sensor", kind_options, **options)

    def trigger_dagrun(self, fn: Callable[..., Any] | None = None, **options: Any) -> Any:
        """A task that triggers a run of another DAG (Airflow's ``TriggerDagRunOperator``).

        Takes the operator's arguments (``trigger_dag_id``, ``trigger_run_id``, ``conf``,
        ``logical_date``, ``reset_dag_run``, ``wait_for_completion``, ``poke_interval``,
        ``allowed_states``, ``failed_states``, ``skip_when_already_exists``, ``note``) besides
        the usual task options. The function runs first; a dict it returns is the run's conf.
        """
        from .trigger_dagrun import trigger_options

        kind_keys = trigger_options.__kwdefaults__ or {}
        kind_options = trigger_options(
            **{k: options.pop(k) for k in list(options) if k in kind_keys}
        )
        return self._declare(fn, "trigger_dagrun", kind_options, **options)

    def hitl(self, fn: Callable[..., Any] | None = None, **options: Any) -> Any:
        """A task that asks a person and waits for the answer (Airflow's ``HITLOperator``;
        ``approval=True`` for ``ApprovalOperator``): see :mod:`.hitl`.

        Takes the operator's arguments (``subject``, ``options``, ``body``, ``defaults``,
        ``multiple``, ``params`` (the form fields), ``assigned_users``,
        ``response_timeout``; ``fail_on_reject``, ``ignore_downstream_trigger_rules`` with
        ``approval=True``) besides the usual task options. The function runs first; a string
        it returns is the question's body, a dict may set ``subject`` and ``body``.
        """
        from .hitl import hitl_options

        kind_keys = hitl_options.__kwdefaults__ or {}
        kind_options = hitl_options(**{k: options.pop(k) for k in list(options) if k in kind_keys})
        return self._declare(fn, "hitl", kind_options, **options)
