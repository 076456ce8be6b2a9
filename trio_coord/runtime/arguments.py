"""The arguments a TaskFlow call bound to a task, resolved into values before it runs.

A DAG that says ``load(extract()["rows"])`` stored an ``XComArg`` in ``load``'s bound call
(``authoring/taskflow.py``); here each one becomes the value ``extract`` pushed, pulled
with ``GetXCom`` for the same DAG and run, and the unmapped instance (map index -1).
Containers the reference sits in (lists, tuples, sets, dicts) are rebuilt around it.

Resolution happens in the Trio task for async and sync tasks alike (a sync task's
thread starts with its values ready), so there is one code path and every pull runs
under the try's cancel scope.

A missing value is treated the way Airflow's ``PlainXComArg.resolve`` treats it: a
missing ``return_value`` (or any key of a ``multiple_outputs`` task) is ``None``; any
other missing key fails the try with :class:`XComNotFound`, which Airflow retries like
any other task error.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from ..authoring import Task, XComArg
from ..authoring.xcom_args import RETURN_VALUE
from ..client import Client

__all__ = ["XComNotFound", "call_arguments", "resolve_xcom_arg"]

log = logging.getLogger("trio_coord.runtime")

#: The map index of an unmapped task instance.
UNMAPPED = -1


class XComNotFound(Exception):
    """An upstream output a task was called with was never pushed (Airflow's XComNotFound)."""

    def __init__(self, dag_id: str, task_id: str, key: str) -> None:
        super().__init__(dag_id, task_id, key)
        self.dag_id = dag_id
        self.task_id = task_id
        self.key = key

    def __str__(self) -> str:
        return f"XComArg result from {self.task_id} at {self.dag_id} with key={self.key!r} is not found"


async def resolve_xcom_arg(arg: XComArg, client: Client, *, awaitable: bool = False) -> Any:
    """The value ``arg`` stands for in this run.

    The single place an upstream reference becomes a value. A mapped upstream is a lazy
    sequence of every instance's value (the awaitable form when ``awaitable``: for a task
    on the Trio loop), read item by item as the task asks.

    Raises:
        XComNotFound: nothing was pushed under a key other than ``return_value`` by a task
            without ``multiple_outputs``.
    """
    upstream = arg.task
    if upstream.is_mapped:
        from .mapping import resolve_output

        return await resolve_output(arg, client, is_async=awaitable)
    value = await client.get_xcom(arg.key, task_id=upstream.task_id, map_index=UNMAPPED)
    if value is not None:
        return value
    if arg.key == RETURN_VALUE or upstream.multiple_outputs:
        log.warning(
            "upstream task %r pushed no XCom %r in this run; passing None, as Airflow does",
            upstream.task_id,
            arg.key,
        )
        return None
    log.error(
        "upstream task %r pushed no XCom %r in this run, which this task was called with",
        upstream.task_id,
        arg.key,
    )
    raise XComNotFound(upstream.dag.dag_id, upstream.task_id, arg.key)


async def _resolve(value: Any, client: Client, awaitable: bool) -> Any:
    if isinstance(value, XComArg):
        return await resolve_xcom_arg(value, client, awaitable=awaitable)
    if isinstance(value, list | tuple | set | frozenset):
        items = [await _resolve(item, client, awaitable) for item in value]
        return items if isinstance(value, list) else type(value)(items)
    if isinstance(value, dict):
        return {key: await _resolve(item, client, awaitable) for key, item in value.items()}
    return value


async def call_arguments(
    task: Task, client: Client, injected: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``(args, kwargs)`` for ``task.fn``: the bound call resolved, plus the injected values.

    Raises:
        XComNotFound: see :func:`resolve_xcom_arg`.
        SupervisorGone: the comm channel broke while pulling.
    """
    if task.call is None:
        return (), dict(injected)
    # An awaitable sequence only where the body can await it: on the Trio loop.
    awaitable = task.is_async and task.event_loop == "trio"
    args = tuple([await _resolve(a, client, awaitable) for a in task.call.args])
    kwargs = {k: await _resolve(v, client, awaitable) for k, v in task.call.kwargs.items()}
    bound = inspect.signature(task.fn).bind_partial(*args, **kwargs)
    bound.arguments.update(injected)
    return bound.args, bound.kwargs
