"""Dynamic task mapping: ``task.partial(...).expand(...)`` and ``expand_kwargs(...)``.

Airflow turns one declared task into N task instances at run time, one per element of
its *expand input*; the scheduler decides N, each instance gets its ``map_index`` and
calls the function with its own element. A trio-coord task is registered by
``@dag.task`` already, so expanding records a :class:`TaskMapping` on that task instead
of creating a new one; the rules (what may be expanded, what may be partial, what is
refused) are Airflow's ``@task`` ones:

* ``expand(**inputs)`` (Airflow's "dict-of-lists"): each input is a literal list or dict,
  or an :class:`~.xcom_args.XComArg` (an upstream's return value, also a mapped task's);
  several inputs map over their cartesian product;
* ``expand_kwargs(list_of_dicts | XComArg)`` ("list-of-dicts"): one dict of arguments
  per instance;
* ``partial(**constants)``: function arguments every instance receives.

Nothing here runs anything; :mod:`trio_coord.runtime.mapping` resolves an instance's
arguments, the export and the native serializer write the mapping for Airflow.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping as AbcMapping
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from ..errors import UsageError
from .validation import check_json_data
from .xcom_args import RETURN_VALUE, XComArg

if TYPE_CHECKING:
    from .tasks import Task

__all__ = [
    "DICT_OF_LISTS",
    "LIST_OF_DICTS",
    "PartialTask",
    "TaskMapping",
    "expanded_over",
    "has_mapped_dependants",
    "instance_count",
]

#: Airflow's names of the two expand input kinds (``EXPAND_INPUT_TYPE``).
DICT_OF_LISTS: Final = "dict-of-lists"
LIST_OF_DICTS: Final = "list-of-dicts"


@dataclass(frozen=True, eq=False)
class TaskMapping:
    """How a task is mapped: its expand input and the constants every instance receives."""

    #: :data:`DICT_OF_LISTS` (``expand``) or :data:`LIST_OF_DICTS` (``expand_kwargs``).
    kind: Literal["dict-of-lists", "list-of-dicts"]
    #: ``expand``: name -> list, dict or XComArg, in the order written (the order decides
    #: the cartesian product's). ``expand_kwargs``: ``{}``.
    expand: dict[str, Any] = field(default_factory=dict)
    #: ``expand_kwargs``: a list of dicts or an XComArg. ``expand``: None.
    kwargs: list[dict[str, Any]] | XComArg | None = None
    #: ``partial`` constants (function arguments), in the order written.
    partial: dict[str, Any] = field(default_factory=dict)

    @property
    def strict(self) -> bool:
        """Airflow's ``disallow_kwargs_override``: an ``expand_kwargs`` dict may not repeat
        a partial argument (``expand`` is checked when declared, so it is not strict)."""
        return self.kind == LIST_OF_DICTS

    def references(self) -> list[XComArg]:
        """The upstream outputs the mapping reads, in the order written."""
        if self.kind == LIST_OF_DICTS:
            return [self.kwargs] if isinstance(self.kwargs, XComArg) else []
        return [v for v in self.expand.values() if isinstance(v, XComArg)]


def instance_count(lengths: Sequence[int]) -> int:
    """How many instances an expand input gives, from the length of each of its inputs.

    ``expand`` maps over the inputs' cartesian product; ``expand_kwargs`` has one input,
    its list. The scheduler and a mapped try must agree on this number, so both the
    local DAG run and the runtime's element lookup call this one function.
    """
    return math.prod(lengths)


def expanded_over(task: Task) -> list[Task]:
    """The mapped tasks of ``task.dag`` that expand over one of ``task``'s outputs."""
    out = []
    for other in task.dag.tasks.values():
        mapping: TaskMapping | None = other.mapping
        if mapping is not None and any(ref.task is task for ref in mapping.references()):
            out.append(other)
    return out


