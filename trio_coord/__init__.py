"""trio-coord: a Trio runtime for Apache Airflow's coordinator protocol.

Importing this package is cheap and needs neither trio nor Airflow: a bundle file is
imported by the runtime and by Airflow's DAG processor alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .authoring import (
    AwaitInput,
    Bundle,
    Dag,
    Defer,
    ExceptionRetryPolicy,
    FailTask,
    Param,
    PokeReturnValue,
    RetryAction,
    RetryDecision,
    RetryPolicy,
    RetryRule,
    SensorTimeout,
    SkipTask,
    Task,
    TaskTimeout,
    Trigger,
    XComArg,
    defer_for,
    defer_until,
    task,
    task_group,
)
from .authoring.assets import Asset, AssetAlias, AssetAll, AssetAny

if TYPE_CHECKING:
    from .context import TaskContext

__version__ = "0.1.0"

__all__ = [
    "Asset",
    "AwaitInput",
    "AssetAlias",
    "AssetAll",
    "AssetAny",
    "Bundle",
    "Dag",
    "Defer",
    "ExceptionRetryPolicy",
    "FailTask",
    "Param",
    "PokeReturnValue",
    "RetryAction",
    "RetryDecision",
    "RetryPolicy",
    "RetryRule",
    "SensorTimeout",
    "SkipTask",
    "Task",
    "TaskContext",
    "TaskTimeout",
    "Trigger",
    "XComArg",
    "defer_for",
    "defer_until",
    "task",
    "task_group",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name == "TaskContext":
        from .context import TaskContext

        return TaskContext
    raise AttributeError(name)
