"""A DAG run as the scheduler sees it, for ``trio-coord run BUNDLE DAG``: no I/O, no trio.

Theory of operation
-------------------
The plan comes from the serialized DAG the bundle's own parse workload produces (the
document a DAG processor would store), so the order, trigger rules and retry settings
are exactly what Airflow's scheduler would read, whatever wrote the bundle. Each task
becomes a :class:`PlannedTask`, and :func:`plan_dag` orders them so that every task comes
after its upstream tasks (ties keep declaration order: deterministic runs).

The rest are the scheduler's small rules, each a function the runner calls:

* :func:`retry_delay` -- when the next try of a failed task instance may start
  (``TaskInstance.next_retry_datetime``: ``retry_delay``, exponential backoff with its
  deterministic hash jitter, ``max_retry_delay``; a retry policy's own delay wins);
* :func:`temporal_moment` -- whether a deferral can be resolved here: only the standard
  provider's ``DateTimeTrigger`` (which ``TimeDeltaTrigger`` serializes as) can, since
  it does nothing but wait for a moment;
* :func:`dag_run_state` -- the run's final state from its leaves (``DagRun.update_state``);
* :func:`mapped_count` -- how many instances a mapped task expands into, from its
  serialized expand input and the values its upstream tasks pushed.
"""

from __future__ import annotations

import datetime
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ..authoring.deferral import DATETIME_TRIGGER, temporal_wait_event, temporal_wait_moment
from ..authoring.mapping import DICT_OF_LISTS, instance_count
from ..dagparse.mapping import EXPAND_INPUT_ATTR
from ..errors import UsageError
from ..protocol.messages import DeferTask
from .session import XComKey

__all__ = [
    "FINISHED",
    "MissingMapValues",
    "PlannedTask",
    "TEMPORAL_TRIGGER",
    "XComStore",
    "dag_run_state",
    "mapped_count",
    "plan_dag",
    "retry_delay",
    "temporal_moment",
]

#: The trigger a local run can resolve: it only waits for its moment.
TEMPORAL_TRIGGER: Final = DATETIME_TRIGGER

#: Task instance states after which nothing more happens in the run.
FINISHED: Final = frozenset({"success", "skipped", "failed", "upstream_failed", "removed"})

#: Airflow's cap on a computed retry delay (``MAX_RETRY_DELAY``: 24 hours).
_MAX_RETRY_DELAY: Final = 24 * 60 * 60.0

#: Serialization defaults (omitted from the document when the task keeps them).
_DEFAULT_RETRY_DELAY: Final = 300.0


@dataclass(frozen=True, slots=True)
class PlannedTask:
    """One task of the DAG, with what the scheduler reads from its serialized form."""

    task_id: str
    upstream: tuple[str, ...] = ()
    downstream: tuple[str, ...] = ()
    trigger_rule: str = "all_success"
    retries: int = 0
    retry_delay: float = _DEFAULT_RETRY_DELAY
    retry_exponential_backoff: float = 0.0
    max_retry_delay: float | None = None
    is_setup: bool = False
    #: The upstream tasks that are mapped (their output is a sequence of instance values).
    mapped_upstream: frozenset[str] = frozenset()
    #: The task's serialized document (``__var``), for what the plan does not read itself.
    document: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class XComStore:
    """Everything tasks of one local DAG run share through the supervisor."""

    #: XCom values by :data:`~trio_coord.local.session.XComKey`.
    values: dict[XComKey, Any] = field(default_factory=dict)
    #: ``(task_id, map_index) -> mapped_length`` that SetXCom announced.
    mapped_lengths: dict[tuple[str, int], int] = field(default_factory=dict)


def _seconds(value: Any, default: float | None) -> float | None:
    if value is None:
        return default
    if isinstance(value, dict):  # {"__type": "timedelta", "__var": seconds}
        value = value.get("__var")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return float(value)


def _backoff(value: Any) -> float:
    # Airflow 3.3 stores a multiplier; True is an older spelling of 2.
    if value is True:
        return 2.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value)


