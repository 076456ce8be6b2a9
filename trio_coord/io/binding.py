"""The client of the task that is running, for object-storage paths made without ``client=``.

The task runner binds it around the call of a task's function: the blocking client for a
plain ``def`` task (the binding follows the call into its worker thread), the async one
for an ``async def`` task. A path reads it only when it must fetch a connection.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

__all__ = ["bound_client", "current_client"]

_CLIENT: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "trio_coord_task_client", default=None
)


@contextlib.contextmanager
def bound_client(client: Any) -> Iterator[None]:
    """Make ``client`` the one paths use while the task's function runs."""
    token = _CLIENT.set(client)
    try:
        yield
    finally:
        _CLIENT.reset(token)


def current_client() -> Any:
    """The running task's client, or None outside a task."""
    return _CLIENT.get()
