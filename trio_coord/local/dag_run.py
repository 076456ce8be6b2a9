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
* :func:`mapped_count` -- how many instances a task expands into (the mapping hook).
"""

from __future__ import annotations

import datetime
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ..errors import UsageError
from ..protocol.messages import DeferTask
from .session import XComKey

__all__ = [
    "FINISHED",
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
TEMPORAL_TRIGGER: Final = "airflow.providers.standard.triggers.temporal.DateTimeTrigger"

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


#: The serde class names a moment may carry: defer_for/defer_until send pendulum's, as
#: Airflow's own temporal sensors do.
_SERDE_DATETIMES: Final = ("datetime.datetime", "pendulum.datetime.DateTime")


def _moment(value: Any) -> datetime.datetime | None:
    """An aware datetime from the forms a moment travels in; None if it is none of them."""
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo is not None else None
    if isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else None
    if isinstance(value, dict):
        if value.get("__type") == "datetime":  # BaseSerialization: {"__type", "__var": ts}
            stamp = value.get("__var")
        elif value.get("__classname__") in _SERDE_DATETIMES:  # serde
            data = value.get("__data__")
            stamp = data.get("timestamp") if isinstance(data, dict) else None
        else:
            return None
        if isinstance(stamp, int | float) and not isinstance(stamp, bool):
            return datetime.datetime.fromtimestamp(stamp, datetime.UTC)
    return None


@dataclass(frozen=True, slots=True)
class Temporal:
    """A deferral the local run resolves: wait for ``moment``, then resume (or succeed)."""

    moment: datetime.datetime
    #: The event the trigger yields, as it arrived in the trigger's kwargs.
    event: Any
    #: The trigger itself ends the task successfully (``end_from_trigger=True``).
    end_from_trigger: bool


def temporal_moment(defer: DeferTask) -> Temporal | str:
    """The temporal deferral in ``defer``, or why this run cannot resolve it."""
    name = defer.classpath.rsplit(".", 1)[-1]
    if defer.classpath != TEMPORAL_TRIGGER:
        return f"trigger {name} cannot run locally"
    kwargs = defer.trigger_kwargs
    if not isinstance(kwargs, dict):
        return f"trigger {name}: its kwargs are not a mapping"
    moment = _moment(kwargs.get("moment", kwargs.get("target_time")))
    if moment is None:
        return f"trigger {name}: no aware moment in its kwargs ({kwargs!r})"
    event = kwargs.get("moment", moment)
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


def mapped_count(task: PlannedTask, xcom_store: XComStore) -> int | None:
    """How many task instances ``task`` expands into in this run; None: it is not mapped.

    The default treats every task as unmapped. Dynamic task mapping replaces this hook
    (reading ``task.document`` for the expansion and ``xcom_store.mapped_lengths`` for
    the upstream lengths); the runner already runs each index and counts a zero-length
    expansion as skipped.
    """
    return None
