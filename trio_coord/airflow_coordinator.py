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
import threading
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
        _warm_schema_in_background()
        return (
            [self.python, "-m", "trio_coord", "serve", "--bundle", self.bundle],
            SUPERVISOR_SCHEMA_VERSION,
        )


def _warm_schema_in_background() -> None:
    """Build the supervisor's schema tables while the runtime process starts.

    A runtime that declares a schema version makes the 1.3.2 supervisor build its
    version migrator when it accepts the connections and, on the first request, import
    the DAG processor's message catalogue (``registered_models_by_name``): about 0.3 s
    and 0.4 s of its own time on every try, each on the critical path (native tasks pay
    neither). Both are cached per process, so doing them in a thread now overlaps them
    with the child's start-up (the supervisor only waits on a socket then). Best effort:
    any failure leaves the supervisor to do the same work itself later.
    """

    def warm() -> None:
        try:
            from airflow.sdk.execution_time.schema import (
                get_schema_version_migrator,
                registered_models_by_name,
            )

            get_schema_version_migrator()
            registered_models_by_name()
        except Exception:
            pass

    threading.Thread(target=warm, name="trio-coord-warm-schema", daemon=True).start()
