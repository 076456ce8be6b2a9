"""Tasks as serialized operator objects (``{"__type": "operator", "__var": {...}}``).

A key is written only when its value differs from the operator schema's default, since
Airflow assumes the default for an absent key; ``default_args`` and the DAG shortcuts are
already resolved into each task (Airflow does not re-apply them when it loads a DAG).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Final

from ..authoring import TASK_OPTIONS, Dag, Param, Task
from ..authoring.params import merge_params
from ..authoring.sensors import serialized_sensor_fields
from .assets import encode_lineage
from .mapping import mapped_operator
from .values import encode_value, epoch, seconds

__all__ = [
    "LANGUAGE",
    "SKIPPING_KINDS",
    "SCHEMA_DEFAULTS",
    "TASK_MODULE",
    "TASK_TYPE",
    "serialize_params",
    "serialize_task",
]

#: How trio-coord's tasks are labelled in the Airflow UI. Airflow never imports these; a
#: real Python operator's pair is avoided so no plugin's extra links attach to our tasks.
TASK_TYPE: Final = "TrioOperator"
TASK_MODULE: Final = "trio_coord"
#: A marker nothing in Airflow reads; it survives loading as a plain attribute.
LANGUAGE: Final = "python-trio"

#: Operator schema defaults (airflow-core 3.3.2 ``schema.json``) for the options trio-coord
#: writes: a key equal to its default is omitted, as Python does.
SCHEMA_DEFAULTS: Final[Mapping[str, Any]] = {
    "owner": "airflow",
    "trigger_rule": "all_success",
    "depends_on_past": False,
    "ignore_first_depends_on_past": False,
    "wait_for_past_depends_before_skipping": False,
    "wait_for_downstream": False,
    "retries": 0,
    "queue": "default",
    "pool": "default_pool",
    "pool_slots": 1,
    "retry_exponential_backoff": 0,
    "priority_weight": 1,
    "weight_rule": "downstream",
    "do_xcom_push": True,
}

#: Airflow's retry delay when none is given. Python writes it even though it equals the
#: schema default (it compares a timedelta with a float), so trio-coord does too.
DEFAULT_RETRY_DELAY: Final = 300.0

#: Options Python writes only when ``email`` is set, which trio-coord does not support:
#: they are accepted (and exported) but never appear in the document.
_EMAIL_ONLY: Final = frozenset({"email_on_failure", "email_on_retry"})

#: Task kinds that skip downstream tasks at run time (Airflow's SkipMixin operators).
SKIPPING_KINDS: Final = frozenset({"branch", "short_circuit"})

#: The class path Airflow's loader expects for a param.
PARAM_CLASS: Final = "airflow.sdk.definitions.param.Param"


def _field(value: Any) -> Any:
    """A task field's bare value: durations and dates as float seconds."""
    if isinstance(value, datetime.datetime):
        return epoch(value)
    if isinstance(value, datetime.timedelta):
        return seconds(value)
    return value


def serialize_params(dag: Dag, source: str | None) -> list[list[Any]]:
    """DAG params as ordered ``[name, param]`` pairs (``source`` "dag" on tasks, None on the DAG)."""
    return [_param(name, p, source) for name, p in dag.params.items()]


def _param(name: str, p: Param, source: str | None) -> list[Any]:
    return [
        name,
        {
            "__class": PARAM_CLASS,
            "default": encode_value(p.default),
            "description": p.description,
            "schema": encode_value(dict(p.schema)),
            "source": source,
        },
    ]


def _task_params(task: Task) -> list[list[Any]]:
    """A task's params: the DAG's (``source`` "dag") merged with its own ("task")."""
    merged = merge_params(task.dag.params, task.option("params"))
    return [_param(name, p, source) for name, (p, source) in merged.items()]


def serialize_task(task: Task, downstream: list[str]) -> dict[str, Any]:
    """One task of ``task.dag``; ``downstream`` are the ids it feeds (any order)."""
    dag = task.dag
    out: dict[str, Any] = {
        "task_id": task.task_id,
        "task_type": TASK_TYPE,
        "_task_module": TASK_MODULE,
        "language": LANGUAGE,
        "template_fields": [],
    }
    for name in TASK_OPTIONS:
        value = task.option(name)
        if value is None or name in _EMAIL_ONLY:
            continue
        if name == "params":
            continue  # merged with the DAG's below
        if name == "retry_policy":
            # Applied by the runtime; as on the export route (@task.stub refuses a
            # policy), Airflow is not told of it.
            continue
        if name in SCHEMA_DEFAULTS and value == SCHEMA_DEFAULTS[name]:
            continue
        if name == "start_date" and value == dag.start_date:
            continue
        if name == "end_date" and value == dag.end_date:
            continue
        if name in ("inlets", "outlets"):
            if value:
                out[name] = encode_lineage(value)
            continue
        if not callable(value):  # a map_index_template function stays in the bundle
            out[name] = _field(value)
    out.setdefault("retry_delay", DEFAULT_RETRY_DELAY)
    out.update(serialized_sensor_fields(task))
    if task.fn.__doc__:
        out["doc"] = task.fn.__doc__
    params = _task_params(task)
    if params:
        out["params"] = params
    if task.kind in SKIPPING_KINDS or task.kind_options.get("approval") is True:
        # The scheduler's NotPreviouslySkippedDep reads the task's skipmixin XCom only
        # for tasks marked so (Python marks every SkipMixin operator).
        out["_can_skip_downstream"] = True
    if downstream:
        out["downstream_task_ids"] = sorted(set(downstream))
    if task.is_mapped:
        out = mapped_operator(task, out)
    return {"__type": "operator", "__var": out}
