"""``>>`` and ``<<`` between tasks and task groups, resolved the way Airflow resolves them.

Airflow stores only task-to-task edges; an edge that touches a group is turned into task
edges *at the moment it is written*, against the edges that exist then:

* ``task >> group``: the task feeds every root of the group (a task of the group with no
  upstream task inside the group) and is recorded in the group's ``upstream_task_ids``;
* ``group >> x``: every leaf of the group (no downstream task inside it) feeds ``x``; the
  group records ``x`` (``downstream_task_ids``/``downstream_group_ids``) and a group ``x``
  records each leaf in its ``upstream_task_ids``;
* an empty group has no leaves, so it stands for the tasks recorded upstream of it, or
  else for its parent group, walking up to the DAG itself.

So ``a >> g`` followed by ``t >> g.first`` is not the same as the reverse order: the same
bookkeeping Airflow does, which keeps the serialized document identical to Python's.
Every call is also appended to the DAG's ``events`` so the export to Airflow can replay
declarations and edges in their original order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeAlias

from ..errors import UsageError
from .groups import TaskGroup
from .tasks import Task
from .xcom_args import XComArg

__all__ = ["Node", "Nodes", "link", "link_up"]

Node: TypeAlias = Task | TaskGroup
Nodes: TypeAlias = Node | Iterable[Node]


def _as_list(nodes: Nodes) -> list[Node]:
    # A task's output (``a()`` in TaskFlow) stands for the task itself in an edge.
    items = [nodes] if isinstance(nodes, Task | TaskGroup | XComArg) else list(nodes)
    items = [item.task if isinstance(item, XComArg) else item for item in items]
    for item in items:
        if not isinstance(item, Task | TaskGroup):
            raise UsageError(
                f"only tasks and task groups can be wired with >> and <<, got {type(item).__name__}"
            )
    return items


def _leaves_for_edge(group: TaskGroup) -> list[Task]:
    """The tasks an edge *out of* ``group`` leaves from (an empty group defers upwards)."""
    current: TaskGroup | None = group
    while current is not None:
        leaves = current.leaves()
        if leaves:
            return leaves
        if current.upstream_task_ids:
            return [current.dag.tasks[tid] for tid in sorted(current.upstream_task_ids)]
        current = current.parent
    return []


def _ref(node: Node) -> tuple[str, str]:
    if isinstance(node, Task):
        return ("task", node.task_id)
    return ("group", node.require_id())


def link(up: Node, downs: Nodes) -> None:
    """Record ``up >> downs`` (also ``downs << up`` and ``[...] << up``)."""
    targets = _as_list(downs)
    for down in targets:
        _same_dag(up, down)
    up.dag.events.append(("down", _ref(up), [_ref(d) for d in targets]))
    _downstream(up, targets)


def link_up(down: Node, ups: Nodes) -> None:
    """Record ``down << ups`` (also ``ups >> down`` for a list ``ups``).

    Airflow takes a different path here than for ``>>``: the group on the right records
    its upstream nodes, and a group on the left feeds from its plain leaves (no walking up
    from an empty group).
    """
    sources = _as_list(ups)
    for up in sources:
        _same_dag(up, down)
    down.dag.events.append(("up", _ref(down), [_ref(u) for u in sources]))
    if isinstance(down, Task):
        _upstream(down, sources)
        return
    for up in sources:
        if isinstance(up, TaskGroup):
            down.upstream_group_ids.add(up.require_id())
            up.downstream_group_ids.add(down.require_id())
        else:
            down.upstream_task_ids.add(up.task_id)
    for root in down.roots():
        _upstream(root, sources)


def _upstream(task: Task, sources: list[Node]) -> None:
    for up in sources:
        if isinstance(up, Task):
            task.add_upstream_edge(up)
        else:
            up.downstream_task_ids.add(task.task_id)
            for leaf in up.leaves():
                task.add_upstream_edge(leaf)


def _downstream(up: Node, targets: list[Node]) -> None:
    if isinstance(up, Task):
        for down in targets:
            if isinstance(down, Task):
                down.add_upstream_edge(up)
            else:
                down.upstream_task_ids.add(up.task_id)
                for root in down.roots():
                    root.add_upstream_edge(up)
        return
    leaves = _leaves_for_edge(up)
    for down in targets:
        if isinstance(down, TaskGroup):
            down.upstream_group_ids.add(up.require_id())
            up.downstream_group_ids.add(down.require_id())
        else:
            up.downstream_task_ids.add(down.task_id)
    for leaf in leaves:
        _downstream(leaf, targets)


def _same_dag(a: Node, b: Node) -> None:
    if a.dag is not b.dag:
        raise UsageError(f"{a!r} and {b!r} belong to different DAGs")