def has_mapped_dependants(task: Task) -> bool:
    """Airflow's ``iter_mapped_dependants``: a downstream maps over this task's output, so
    its return value must be a list or dict, pushed with its length."""
    return bool(expanded_over(task))


def _where(task: Task, method: str) -> str:
    return f"{task.dag.dag_id}.{task.task_id}.{method}()"


def _parameters(task: Task) -> tuple[set[str], bool]:
    """Parameter names the function takes by keyword, and whether it takes ``**kwargs``."""
    params = inspect.signature(task.fn).parameters.values()
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - set(
        task.inject
    )
    return names, any(p.kind == p.VAR_KEYWORD for p in params)


def _check_names(task: Task, method: str, names: list[str]) -> None:
    """Airflow's ``_validate_arg_names``: no injected name, no name the function lacks."""
    where = _where(task, method)
    injected = [n for n in names if n in task.inject]
    if injected:
        raise UsageError(
            f"{where}: cannot map or fix {', '.join(map(repr, injected))}: the runtime "
            f"injects it into every instance"
        )
    accepted, var_keyword = _parameters(task)
    if var_keyword:
        return
    unknown = [n for n in names if n not in accepted]
    if unknown:
        shown = ", ".join(sorted(accepted)) or "none"
        raise UsageError(
            f"{where}: {task.fn.__name__}() has no parameter {unknown[0]!r}; "
            f"its mappable parameters are: {shown}"
        )


def _check_required(task: Task, method: str, given: list[str]) -> None:
    """Every parameter without a default must be given to each instance."""
    params = inspect.signature(task.fn).parameters.values()
    missing = [
        p.name
        for p in params
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.default is p.empty
        and p.name not in task.inject
        and p.name not in given
    ]
    if missing:
        raise UsageError(
            f"{_where(task, method)}: parameter {missing[0]!r} of {task.fn.__name__}() has no "
            f"default and is given neither to partial() nor to {method}()"
        )


def _check_xcom_arg(task: Task, where: str, arg: XComArg) -> None:
    if arg.task.dag is not task.dag:
        raise UsageError(f"{where}: {arg!r} belongs to another DAG")
    if arg.task is task:
        raise UsageError(f"{where}: a task cannot expand over its own output")
    if arg.key != RETURN_VALUE:
        # Airflow's ensure_xcomarg_return_value: only a return value says how many.
        raise UsageError(
            f"{where}: cannot map over XCom with custom key {arg.key!r} from "
            f"{arg.task.task_id!r}; expand over the task's whole output (.output) instead"
        )
    if task.option("trigger_rule") == "always":
        raise UsageError(
            f"{where}: a task with trigger_rule 'always' cannot expand over another task's "
            f"output (Airflow refuses task-generated mapping there)"
        )


def _check_literal(where: str, value: Any) -> None:
    if isinstance(value, str | bytes) or not isinstance(value, list | dict):
        raise UsageError(
            f"{where}: expected a list, a dict or a task's output (XComArg), "
            f"got {type(value).__name__}"
        )
    if not value:
        raise UsageError(f"{where}: an empty {type(value).__name__} would map to no instance")
    if isinstance(value, dict) and not all(isinstance(k, str) for k in value):
        raise UsageError(f"{where}: a dict to map over needs string keys")
    check_json_data(where, value)


def _check_label(task: Task, method: str) -> None:
    """trio-coord has no Jinja: a mapped task's label is a str.format template or a function."""
    template = task.option("map_index_template")
    if isinstance(template, str) and ("{{" in template or "{%" in template):
        raise UsageError(
            f"{_where(task, method)}: map_index_template {template!r} is Jinja, which "
            f"trio-coord does not render; write a str.format template over the mapped "
            f"arguments (e.g. 'file {{path}}') or a function called with them"
        )


