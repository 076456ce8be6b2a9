"""Deferring a task: give the worker slot back until an Airflow trigger fires.

A task defers by raising :class:`Defer` (Airflow's ``TaskDeferred``, with the same
fields). The trigger is a :class:`Trigger`: a class path the Airflow *triggerer* imports
and the keyword arguments it builds it with. trio-coord never imports the trigger class:
it only describes it, so any trigger installed next to the triggerer works.

When the trigger fires, Airflow starts a new try that *resumes* the task: instead of the
task's function, the runtime calls the function registered for ``method_name`` with
:meth:`Task.resume <trio_coord.Task.resume>`, passing the trigger's payload as ``event``,
the ``kwargs`` of the :class:`Defer`, and any injected parameter it names.

Ready temporal waits need no trigger at all: ``raise defer_for(timedelta(minutes=5))``
or ``raise defer_until(moment)`` use the standard provider's ``DateTimeTrigger`` (the
class path and keyword arguments Airflow's own ``TimeDeltaSensorAsync`` and
``DateTimeSensorAsync`` send; :data:`DATETIME_TRIGGER`); when no function is registered
for their method (:data:`WAIT_DONE`), the resumed try simply succeeds.
"""

from __future__ import annotations

import datetime
import inspect
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from ..errors import UsageError

if TYPE_CHECKING:
    from .tasks import Task

__all__ = [
    "DATETIME_TRIGGER",
    "TRIGGER_FAIL",
    "WAIT_DONE",
    "Defer",
    "Trigger",
    "defer_for",
    "defer_until",
    "register_resume",
    "temporal_wait_event",
    "temporal_wait_moment",
]

#: The standard provider's time trigger: fires once, at ``moment`` (UTC).
DATETIME_TRIGGER: Final = "airflow.providers.standard.triggers.temporal.DateTimeTrigger"
#: The method name of :func:`defer_for` and :func:`defer_until` when none is given; with
#: no function registered for it, the resumed try succeeds without pushing an XCom.
WAIT_DONE: Final = "trio_coord_wait_done"
#: The ``next_method`` Airflow sends when the trigger failed or timed out.
TRIGGER_FAIL: Final = "__fail__"

_CLASSPATH_RE: Final = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")
_METHOD_RE: Final = re.compile(r"^[A-Za-z_]\w*$")


@dataclass(frozen=True)
class Trigger:
    """A trigger for Airflow's triggerer: its class path and constructor keyword arguments.

    ``kwargs`` are encoded with Airflow's serde (JSON values, tuples, sets, datetimes,
    dates and timedeltas), exactly what the trigger's own ``serialize()`` would give.
    """

    classpath: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.classpath, str) or not _CLASSPATH_RE.match(self.classpath):
            raise UsageError(
                f"Trigger classpath must be a dotted 'package.module.Class' path, "
                f"got {self.classpath!r}"
            )
        if not isinstance(self.kwargs, Mapping) or not all(isinstance(k, str) for k in self.kwargs):
            raise UsageError("Trigger kwargs must be a mapping with string keys")


def _timeout_seconds(timeout: Any) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, datetime.timedelta):
        seconds = timeout.total_seconds()
    elif isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        seconds = float(timeout)
    else:
        seconds = -1.0
    if not math.isfinite(seconds) or seconds <= 0:
        raise UsageError(
            f"Defer timeout must be a positive timedelta or number of seconds, or None; "
            f"got {timeout!r}"
        )
    return seconds


class Defer(BaseException):
    """Raise to defer the task to ``trigger`` (Airflow's ``TaskDeferred``).

    A ``BaseException``, as in Airflow, so an ``except Exception`` in the task cannot
    swallow it.

    Args:
        trigger: what the triggerer runs.
        method_name: the resume function's name (see :meth:`Task.resume`).
        kwargs: more keyword arguments for the resume function (serde-encoded).
        timeout: give up after this long (a timedelta or seconds): the resumed try then
            fails with the trigger's timeout.
    """

    def __init__(
        self,
        *,
        trigger: Trigger,
        method_name: str,
        kwargs: Mapping[str, Any] | None = None,
        timeout: datetime.timedelta | float | None = None,
    ) -> None:
        if not isinstance(trigger, Trigger):
            raise UsageError(
                f"Defer(trigger=...) takes a trio_coord.Trigger, got {type(trigger).__name__}"
            )
        if not isinstance(method_name, str) or not _METHOD_RE.match(method_name):
            raise UsageError(f"Defer method_name must be a Python identifier, got {method_name!r}")
        if method_name == TRIGGER_FAIL:
            raise UsageError(f"Defer method_name {TRIGGER_FAIL!r} is reserved by Airflow")
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise UsageError("Defer kwargs must be a mapping or None")
        super().__init__(trigger, method_name)
        self.trigger = trigger
        self.method_name = method_name
        self.kwargs: dict[str, Any] = dict(kwargs or {})
        self.timeout = _timeout_seconds(timeout)

    def __repr__(self) -> str:
        return f"<Defer trigger={self.trigger.classpath} method={self.method_name}>"

    def __str__(self) -> str:
        return f"deferred to {self.trigger.classpath}, resuming in {self.method_name!r}"


