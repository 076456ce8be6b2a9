"""The DAG (and task group) being declared right now, for Airflow-shaped bundle files.

Airflow lets a DAG file say ``@task`` without naming the DAG: the DAG is whichever one is
*active*, i.e. whose ``@dag`` function is running or whose ``with`` block the code is in.
trio-coord keeps the same notion in one :class:`~contextvars.ContextVar`, so nested
``with`` blocks and task group functions restore the outer declaration target on exit
(also when declarations run in several threads or async tasks at once).

Nothing here validates or declares anything: the module-level ``task`` and ``task_group``
(:mod:`.taskflow`) read :func:`current` and delegate to the DAG or group it names.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import UsageError

if TYPE_CHECKING:
    from .dags import Dag
    from .groups import TaskGroup

__all__ = ["Active", "activate", "current", "require_current"]


@dataclass(frozen=True, slots=True)
class Active:
    """Where a task declared now lands: ``group`` (None: the DAG's top level) of ``dag``."""

    dag: Dag
    group: TaskGroup | None = None


_ACTIVE: ContextVar[Active | None] = ContextVar("trio_coord_active_dag", default=None)


def current() -> Active | None:
    """The active DAG and group, or None outside every DAG context."""
    return _ACTIVE.get()


def require_current(what: str) -> Active:
    """The active DAG and group; outside any, a :class:`UsageError` naming the two ways in.

    Raises:
        UsageError: no ``@bundle.dag`` function is running and no ``with`` block is open.
    """
    active = _ACTIVE.get()
    if active is None:
        raise UsageError(
            f"{what} needs a DAG to declare into: use it inside a function decorated with "
            "@bundle.dag(...) (and call that function), or inside "
            "'with bundle.dag(\"dag_id\", ...):'; or use the DAG's own decorator, @dag.task"
        )
    return active


@contextlib.contextmanager
def activate(dag: Dag, group: TaskGroup | None = None) -> Iterator[Active]:
    """Make ``dag`` (and ``group``) the declaration target until the block ends."""
    active = Active(dag, group if group is not None and group.group_id is not None else None)
    token = _ACTIVE.set(active)
    try:
        yield active
    finally:
        _ACTIVE.reset(token)
