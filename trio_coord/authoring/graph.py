"""A DAG's task graph seen from one task: what it feeds directly, and everything after it.

The authoring model stores each edge once, on the downstream task (``Task.upstream``);
branching and short-circuit tasks need the other direction at run time. Airflow's names:
``downstream`` is ``get_direct_relatives(upstream=False)``, ``descendants`` is
``get_flat_relatives(upstream=False)``. Pure functions over the declarations; the DAG is
small and each try asks once, so nothing is cached.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .dags import Dag
    from .groups import TaskGroup
    from .tasks import Task

__all__ = ["descendants", "downstream", "find_group", "group_roots"]


def downstream(task: Task) -> list[Task]:
    """The tasks with a direct edge from ``task``, in declaration order."""
    return [t for t in task.dag.tasks.values() if task.task_id in t.upstream]


def descendants(task: Task) -> list[Task]:
    """Every task reachable from ``task`` (``task`` excluded), in declaration order."""
    seen: set[str] = set()
    stack = [task.task_id]
    children: dict[str, list[str]] = {}
    for t in task.dag.tasks.values():
        for up in t.upstream:
            children.setdefault(up, []).append(t.task_id)
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return [t for t in task.dag.tasks.values() if t.task_id in seen]


def find_group(dag: Dag, group_id: str) -> TaskGroup | None:
    """The task group of ``dag`` with this id, nested ones included, or None."""
    from .groups import TaskGroup

    stack = [dag.root_group]
    while stack:
        group = stack.pop()
        if group.group_id == group_id:
            return group
        stack.extend(c for c in group.children.values() if isinstance(c, TaskGroup))
    return None


def group_roots(dag: Dag, group_id: str) -> list[str] | None:
    """The ids of a group's root tasks (Airflow follows these when a branch names a group).

    None when ``dag`` has no such group.
    """
    group = find_group(dag, group_id)
    return None if group is None else [t.task_id for t in group.roots()]
