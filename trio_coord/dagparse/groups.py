"""The ``task_group`` tree: which group holds each task, and group-level edge bookkeeping.

The edges themselves are already task edges (see ``trio_coord.authoring.edges``); the
group's four id lists only let Airflow's UI draw one arrow per group instead of many.
"""

from __future__ import annotations

from typing import Any, Final

from ..authoring import TaskGroup

__all__ = ["ROOT_DEFAULTS", "serialize_group"]

#: The group attributes trio-coord does not let authors change, at Airflow's defaults.
ROOT_DEFAULTS: Final = {
    "group_display_name": "",
    "tooltip": "",
    "ui_color": "CornflowerBlue",
    "ui_fgcolor": "#000",
}


def serialize_group(group: TaskGroup) -> dict[str, Any]:
    """A group and everything nested in it; ``_group_id`` is the group's *local* id."""
    children: dict[str, Any] = {}
    # Iterative, children before parents are finished: the depth of nesting is bounded only
    # by ids, and a group tree is written without recursion limits in mind.
    stack: list[tuple[TaskGroup, dict[str, Any]]] = [(group, children)]
    while stack:
        current, into = stack.pop()
        for child_id, child in current.children.items():
            if isinstance(child, TaskGroup):
                nested: dict[str, Any] = {}
                into[child_id] = ["taskgroup", _group_object(child, nested)]
                stack.append((child, nested))
            else:
                into[child_id] = ["operator", child_id]
    return _group_object(group, children)


def _group_object(group: TaskGroup, children: dict[str, Any]) -> dict[str, Any]:
    return {
        "_group_id": group.local_id,
        **ROOT_DEFAULTS,
        "prefix_group_id": group.prefix_group_id,
        "children": children,
        "upstream_group_ids": sorted(group.upstream_group_ids),
        "downstream_group_ids": sorted(group.downstream_group_ids),
        "upstream_task_ids": sorted(group.upstream_task_ids),
        "downstream_task_ids": sorted(group.downstream_task_ids),
    }
