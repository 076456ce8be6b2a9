"""What a branch or short-circuit task does with its return value: skip part of the DAG.

Airflow's native runner (``SkipMixin``, ``BranchMixIn``, ``ShortCircuitOperator``) is the
model, message for message, because the scheduler reads what it leaves behind:

* a ``skipmixin_key`` XCom first: ``{"followed": [...]}`` (branch) or ``{"skipped": [...]}``
  (short-circuit); the scheduler's "not previously skipped" rule uses it when a
  downstream task is cleared and run again;
* then ``SkipDownstreamTasks`` (not terminal; the supervisor answers once the API server
  has skipped them) and the task's own ``SucceedTask``. A branch names each task as
  ``(task_id, -1)``, a short-circuit as a plain id, as Airflow does;
* when tasks were skipped, the return value is *not* pushed as ``return_value``:
  Airflow's runner leaves the XCom push behind when the skip is signalled. When nothing
  is skipped the value is pushed as usual.

A mapped instance (``map_index >= 0``) pushes the XCom but never sends the skip: its
downstream tasks are not expanded yet, and the scheduler decides from the XCom.

Branch rules: the value is a task id, a task group id (meaning the group's root tasks),
a list of those, or None (skip every direct downstream task). An id the DAG does not
have fails the try. A direct downstream task that is also downstream of a followed task
is kept (the "join" after an empty branch).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Final

from ..authoring import Task
from ..authoring.graph import descendants, downstream, group_roots
from ..client import Client
from ..context import TaskContext
from ..errors import UsageError

__all__ = ["InvalidBranch", "SKIPMIXIN_KEY", "after_return"]

#: The XCom key Airflow's SkipMixin writes its decision under.
SKIPMIXIN_KEY: Final = "skipmixin_key"

log = logging.getLogger("trio_coord.runtime")


class InvalidBranch(UsageError):
    """A branch task returned something that names no task of its DAG."""


def branch_ids(task: Task, value: Any) -> set[str]:
    """The task ids a branch return value follows, group ids expanded to their roots.

    Raises:
        InvalidBranch: not None, a string or an iterable of strings; or an unknown id.
    """
    if value is None:
        return set()
    if isinstance(value, str):
        wanted = [value]
    elif isinstance(value, Iterable) and not isinstance(value, bytes | dict):
        wanted = list(value)
        bad = sorted({f"{v!r} ({type(v).__name__})" for v in wanted if not isinstance(v, str)})
        if bad:
            raise InvalidBranch(
                f"branch task {task.task_id!r} returned non-string ids {', '.join(bad)}; "
                "return a task id, a task group id, a list of them, or None"
            )
    else:
        raise InvalidBranch(
            f"branch task {task.task_id!r} returned a {type(value).__name__}; return a task "
            "id, a task group id, a list of them, or None"
        )
    followed: set[str] = set()
    for name in wanted:
        roots = None if name in task.dag.tasks else group_roots(task.dag, name)
        if roots is not None:
            log.info("following task group %s: its root tasks %s", name, roots)
            followed.update(roots)
        else:
            followed.add(name)
    unknown = sorted(followed - set(task.dag.tasks))
    if unknown:
        raise InvalidBranch(
            f"branch task {task.task_id!r} returned ids its DAG {task.dag.dag_id!r} does not "
            f"have: {', '.join(map(repr, unknown))}"
        )
    return followed


async def _skip(client: Client, ctx: TaskContext, tasks: list[str | tuple[str, int]]) -> bool:
    """Send the skip unless this is a mapped instance; True when it was sent."""
    if not tasks or ctx.map_index != -1:
        return False
    shown = [t if isinstance(t, str) else t[0] for t in tasks]
    log.info("skipping downstream tasks: %s", ", ".join(shown))
    await client.skip_downstream_tasks(tasks)
    return True


async def _branch(task: Task, ctx: TaskContext, client: Client, value: Any) -> bool:
    followed = branch_ids(task, value)
    log.info("following branch %s", sorted(followed))
    direct = downstream(task)
    if not direct:
        return False
    keep = set(followed)
    for task_id in followed:
        keep.update(t.task_id for t in descendants(task.dag.tasks[task_id]))
    follow = [t.task_id for t in direct if t.task_id in keep]
    skipped: list[str | tuple[str, int]] = [
        (t.task_id, ctx.map_index) for t in direct if t.task_id not in keep
    ]
    await client.set_xcom(SKIPMIXIN_KEY, {"followed": follow})
    return await _skip(client, ctx, skipped)


async def _short_circuit(task: Task, ctx: TaskContext, client: Client, value: Any) -> bool:
    log.info("condition result is %r", value)
    if value:
        log.info("proceeding with downstream tasks")
        return False
    if not downstream(task):
        log.info("no downstream tasks; nothing to skip")
        return False
    every = task.kind_options.get("ignore_downstream_trigger_rules", True)
    targets = descendants(task) if every else downstream(task)
    ids: list[str | tuple[str, int]] = [t.task_id for t in targets]
    await client.set_xcom(SKIPMIXIN_KEY, {"skipped": ids})
    return await _skip(client, ctx, ids)


async def after_return(task: Task, ctx: TaskContext, client: Client, value: Any) -> bool:
    """Apply the task kind's skipping to ``value``; True when the value must not be pushed.

    Raises:
        InvalidBranch: a branch value names no task; the try fails like any error.
        SupervisorError: the supervisor refused the XCom or the skip.
    """
    if task.kind == "branch":
        return await _branch(task, ctx, client, value)
    if task.kind == "short_circuit":
        return await _short_circuit(task, ctx, client, value)
    from .hitl import AnswerSkipped  # an approval's "Reject" already skipped downstream

    return isinstance(value, AnswerSkipped)
