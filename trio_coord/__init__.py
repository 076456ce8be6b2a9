"""trio-coord: a Trio runtime for Apache Airflow's coordinator protocol.

Importing this package is cheap and needs neither trio nor Airflow: a bundle file is
imported by the runtime and by Airflow's DAG processor alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .authoring import (
    Bundle,
    Dag,
    ExceptionRetryPolicy,
    FailTask,
    Param,
    RetryAction,
    RetryDecision,
    RetryPolicy,
    RetryRule,
    SkipTask,
    Task,
    TaskTimeout,
)

if TYPE_CHECKING:
    from .context import TaskContext

__version__ = "0.1.0"

__all__ = [
    "Bundle",
    "Dag",
    "ExceptionRetryPolicy",
    "FailTask",
    "Param",
    "RetryAction",
    "RetryDecision",
    "RetryPolicy",
    "RetryRule",
    "SkipTask",
    "Task",
    "TaskContext",
    "TaskTimeout",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name == "TaskContext":
        from .context import TaskContext

        return TaskContext
    raise AttributeError(name)