def plan_dag(document: Mapping[str, Any]) -> list[PlannedTask]:
    """The DAG's tasks from its serialized document, each after its upstream tasks.

    Raises:
        UsageError: the document has no task list, or its edges form a cycle.
    """
    try:
        raw = [entry["__var"] for entry in document["dag"]["tasks"]]
    except (KeyError, TypeError) as exc:
        raise UsageError(f"the serialized DAG has no task list ({exc})") from None
    ids = [str(t["task_id"]) for t in raw]
    upstream: dict[str, list[str]] = {tid: [] for tid in ids}
    for t in raw:
        for down in t.get("downstream_task_ids") or ():
            if down in upstream:
                upstream[down].append(str(t["task_id"]))
    mapped = {str(t["task_id"]) for t in raw if t.get("_is_mapped")}
    tasks = {
        str(t["task_id"]): PlannedTask(
            task_id=str(t["task_id"]),
            upstream=tuple(sorted(upstream[str(t["task_id"])], key=ids.index)),
            downstream=tuple(str(d) for d in t.get("downstream_task_ids") or ()),
            trigger_rule=str(t.get("trigger_rule") or "all_success"),
            retries=int(t.get("retries") or 0),
            retry_delay=_seconds(t.get("retry_delay"), _DEFAULT_RETRY_DELAY) or 0.0,
            retry_exponential_backoff=_backoff(t.get("retry_exponential_backoff")),
            max_retry_delay=_seconds(t.get("max_retry_delay"), None),
            is_setup=bool(t.get("_is_setup") or t.get("is_setup")),
            mapped_upstream=frozenset(u for u in upstream[str(t["task_id"])] if u in mapped),
            document=t,
        )
        for t in raw
    }
    ordered: list[PlannedTask] = []
    placed: set[str] = set()
    while len(ordered) < len(ids):
        ready = [
            tid for tid in ids if tid not in placed and all(u in placed for u in upstream[tid])
        ]
        if not ready:
            stuck = ", ".join(tid for tid in ids if tid not in placed)
            raise UsageError(f"the DAG's dependencies form a cycle among: {stuck}")
        for tid in ready:
            ordered.append(tasks[tid])
            placed.add(tid)
    return ordered


def retry_delay(
    task: PlannedTask,
    try_number: int,
    *,
    dag_id: str,
    logical_date: datetime.datetime | None,
    override: float | None = None,
) -> float:
    """Seconds between the end of try ``try_number`` and the next try (Airflow's rule)."""
    if override is not None:
        return max(0.0, override)
    delay = task.retry_delay
    multiplier = task.retry_exponential_backoff or 1.0
    if multiplier != 1.0 and multiplier > 0:
        try:
            min_backoff = math.ceil(delay * multiplier ** (try_number - 1))
        except OverflowError:
            min_backoff = int(_MAX_RETRY_DELAY)
        min_backoff = max(min_backoff, 1)
        text = f"{dag_id}#{task.task_id}#{logical_date}#{try_number}"
        ti_hash = int(hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest(), 16)
        delay = min(float(min_backoff + ti_hash % min_backoff), _MAX_RETRY_DELAY)
        if task.max_retry_delay:
            delay = min(task.max_retry_delay, delay)
    return delay


@dataclass(frozen=True, slots=True)
class Temporal:
    """A deferral the local run resolves: wait for ``moment``, then resume (or succeed)."""

    moment: datetime.datetime
    #: The resumed try's ``next_kwargs``: the deferral's own plus the trigger's ``event``.
    next_kwargs: dict[str, Any]
    #: The trigger itself ends the task successfully (``end_from_trigger=True``).
    end_from_trigger: bool


