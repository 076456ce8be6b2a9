"""A stand-in bundle whose every task fails with the reason the real one cannot run.

In coordinator mode, a bundle that cannot be imported (or a launcher that could not find
the configured interpreter) would otherwise exit before connecting, and the released
supervisor discards what such a child printed: the task would fail with only
``process exited with 4 before connecting`` in the worker log. Running this stand-in
instead connects normally, and the runtime reports the error in the task log.

It reports it once: the error the user's module raised, with only the user's frames
(:func:`trio_coord.tracebacks.user_frames`, as the CLI prints it), and a note saying that
the bundle could not be imported. Wrapping it in a second exception would render two
tracebacks, the outer one all trio-coord internals. ``--debug`` keeps everything.
"""

from __future__ import annotations

from typing import NoReturn

from ..authoring import Bundle, Dag, Task
from ..errors import CoordError, UsageError
from ..tracebacks import debug_enabled, user_frames

__all__ = ["BundleUnusable", "UnusableBundle"]


class BundleUnusable(CoordError):
    """The bundle cannot run on this worker; the message says why."""


class UnusableBundle(Bundle):
    """Answers every ``(dag_id, task_id)`` with a task that raises :class:`BundleUnusable`."""

    def __init__(self, name: str, reason: str, *, cause: BaseException | None = None) -> None:
        try:
            super().__init__(name, "0")
        except UsageError:
            super().__init__("bundle", "0")
        self.reason = reason
        self.cause = cause

    def find_task(self, dag_id: str, task_id: str) -> Task:
        dag = self.dags.get(dag_id) or Dag(bundle=self, dag_id=dag_id)
        self.dags[dag_id] = dag
        reason, cause = self.reason, self.cause

        async def unusable() -> NoReturn:
            if cause is None:
                raise BundleUnusable(reason) from None
            if debug_enabled():
                raise BundleUnusable(reason) from cause
            cause.__cause__ = None
            cause.__suppress_context__ = True
            cause.add_note(f"every task of this bundle fails with it: {reason}")
            raise cause.with_traceback(user_frames(cause.__traceback__))

        task = Task(dag=dag, task_id=task_id, fn=unusable, retries=0)
        dag.tasks[task_id] = task
        return task
