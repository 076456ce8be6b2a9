"""Deferral at run time: ``Defer`` becomes ``DeferTask``; a resumed try calls its method.

Sending (protocol.md §9.7): the task raised :class:`~trio_coord.Defer`. The trigger's
keyword arguments and the resume kwargs are serde-encoded (:mod:`..protocol.serde`), as
Airflow's task runner does, because the API server stores ``trigger_kwargs`` as the
trigger row's JSON verbatim and the triggerer decodes it with serde before building the
trigger. ``trigger_timeout`` is float seconds; ``queue`` stays unset (the native runner
sets it only with ``[triggerer] queues_enabled``, a deployment choice a foreign runtime
cannot see).

Resuming: ``ti_context.next_method`` names the method, ``next_kwargs`` (serde) holds the
trigger's payload as ``event`` plus the ``Defer``'s kwargs. ``__fail__`` means the
trigger failed or timed out: the traceback Airflow captured goes to the task log and the
try fails, retryable like any error except for a sensor, where a trigger *timeout* is
the sensor's timeout (no retry) and ``soft_fail`` skips. An unknown method name is a
bundle that no longer matches the deferred try: it fails without retry, saying which
names the task does register.
"""

from __future__ import annotations

import datetime
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..authoring import FailTask, SkipTask, Task
from ..authoring.deferral import DATETIME_TRIGGER, TRIGGER_FAIL, WAIT_DONE, Defer
from ..authoring.sensors import SensorTimeout, sensor_options
from ..authoring.tasks import INJECTABLE
from ..context import TaskContext
from ..errors import CoordError, UsageError
from ..protocol import serde
from ..protocol.messages import DeferTask, Request

__all__ = [
    "DeferralTimeout",
    "Invoke",
    "PauseTry",
    "TriggerFailed",
    "defer_message",
    "next_kwargs",
    "pause_for",
    "pause_for_group",
    "resume",
]

log = logging.getLogger("trio_coord.runtime")

#: Calls a task-side function: ``(fn, injected parameter names, extra kwargs)``; the
#: task runner supplies it (sync functions in a worker thread, with the blocking client).
Invoke = Callable[[Callable[..., Any], tuple[str, ...], Mapping[str, Any]], Awaitable[Any]]

#: ``next_kwargs["error"]`` when the trigger timed out (Airflow's TriggerFailureReason).
TRIGGER_TIMEOUT_REASON = "Trigger timeout"


class PauseTry(Exception):
    """The try ends without a result and the task instance waits: deferred, or up for
    reschedule. Carries the terminal message; the task runner sends it."""

    def __init__(self, terminal: Request, summary: str) -> None:
        super().__init__(summary)
        self.terminal = terminal
        self.summary = summary


class TriggerFailed(Exception):
    """The trigger the task deferred to failed (Airflow's ``TaskDeferralError``)."""


class DeferralTimeout(TriggerFailed):
    """The deferral outlived its ``timeout`` (Airflow's ``TaskDeferralTimeout``)."""


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _trigger_kwargs(defer: Defer) -> dict[str, Any]:
    kwargs = dict(defer.trigger.kwargs)
    moment = kwargs.get("moment")
    if defer.trigger.classpath == DATETIME_TRIGGER and isinstance(moment, datetime.datetime):
        # DateTimeTrigger.serialize() gives its moment as a pendulum DateTime in UTC.
        encoded = serde.encode({k: v for k, v in kwargs.items() if k != "moment"}, "trigger")
        utc = moment.astimezone(datetime.UTC)
        return {
            "moment": serde.encode_datetime(
                utc, classname="pendulum.datetime.DateTime", zone_class=serde.PENDULUM_ZONE
            ),
            **encoded,
        }
    encoded_all: dict[str, Any] = serde.encode(kwargs, "trigger kwargs")
    return encoded_all


def defer_message(defer: Defer) -> DeferTask:
    """The ``DeferTask`` for ``defer``.

    Raises:
        FailTask: a trigger or resume kwarg Airflow's encoding cannot carry, or a timeout
            the protocol cannot carry (retrying would fail the same way).
    """
    try:
        return DeferTask(
            classpath=defer.trigger.classpath,
            trigger_kwargs=_trigger_kwargs(defer),
            trigger_timeout=defer.timeout,
            next_method=defer.method_name,
            next_kwargs=serde.encode(defer.kwargs, "Defer kwargs"),
        )
    except (UsageError, CoordError) as exc:
        raise FailTask(f"cannot defer: {exc}") from None


