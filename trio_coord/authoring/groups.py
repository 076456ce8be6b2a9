"""Task groups: named, nestable sets of tasks, as Airflow's ``TaskGroup``.

A group changes two things only: the ids of the tasks declared in it (``staging.load``
when ``prefix_group_id`` is true, the default) and how an edge touching the group is
turned into task edges (see :mod:`.edges`). Groups are declared explicitly::

    staging = dag.task_group("staging")
    checks = staging.task_group("checks")

    @checks.task
    def nulls() -> None: ...

Every DAG has a root group (``group_id`` None) that holds the top-level tasks and groups.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from .decorators import TaskDecorator
from .tasks import Task, Wirable
from .validation import check_id

if TYPE_CHECKING:
    from .dags import Dag

__all__ = ["TaskGroup"]


class TaskGroup(Wirable):
    """A group of tasks inside a DAG (or the DAG's root group when ``group_id`` is None)."""

    def __init__(
        self,
        dag: Dag,
        local_id: str | None,
        *,
        parent: TaskGroup | None = None,
        prefix_group_id: bool = True,
    ) -> None:
        self.dag = dag
        self.local_id = local_id
        self.parent = parent
        self.prefix_group_id = prefix_group_id
        self.group_id: str | None = (
            None
            if local_id is None
            else (parent.child_id(local_id) if parent is not None else local_id)
        )
        #: Fully qualified id -> task or group, in declaration order.
        self.children: dict[str, Task | TaskGroup] = {}
        self.upstream_group_ids: set[str] = set()
        self.downstream_group_ids: set[str] = set()
        self.upstream_task_ids: set[str] = set()
        self.downstream_task_ids: set[str] = set()
        self._entered: list[Any] = []

    def require_id(self) -> str:
        """The group's id; the root group cannot take part in an edge."""
        if self.group_id is None:
            raise UsageError(f"the root group of DAG {self.dag.dag_id!r} cannot be wired")
        return self.group_id

    def child_id(self, label: str) -> str:
        """The id of a child declared as ``label`` (prefixed unless ``prefix_group_id`` is off)."""
        if self.prefix_group_id and self.group_id is not None:
            return f"{self.group_id}.{label}"
        return label

    def task_group(self, group_id: str, *, prefix_group_id: bool = True) -> TaskGroup:
        """Declare a group nested in this one."""
        check_id("task group id", group_id)
        if not isinstance(prefix_group_id, bool):
            raise UsageError(
                f"task group {group_id!r}: prefix_group_id must be True or False, "
                f"got {prefix_group_id!r}"
            )
        group = TaskGroup(self.dag, group_id, parent=self, prefix_group_id=prefix_group_id)
        if group.group_id is None:  # only a DAG's root group has no id
            raise RuntimeError(f"task group {group_id!r} was built without an id")
        self.dag.claim_id(group.group_id, "task group id")
        self.children[group.group_id] = group
        self.dag.events.append(("group", group.group_id))
        return group

    @property
    def task(self) -> TaskDecorator:
        """Declare a task in this group; the same decorator (and keywords) as ``Dag.task``."""
        return TaskDecorator(self.dag, self)

    def __enter__(self) -> TaskGroup:
        """``with dag.task_group("g"):``: the module-level ``@task`` declares into the group."""
        from .context import activate

        cm = activate(self.dag, self)
        cm.__enter__()
        self._entered.append(cm)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._entered.pop().__exit__(*exc)

    def __iter__(self) -> Iterator[Task]:
        """Every task inside the group, nested groups included, in declaration order."""
        for child in self.children.values():
            if isinstance(child, TaskGroup):
                yield from child
            else:
                yield child

    def roots(self) -> list[Task]:
        """Tasks of the group with no upstream task inside the group."""
        tasks = list(self)
        ids = {t.task_id for t in tasks}
        return [t for t in tasks if ids.isdisjoint(t.upstream)]

    def leaves(self) -> list[Task]:
        """Tasks of the group with no downstream task inside the group."""
        tasks = list(self)
        ids = {t.task_id for t in tasks}
        fed = {up for t in tasks for up in t.upstream if up in ids}
        return [t for t in tasks if t.task_id not in fed]

    def __repr__(self) -> str:
        return f"<TaskGroup {self.dag.dag_id}.{self.group_id}>"
