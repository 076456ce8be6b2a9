"""A coordinator for Airflow's worker that runs tasks with ``trio-coord serve`` (deployment option b).

Airflow 1.3.2's ``ExecutableCoordinator`` runs packed bundles (``trio-coord pack``);
this class is the alternative for workers where trio-coord and the bundle's code are
installed in a Python environment: the worker imports it from ``[sdk] coordinators``::

    [sdk]
    coordinators = {"trio": {"classpath": "trio_coord.airflow_coordinator.TrioCoordinator",
                             "kwargs": {"bundle": "my_pkg.tasks:bundle"}}}
    queue_to_coordinator = {"trio-coord": "trio"}

It is only imported by the Airflow worker, never by the runtime.
"""

from __future__ import annotations

import sys
from typing import Any

from airflow.sdk.coordinators._subprocess import SubprocessCoordinator

__all__ = ["TrioCoordinator", "SUPERVISOR_SCHEMA_VERSION"]

#: The only wire-schema version apache-airflow-task-sdk 1.3.2 accepts (protocol.md §11).
SUPERVISOR_SCHEMA_VERSION = "2026-06-16"


class TrioCoordinator(SubprocessCoordinator):  # type: ignore[misc]
    """Launch ``python -m trio_coord serve --bundle BUNDLE`` for each task try.

    Args:
        bundle: the bundle, as ``module:attr`` or ``/path/to/file.py:attr``.
        python: the interpreter that has trio-coord installed (default: this one).
        task_startup_timeout: seconds the supervisor waits for both connections.
    """

    def __init__(
        self, bundle: str, python: str | None = None, task_startup_timeout: float = 10.0
    ) -> None:
        self.bundle = bundle
        self.python = python or sys.executable
        self.task_startup_timeout = task_startup_timeout

    def _build_execute_task_command(self, *, what: Any) -> tuple[list[str], str | None]:
        return (
            [self.python, "-m", "trio_coord", "serve", "--bundle", self.bundle],
            SUPERVISOR_SCHEMA_VERSION,
        )