def _wire(task: Task, mapping: TaskMapping) -> XComArg:
    """Record the mapping, add the edges its inputs imply, return the mapped output."""
    _check_label(task, "expand_kwargs" if mapping.kind == LIST_OF_DICTS else "expand")
    if task.upstream or any(task.task_id in t.upstream for t in task.dag.tasks.values()):
        # In Airflow a mapped task exists only once expanded, so it cannot have been
        # wired before; refusing keeps both DAG routes the same graph.
        raise UsageError(
            f"{_where(task, 'expand')}: expand task {task.task_id!r} before wiring it with "
            f">>, << or depends_on"
        )
    for ref in mapping.references():
        task.add_upstream_edge(ref.task)
    task.mapping = mapping
    task.dag.events.append(("expand", task.task_id))
    return XComArg(task)


class PartialTask:
    """``task.partial(**constants)``: waits for ``.expand(...)`` or ``.expand_kwargs(...)``."""

    __slots__ = ("_partial", "_task")

    def __init__(self, task: Task, constants: dict[str, Any]) -> None:
        if task.mapping is not None:
            raise UsageError(
                f"{_where(task, 'expand')}: task {task.task_id!r} is already mapped "
                f"(a task is expanded once; declare another task to map it differently)"
            )
        _check_names(task, "partial", list(constants))
        for name, value in constants.items():
            if isinstance(value, XComArg):
                raise UsageError(
                    f"{_where(task, 'partial')}: {name!r} is a task's output; trio-coord "
                    f"takes only literal constants in partial() (expand over it instead)"
                )
            check_json_data(f"{_where(task, 'partial')}: argument {name!r}", value)
        self._task = task
        self._partial = dict(constants)

    def expand(self, **inputs: Any) -> XComArg:
        """One instance per element of the inputs' cartesian product (Airflow's ``expand``).

        Returns:
            The mapped task's output: every instance's return value, in map index order.
        """
        task = self._task
        where = _where(task, "expand")
        if not inputs:
            raise UsageError(f"{where}: no arguments to expand against")
        _check_names(task, "expand", list(inputs))
        both = [n for n in inputs if n in self._partial]
        if both:
            raise UsageError(f"{where}: {both[0]!r} is given to partial() already")
        for name, value in inputs.items():
            if isinstance(value, XComArg):
                _check_xcom_arg(task, f"{where}: argument {name!r}", value)
            else:
                _check_literal(f"{where}: argument {name!r}", value)
        _check_required(task, "expand", [*self._partial, *inputs])
        return _wire(
            task, TaskMapping(kind=DICT_OF_LISTS, expand=dict(inputs), partial=self._partial)
        )

    def expand_kwargs(self, kwargs: Any) -> XComArg:
        """One instance per dict of arguments (Airflow's ``expand_kwargs``).

        Args:
            kwargs: a non-empty list of dicts (argument name -> value), or a task's output
                that will be such a list.
        """
        task = self._task
        where = _where(task, "expand_kwargs")
        if isinstance(kwargs, XComArg):
            _check_xcom_arg(task, where, kwargs)
            value: list[dict[str, Any]] | XComArg = kwargs
        else:
            if not isinstance(kwargs, list) or not all(isinstance(d, AbcMapping) for d in kwargs):
                raise UsageError(
                    f"{where}: expected a list of dicts or a task's output (XComArg), "
                    f"got {type(kwargs).__name__}"
                )
            if not kwargs:
                raise UsageError(f"{where}: an empty list would map to no instance")
            value = [dict(d) for d in kwargs]
            for i, item in enumerate(value):
                _check_names(task, "expand_kwargs", list(item))
                _check_required(task, "expand_kwargs", [*self._partial, *item])
                both = [n for n in item if n in self._partial]
                if both:
                    raise UsageError(f"{where}: item {i} repeats partial() argument {both[0]!r}")
                if any(isinstance(v, XComArg) for v in item.values()):
                    raise UsageError(
                        f"{where}: item {i} holds a task's output; trio-coord takes only "
                        f"literal values inside expand_kwargs() dicts"
                    )
            check_json_data(where, value)
        return _wire(task, TaskMapping(kind=LIST_OF_DICTS, kwargs=value, partial=self._partial))
