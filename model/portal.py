"""A synchronous door into one ``trio.run``, for Hypothesis rules (which cannot await).

Theory of operation
-------------------
:class:`TrioPortal` runs ``trio.run`` in a helper thread, under a
:class:`trio.testing.MockClock`, with one nursery that lives as long as the portal.
A rule calls :meth:`TrioPortal.run` with an async function and gets its result (or its
exception) back, synchronously, through ``trio.from_thread.run``. Background tasks
(:meth:`TrioPortal.start_soon`) run in the nursery between calls; an exception from one
is kept in :attr:`TrioPortal.crashes` instead of tearing the loop down, so the machine
can report it as a finding after the step that caused it.

Time is virtual and moves only when asked: :meth:`settle` lets every task run until all
are blocked (no time passes), :meth:`advance` jumps the clock and settles, and
:meth:`wait_until` switches the clock to autojump until an event happens or a virtual
deadline passes. Nothing here ever sleeps in real time, so "no hang" is a statement about
virtual seconds, never about how fast the machine is.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio
import trio.lowlevel
import trio.testing

__all__ = ["TrioPortal"]

T = TypeVar("T")

#: Real seconds every task must have been blocked before the virtual clock jumps. Zero:
#: nothing the runtime does under the model runs in a worker thread (the log pipeline's
#: stderr fallback writes synchronously), so "every task blocked" means waiting on virtual
#: time. A thread's work would be invisible here: any threshold would only race it.
AUTOJUMP_REAL_SECONDS = 0.0


class TrioPortal:
    """One ``trio.run`` in a helper thread, driven synchronously."""

    def __init__(self) -> None:
        self.clock = trio.testing.MockClock()
        self.crashes: list[BaseException] = []
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._stop: trio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._thread_main, name="trio-portal", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _thread_main(self) -> None:
        try:
            trio.run(self._main, clock=self.clock)
        except BaseException as exc:  # surfaced by __init__ or close()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._ready.set()
            await self._stop.wait()
            nursery.cancel_scope.cancel("the portal is closing")

    # -- calls ------------------------------------------------------------------------

    def run(self, afn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``afn(*args)`` in the Trio thread and return its result."""
        return trio.from_thread.run(afn, *args, trio_token=self._token)

    def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the Trio thread and return its result."""
        return trio.from_thread.run_sync(fn, *args, trio_token=self._token)

    def start_soon(self, afn: Callable[..., Awaitable[Any]], *args: Any, name: str = "") -> None:
        """Start ``afn(*args)`` in the portal's nursery; its exception goes to ``crashes``."""

        async def guarded() -> None:
            try:
                await afn(*args)
            except trio.Cancelled:
                raise
            except BaseException as exc:
                self.crashes.append(exc)

        def spawn() -> None:
            assert self._nursery is not None
            self._nursery.start_soon(guarded, name=name or getattr(afn, "__name__", "task"))

        self.run_sync(spawn)

    # -- time -------------------------------------------------------------------------

    def settle(self) -> None:
        """Let every task run until all are blocked; no virtual time passes."""

        async def settle() -> None:
            # Twice: a task woken from another thread (run_sync_soon) gets its turn too.
            for _ in range(3):
                await trio.testing.wait_all_tasks_blocked()
                await trio.lowlevel.checkpoint()

        self.run(settle)

    def advance(self, seconds: float) -> None:
        """Jump the virtual clock by ``seconds``, then settle."""
        self.run_sync(self.clock.jump, seconds)
        self.settle()

    def wait_until(self, event: trio.Event, virtual_seconds: float) -> float | None:
        """Autojump the clock until ``event`` is set; the virtual seconds it took, or None.

        None means it was still unset ``virtual_seconds`` later: a hang.
        """

        async def wait() -> float | None:
            start = trio.current_time()
            self.clock.autojump_threshold = AUTOJUMP_REAL_SECONDS
            try:
                with trio.move_on_after(virtual_seconds):
                    await event.wait()
                    return trio.current_time() - start
                return None
            finally:
                self.clock.autojump_threshold = math.inf

        result = self.run(wait)
        self.settle()
        return result

    @property
    def now(self) -> float:
        """Virtual seconds since the portal started."""
        return self.run_sync(trio.current_time)

    def close(self) -> None:
        """Cancel everything still running and join the thread."""
        if self._token is not None and self._stop is not None:
            with contextlib.suppress(trio.RunFinishedError):
                self.run_sync(self._stop.set)
        self._thread.join(timeout=60)
        if self._error is not None:
            raise self._error