def temporal_moment(defer: DeferTask) -> Temporal | str:
    """The temporal deferral in ``defer``, or why this run cannot resolve it.

    The moment and the event are decoded by the authoring layer's own functions, the
    ones tested against airflow-core, so one piece of code reads a time trigger.
    """
    name = defer.classpath.rsplit(".", 1)[-1]
    if defer.classpath != TEMPORAL_TRIGGER:
        return f"trigger {name} cannot run locally"
    kwargs = defer.trigger_kwargs
    if not isinstance(kwargs, dict):
        return f"trigger {name}: its kwargs are not a mapping"
    moment = temporal_wait_moment(defer.classpath, kwargs)
    if not isinstance(moment, datetime.datetime):
        return f"trigger {name}: no aware moment in its kwargs ({kwargs!r})"
    event = temporal_wait_event(moment, defer.next_kwargs)
    return Temporal(moment, event, kwargs.get("end_from_trigger") is True)


def dag_run_state(plan: list[PlannedTask], states: Mapping[tuple[str, int], str]) -> str:
    """``success``, ``failed`` or ``running`` (something unfinished), from the leaves.

    As the scheduler decides: any task instance unfinished keeps the run running;
    otherwise the run failed if a leaf failed or is upstream_failed, and succeeded if
    every leaf is success or skipped.
    """
    if any(state not in FINISHED for state in states.values()):
        return "running"
    leaves = {t.task_id for t in plan if not t.downstream}
    leaf_states = [s for (tid, _i), s in states.items() if tid in leaves and s != "removed"]
    if any(s in ("failed", "upstream_failed") for s in leaf_states):
        return "failed"
    if all(s in ("success", "skipped") for s in leaf_states):
        return "success"
    return "running"


class MissingMapValues(Exception):
    """A mapped task's upstream finished without the values to count its instances
    (Airflow marks such a task ``upstream_failed``)."""


def _input_length(task: PlannedTask, value: Any, store: XComStore) -> int:
    """The length of one encoded expand input: a literal, or an upstream's output."""
    if isinstance(value, list):
        return len(value)
    if isinstance(value, dict) and value.get("__type") in ("dict", "tuple", "set"):
        return len(value.get("__var") or ())
    if isinstance(value, dict) and value.get("__type") == "xcomref":
        ref = value.get("__var") or {}
        upstream, key = str(ref.get("task_id")), str(ref.get("key") or "return_value")
        if upstream in task.mapped_upstream:
            # A mapped upstream's length is how many of its instances pushed the key.
            return sum(
                1
                for (_d, _r, task_id, index, name) in store.values
                if task_id == upstream and index >= 0 and name == key
            )
        length = store.mapped_lengths.get((upstream, -1))
        if length is None:
            raise MissingMapValues(f"upstream {upstream!r} pushed no value to map over")
        return length
    raise UsageError(
        f"task {task.task_id!r}: cannot read its expand input {value!r} (expected a list, "
        f"a dict or an upstream output)"
    )


def mapped_count(task: PlannedTask, xcom_store: XComStore) -> int | None:
    """How many task instances ``task`` expands into in this run; None: it is not mapped.

    Read as the scheduler does from the serialized expand input: literal inputs count
    their elements, an unmapped upstream's output the ``mapped_length`` it pushed, a mapped
    upstream's output the values its instances pushed; the count is
    :func:`~trio_coord.authoring.mapping.instance_count` of those lengths.

    Raises:
        MissingMapValues: an upstream the expansion reads left no value to count.
        UsageError: the document's expand input is not one trio-coord or Airflow writes.
    """
    doc = task.document
    if not doc.get("_is_mapped"):
        return None
    expand = doc.get(str(doc.get("_expand_input_attr") or EXPAND_INPUT_ATTR))
    if not isinstance(expand, dict):
        raise UsageError(f"task {task.task_id!r} is mapped but has no expand input")
    value = expand.get("value")
    if expand.get("type") == DICT_OF_LISTS:
        inputs = value.get("__var") if isinstance(value, dict) else None
        if not isinstance(inputs, dict):
            raise UsageError(f"task {task.task_id!r}: its expand input is not a dict")
        values = list(inputs.values())
    else:
        values = [value]
    return instance_count([_input_length(task, v, xcom_store) for v in values])