def pause_for(defer: Defer) -> PauseTry:
    """The end of a try that deferred."""
    msg = defer_message(defer)
    log.info(
        "Pausing task as DEFERRED: trigger %s, resuming in %r%s",
        msg.classpath,
        msg.next_method,
        "" if msg.trigger_timeout is None else f", timeout {msg.trigger_timeout:g} s",
    )
    return PauseTry(msg, f"deferred: {msg.classpath} -> {msg.next_method}")


def pause_for_group(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """What ends a try whose task raised an exception group (a nursery's).

    Only deferrals (or ``AwaitInput``): the try pauses for the first. Nothing deferred: the
    group itself, as before. Both: the pause cannot be honoured alongside an error, so the
    try fails.
    """
    from ..authoring.hitl import AwaitInput

    deferred, rest = group.split((Defer, AwaitInput))
    if deferred is None:
        return group
    first = _leaves(deferred)[0]
    if rest is None and isinstance(first, Defer):
        return pause_for(first)
    if rest is None and isinstance(first, AwaitInput):
        from .hitl import pause_for_input

        return pause_for_input(first)
    return RuntimeError(f"the task raised Defer together with other exceptions: {rest!r}")


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


def next_kwargs(ctx: TaskContext) -> dict[str, Any]:
    """The resumed try's ``next_kwargs``, serde-decoded."""
    raw = ctx.ti_context.next_kwargs
    if isinstance(raw, str):
        raise FailTask("next_kwargs arrived as an encrypted string, which this runtime cannot read")
    decoded = serde.decode(raw or {})
    if not isinstance(decoded, dict):
        raise FailTask(f"next_kwargs is not a map: {type(decoded).__name__}")
    return decoded


def _trigger_failed(task: Task, kwargs: Mapping[str, Any]) -> Exception:
    """Log what Airflow captured of the trigger's failure; the exception to end the try with."""
    lines = kwargs.get("traceback")
    if isinstance(lines, (list, tuple)) and lines:
        text = "".join(str(line) if str(line).endswith("\n") else f"{line}\n" for line in lines)
        log.error("Trigger failed:\n%s", text.rstrip("\n"))
    error = str(kwargs.get("error") or "Unknown")
    timed_out = error == TRIGGER_TIMEOUT_REASON
    log.error("resumed after the trigger %s: %s", "timed out" if timed_out else "failed", error)
    if task.kind == "sensor":
        if sensor_options(task).soft_fail:
            return SkipTask("Skipping due to soft_fail is set to True.")
        if timed_out:
            return SensorTimeout(error)
    return DeferralTimeout(error) if timed_out else TriggerFailed(error)


def _bind(
    task: Task, method: str, fn: Callable[..., Any], kwargs: Mapping[str, Any]
) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Which parameters of ``fn`` are injected and which come from ``next_kwargs``."""
    inject: list[str] = []
    extra: dict[str, Any] = {}
    rest = dict(kwargs)
    var_keyword = False
    for p in inspect.signature(fn).parameters.values():
        if p.kind is p.VAR_KEYWORD:
            var_keyword = True
        elif p.kind is p.VAR_POSITIONAL:
            continue
        elif p.name in INJECTABLE:
            inject.append(p.name)
        elif p.name in rest:
            extra[p.name] = rest.pop(p.name)
        elif p.default is p.empty:
            given = ", ".join(sorted(kwargs)) or "none"
            raise FailTask(
                f"cannot resume {task.task_id!r} in {method!r}: parameter {p.name!r} is "
                f"neither in the resume kwargs ({given}) nor one the runtime provides"
            )
    if var_keyword:
        extra.update({k: v for k, v in rest.items() if k not in inject})
    return tuple(inject), extra


async def resume(task: Task, ctx: TaskContext, invoke: Invoke) -> Any:
    """Run the resumed try: the registered method, or the end of a ready temporal wait.

    Raises:
        FailTask, SkipTask, TriggerFailed: the try ends that way (see the module doc).
    """
    method = ctx.ti_context.next_method or ""
    kwargs = next_kwargs(ctx)
    if method == TRIGGER_FAIL:
        raise _trigger_failed(task, kwargs)
    fn = task.resumers.get(method)
    if fn is None:
        if method == WAIT_DONE:
            log.info("the wait is over (event %r); the task succeeds", kwargs.get("event"))
            return None
        known = ", ".join(repr(m) for m in task.resumers) or "none"
        raise FailTask(
            f"cannot resume {task.task_id!r}: no function is registered for method "
            f"{method!r} (registered with @task.resume: {known})"
        )
    inject, extra = _bind(task, method, fn, kwargs)
    log.info("resuming in %r", method)
    return await invoke(fn, inject, extra)
