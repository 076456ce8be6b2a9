"""Running an ``event_loop="asyncio"`` task, and telling users when they need to.

Theory of operation
-------------------
The runtime is a Trio program, so an ``async def`` task normally runs as a Trio task,
and any asyncio-only library it awaits fails ("no running event loop"). A task declared
with ``event_loop="asyncio"`` instead runs on a fresh asyncio loop (``asyncio.run``) in
a Trio worker thread; its ``client`` is an :class:`~trio_coord.client._asyncio.AsyncioClient`
whose calls are Trio tasks in a nursery of this try, so they are answered by the one
comm channel and cancelled with the try.

Cancellation (SIGTERM, a lost supervisor, a timeout: anything that cancels the try's
scope) cancels the coroutine's asyncio task with ``loop.call_soon_threadsafe`` from the
Trio thread: the task gets ``CancelledError`` at the ``await`` it is blocked in, runs its
``finally`` blocks and ``async with`` exits, and ``asyncio.run`` closes the loop. The
try waits up to :data:`CANCEL_GRACE` seconds for that, then reports the cancellation
whatever the thread is doing (a coroutine that swallows ``CancelledError`` or blocks
without awaiting keeps its daemon thread until the process exits).

:func:`asyncio_hint` recognises the errors asyncio code raises outside an asyncio loop,
so a try that fails with one says what to do about it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Final

import trio

from ..client import Client
from ..client._asyncio import AsyncioClient, Bridge

__all__ = ["CANCEL_GRACE", "asyncio_hint", "run_on_asyncio"]

#: How long a cancelled asyncio task may take to unwind before the try reports anyway.
#: Short, because after SIGTERM the supervisor SIGKILLs within 5 s and the terminal
#: message must be sent before that.
CANCEL_GRACE: Final = 1.0


class _LoopHandle:
    """The asyncio loop and main task of one try, as the worker thread publishes them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task[Any] | None = None
        self.cancelled = False
        self.started = False

    def start(self) -> bool:
        """Called first in the worker thread: False when Trio cancelled before it began."""
        with self.lock:
            self.started = True
            return not self.cancelled

    def publish(self) -> None:
        """Called on the loop: record it, or cancel at once if Trio already asked to."""
        with self.lock:
            self.loop = asyncio.get_running_loop()
            self.task = asyncio.current_task()
            if self.cancelled and self.task is not None:
                self.task.cancel()

    def cancel(self) -> bool:
        """Called from Trio: cancel the asyncio task, now or as soon as it exists.

        Returns whether the worker thread had begun (else it never runs the coroutine).
        """
        with self.lock:
            self.cancelled = True
            if self.loop is not None and self.task is not None:
                with contextlib.suppress(RuntimeError):  # the loop already closed
                    self.loop.call_soon_threadsafe(self.task.cancel)
            return self.started


async def run_on_asyncio(
    coroutine: Callable[[AsyncioClient], Coroutine[Any, Any, Any]], client: Client
) -> Any:
    """Run ``coroutine(asyncio_client)`` on a new asyncio loop in a worker thread.

    Returns its result or raises its exception, in the Trio task. When the enclosing
    scope is cancelled the asyncio task is cancelled too (see the module docstring)
    and ``trio.Cancelled`` propagates.
    """
    handle = _LoopHandle()
    finished = trio.Event()
    token = trio.lowlevel.current_trio_token()
    outcome: list[tuple[bool, Any]] = []

    async with trio.open_nursery() as nursery:
        aclient = AsyncioClient(client, Bridge(nursery, token))

        async def main() -> Any:
            handle.publish()
            return await coroutine(aclient)

        def thread() -> Any:
            try:
                if not handle.start():
                    return None
                return asyncio.run(main())
            finally:
                with contextlib.suppress(trio.RunFinishedError):
                    trio.from_thread.run_sync(finished.set, trio_token=token)

        try:
            outcome.append((True, await trio.to_thread.run_sync(thread, abandon_on_cancel=True)))
        except trio.Cancelled as exc:
            if handle.cancel():
                with trio.CancelScope(shield=True), trio.move_on_after(CANCEL_GRACE):
                    await finished.wait()
            outcome.append((False, exc))
        except BaseException as exc:  # the task's own error, raised after the nursery
            outcome.append((False, exc))
        # Nothing of the task's should outlive it; a request still running is abandoned.
        nursery.cancel_scope.cancel("the asyncio task is over")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


#: Messages of the errors asyncio code raises when no asyncio loop is running.
_NO_LOOP: Final = (
    "no running event loop",
    "no current event loop",
    "unknown async library",
    "framework like asyncio",  # trio's own message when a coroutine yields to asyncio
)


def asyncio_hint(exc: BaseException, *, is_async: bool) -> str | None:
    """What to tell a task that failed with asyncio-outside-asyncio, or None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = type(current).__name__
        text = str(current)
        if name == "AsyncLibraryNotFoundError" or (
            isinstance(current, RuntimeError | TypeError) and any(m in text for m in _NO_LOOP)
        ):
            where = "a Trio task" if is_async else "a worker thread (a plain function)"
            return (
                f"this task runs in {where}, not on an asyncio event loop, and the failing "
                "code needs asyncio; declare the task as async def with "
                '@dag.task(event_loop="asyncio") to run it on its own asyncio loop'
            )
        current = current.__cause__ or current.__context__
    return None
