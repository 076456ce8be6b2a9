"""The asyncio face of :class:`Client`, for tasks declared with ``event_loop="asyncio"``.

Such a task's coroutine runs on its own asyncio loop in a worker thread, while the comm
channel lives in the Trio thread. Each method of :class:`AsyncioClient` is a coroutine
(for asyncio) that starts the :class:`Client` method of the same name as a Trio task in
the try's nursery and waits for its result on an ``asyncio.Future``, so a request never
blocks the loop: an asyncio task can ``asyncio.gather`` several requests, and they are
pipelined over the one channel as concurrent Trio callers' are.

The class is derived from :class:`Client` once, in a loop over its public coroutine
methods (the same list :class:`SyncClient` is checked against), not method by method.
For the type checker it *is* a :class:`Client` (same names, same signatures, same
results), which is exactly what a caller in asyncio sees.

Cancelling works both ways: the Trio side runs the calls in the try's cancel scope, so
SIGTERM cancels them and the awaiting asyncio code gets ``CancelledError``; an asyncio
task cancelled while it waits leaves its request to finish (the reply is then dropped),
because a request already on the wire cannot be taken back.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from ._client import Client
from ._sync import public_methods

__all__ = ["AsyncioClient", "Bridge"]


class Bridge:
    """Runs Trio coroutines on behalf of an asyncio loop in a Trio worker thread."""

    def __init__(self, nursery: trio.Nursery, token: trio.lowlevel.TrioToken) -> None:
        self._nursery = nursery
        self._token = token

    async def call(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        """Await ``fn()`` run in Trio, from asyncio, without blocking the asyncio loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def settle(ok: bool, value: Any) -> None:
            if future.done():  # the asyncio side gave up waiting
                return
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

        def deliver(ok: bool, value: Any) -> None:
            # The loop is gone when the asyncio task was abandoned: nobody is waiting then.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, ok, value)

        async def run() -> None:
            try:
                value = await fn()
            except trio.Cancelled:
                deliver(False, asyncio.CancelledError("the Trio side cancelled the request"))
                raise
            except Exception as exc:
                deliver(False, exc)
            else:
                deliver(True, value)

        trio.from_thread.run_sync(self._nursery.start_soon, run, trio_token=self._token)
        return await future


def _forward(name: str) -> Callable[..., Awaitable[Any]]:
    method = getattr(Client, name)

    @functools.wraps(method)
    async def call(self: _AsyncioClient, *args: Any, **kwargs: Any) -> Any:
        return await self._bridge.call(functools.partial(method, self._client, *args, **kwargs))

    return call


class _AsyncioClient:
    """The same methods as :class:`Client`, awaitable from an asyncio loop."""

    def __init__(self, client: Client, bridge: Bridge) -> None:
        self._client = client
        self._bridge = bridge


for _name in sorted(public_methods(Client)):
    setattr(_AsyncioClient, _name, _forward(_name))
del _name

if TYPE_CHECKING:

    class AsyncioClient(Client):
        """What a type checker sees: the async client's interface."""

        def __init__(self, client: Client, bridge: Bridge) -> None: ...

else:
    AsyncioClient = _AsyncioClient
    AsyncioClient.__name__ = AsyncioClient.__qualname__ = "AsyncioClient"
