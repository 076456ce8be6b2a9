"""``execution_timeout``: a cancel scope around the user's code, and how its expiry reads.

Airflow's native runner arms SIGALRM and raises ``AirflowTaskTimeout`` in the task; here
the task's code runs under ``trio.move_on_after`` and the runner raises
:class:`~trio_coord.TaskTimeout` when that scope fired, so the failure takes the same road
as any other (retry if retries are left, the retry policy consulted). A synchronous task
runs in a worker thread, which cannot be interrupted: the scope abandons it, the try ends
on time, and the thread keeps running until the process exits right after.
"""

from __future__ import annotations

import datetime

import trio

from ..authoring import Task, TaskTimeout

__all__ = ["deadline", "expired"]


def _limit(task: Task) -> datetime.timedelta | None:
    value = task.option("execution_timeout")
    return value if isinstance(value, datetime.timedelta) else None


def deadline(task: Task) -> trio.CancelScope:
    """The scope to run the user's code in: never fires without an ``execution_timeout``.

    A zero timeout fires before the code starts, as in Airflow (the scope is entered
    cancelled, so the first checkpoint raises).
    """
    limit = _limit(task)
    if limit is None:
        return trio.CancelScope()
    return trio.move_on_after(max(limit.total_seconds(), 0.0))


def expired(task: Task) -> TaskTimeout:
    """The exception that stands for the scope having fired."""
    limit = _limit(task)
    shown = "0 s" if limit is None else f"{limit.total_seconds():g} s"
    return TaskTimeout(f"the task timed out after {shown} (execution_timeout)")