def _utc(moment: datetime.datetime) -> datetime.datetime:
    if not isinstance(moment, datetime.datetime):
        raise UsageError(f"defer_until takes a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise UsageError(
            f"defer_until needs an aware datetime (with a time zone), got naive {moment!r}"
        )
    return moment.astimezone(datetime.UTC)


def defer_until(
    moment: datetime.datetime,
    *,
    method_name: str = WAIT_DONE,
    kwargs: Mapping[str, Any] | None = None,
    timeout: datetime.timedelta | float | None = None,
    end_from_trigger: bool = False,
) -> Defer:
    """A :class:`Defer` that resumes the task at ``moment`` (an aware datetime).

    The trigger is Airflow's ``DateTimeTrigger`` with ``moment`` in UTC and
    ``end_from_trigger``; with ``end_from_trigger=True`` the triggerer marks the task
    successful itself and no resumed try runs.
    """
    if not isinstance(end_from_trigger, bool):
        raise UsageError(f"end_from_trigger must be True or False, got {end_from_trigger!r}")
    trigger = Trigger(
        DATETIME_TRIGGER, {"moment": _utc(moment), "end_from_trigger": end_from_trigger}
    )
    return Defer(trigger=trigger, method_name=method_name, kwargs=kwargs, timeout=timeout)


def defer_for(
    delta: datetime.timedelta | float,
    *,
    method_name: str = WAIT_DONE,
    kwargs: Mapping[str, Any] | None = None,
    timeout: datetime.timedelta | float | None = None,
    end_from_trigger: bool = False,
    now: datetime.datetime | None = None,
) -> Defer:
    """A :class:`Defer` that resumes the task ``delta`` from now (a timedelta or seconds).

    As with Airflow's ``TimeDeltaTrigger``, the wait becomes a ``DateTimeTrigger`` at
    now + ``delta``: the moment is fixed when the task defers.
    """
    if isinstance(delta, (int, float)) and not isinstance(delta, bool):
        if not math.isfinite(delta):
            raise UsageError(f"defer_for takes a finite delay, got {delta!r}")
        delta = datetime.timedelta(seconds=delta)
    if not isinstance(delta, datetime.timedelta):
        raise UsageError(
            f"defer_for takes a timedelta or a number of seconds, got {type(delta).__name__}"
        )
    start = now if now is not None else datetime.datetime.now(datetime.UTC)
    return defer_until(
        start + delta,
        method_name=method_name,
        kwargs=kwargs,
        timeout=timeout,
        end_from_trigger=end_from_trigger,
    )


def register_resume(task: Task, method_name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """Record ``fn`` as the function resuming ``task`` after a deferral to ``method_name``."""
    where = f"task {task.dag.dag_id}.{task.task_id}"
    if not isinstance(method_name, str) or not _METHOD_RE.match(method_name):
        raise UsageError(f"{where}: resume method name must be an identifier, got {method_name!r}")
    if method_name == TRIGGER_FAIL:
        raise UsageError(f"{where}: {TRIGGER_FAIL!r} is reserved: a failed trigger fails the task")
    if not callable(fn):
        raise UsageError(f"{where}: @task.resume({method_name!r}) decorates a function")
    if method_name in task.resumers:
        raise UsageError(f"{where}: a function already resumes {method_name!r}")
    try:
        inspect.signature(fn)  # a callable with no signature fails here, not at resume
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{where}: cannot read the parameters of {fn!r}: {exc}") from None
    task.resumers[method_name] = fn
    return fn


def temporal_wait_moment(classpath: str, trigger_kwargs: Mapping[str, Any] | str) -> Any:
    """When a ``DeferTask`` for the standard time trigger fires (an aware UTC datetime), or
    None for any other trigger: what a local runner needs to play the triggerer's part
    for :func:`defer_for` and :func:`defer_until` (and Airflow's own temporal sensors)."""
    from ..protocol import serde

    if classpath != DATETIME_TRIGGER or not isinstance(trigger_kwargs, Mapping):
        return None
    moment = serde.decode(dict(trigger_kwargs)).get("moment")
    return moment if isinstance(moment, datetime.datetime) and moment.tzinfo else None


def temporal_wait_event(
    moment: datetime.datetime, next_kwargs: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The ``next_kwargs`` Airflow stores when the time trigger fires at ``moment``: the
    deferral's own kwargs (as sent) plus ``event``, the moment as a pendulum UTC datetime."""
    from ..protocol import serde

    event = serde.encode_datetime(
        moment.astimezone(datetime.UTC),
        classname="pendulum.datetime.DateTime",
        zone_class=serde.PENDULUM_ZONE,
    )
    return {**dict(next_kwargs or {}), "event": event}
