"""The Python authoring API: a bundle of DAGs whose tasks are plain functions.

A bundle file declares DAGs, task groups and tasks; the same declarations serve the
runtime (which looks a task up by ``(dag_id, task_id)`` from ``StartupDetails``), the
packer, the export to Airflow (``trio_coord.airflow``) and the native serializer
(``trio_coord.dagparse``). Nothing here imports trio or Airflow, so a bundle imports
anywhere. One module per Airflow concept:

* :mod:`.dags` -- ``Bundle``, ``Dag``, ``Param``;
* :mod:`.tasks` -- ``Task`` and what a task function may ask for;
* :mod:`.groups` -- ``TaskGroup``; :mod:`.edges` -- how ``>>`` touching a group resolves;
* :mod:`.assets` -- ``Asset``, ``AssetAlias`` and asset conditions;
* :mod:`.schedules` -- accepted schedules; :mod:`.validation` -- the option checks;
* :mod:`.taskflow` -- calling a task binds it (``b(a())``), the module-level ``task`` and
  ``task_group``, ``@bundle.dag`` on a function; :mod:`.context` -- the active DAG.
* :mod:`.sensors` -- a sensor's options and poke result; :mod:`.deferral` -- ``Defer``;
  :mod:`.hitl` -- asking a person (``AwaitInput``, the ``hitl`` kind).
* :mod:`.graph` -- a task's downstream and descendants; :mod:`.params` -- param schemas
  and a run's values; :mod:`.retry_policy` -- ``RetryPolicy`` and its rules.
"""

from __future__ import annotations

from .assets import Asset, AssetAlias, AssetAll, AssetAny
from .dags import TRIO_COORD_QUEUE, Bundle, Dag, Param
from .deferral import Defer, Trigger, defer_for, defer_until
from .groups import TaskGroup
from .hitl import AwaitInput, HITLRejected, HITLTimeoutError
from .params import SCHEMA_KEYWORDS
from .retry_policy import (
    ExceptionRetryPolicy,
    RetryAction,
    RetryDecision,
    RetryPolicy,
    RetryRule,
)
from .schedules import SCHEDULE_PRESETS, Schedule
from .sensors import PokeReturnValue, SensorTimeout
from .taskflow import task, task_group
from .tasks import EVENT_LOOPS, INJECTABLE, FailTask, SkipTask, Task, TaskTimeout
from .validation import TASK_OPTIONS, TRIGGER_RULES, WEIGHT_RULES, check_id, did_you_mean
from .xcom_args import XComArg

#: The previous name of :func:`check_id`, still imported by the local runner.
_check_id = check_id

__all__ = [
    "Asset",
    "AssetAlias",
    "AssetAll",
    "AssetAny",
    "Bundle",
    "Dag",
    "Task",
    "TaskGroup",
    "Param",
    "XComArg",
    "task",
    "task_group",
    "SkipTask",
    "FailTask",
    "PokeReturnValue",
    "SensorTimeout",
    "Defer",
    "Trigger",
    "defer_for",
    "defer_until",
    "AwaitInput",
    "HITLRejected",
    "HITLTimeoutError",
    "TaskTimeout",
    "RetryPolicy",
    "RetryDecision",
    "RetryAction",
    "RetryRule",
    "ExceptionRetryPolicy",
    "SCHEMA_KEYWORDS",
    "INJECTABLE",
    "EVENT_LOOPS",
    "TRIO_COORD_QUEUE",
    "SCHEDULE_PRESETS",
    "Schedule",
    "TASK_OPTIONS",
    "TRIGGER_RULES",
    "WEIGHT_RULES",
    "did_you_mean",
]
