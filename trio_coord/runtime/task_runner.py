"""Running the one user task of a try, and choosing its terminal message.

The rules are protocol.md §6.2 and §9, mirrored from Airflow's native runner where
that is right for a foreign runtime:

============================================  =============================================
outcome                                       terminal message
============================================  =============================================
task not in the bundle                        ``TaskState(failed)``, no XCom touched: the
                                              DAG file and the bundle have drifted
returned (value pushed as ``return_value``)   ``SucceedTask`` with ``[]`` outlets (§5.7)
raised :class:`~trio_coord.SkipTask`          ``TaskState(skipped)``
raised :class:`~trio_coord.FailTask`          ``TaskState(failed)``, whatever the retries
raised :class:`~trio_coord.Defer`             ``DeferTask`` (:mod:`.deferral`)
raised :class:`~trio_coord.AwaitInput`, or    ``AwaitInputTask`` (:mod:`.hitl`)
a ``hitl`` task's first try
sensor not done, reschedule mode              ``RescheduleTask`` (:mod:`.sensors`)
raised anything else, or was cancelled        ``RetryTask`` if ``should_retry``, else
                                              ``TaskState(failed)`` (§9.3)
ran past ``execution_timeout``                as raising :class:`~trio_coord.TaskTimeout`
a retry policy answered FAIL / RETRY          ``TaskState(failed)`` / ``RetryTask`` with the
                                              policy's reason and delay (if ``should_retry``)
the run's conf fails a param's schema         ``TaskState(failed)``, nothing run, no retry
branch / short-circuit skipped tasks          ``SkipDownstreamTasks`` then ``SucceedTask``
                                              (see :mod:`.branching`)
============================================  =============================================

``should_retry`` is the server's decision (§9.3); we never second-guess it. The
``RetryTask`` carries no exception text, as with Airflow's native runner (which sends a
reason only from a retry policy): the API server stores ``retry_reason``, and an exception
message is where a task most easily puts a secret. Only a retry policy's reason and the
runtime's own reasons for cancelling a task (a signal, a lost supervisor) are sent;
``serve`` masks them. User
exceptions are caught *here*, in the task's own frame, so they never reach a nursery
and never become ExceptionGroups (STYLE.md practice 11).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import trio

from ..authoring import (
    AwaitInput,
    Defer,
    FailTask,
    RetryAction,
    RetryDecision,
    SkipTask,
    Task,
    TaskTimeout,
)
from ..authoring.params import ParamError
from ..client import Client, SyncClient
from ..context import TaskContext
from ..errors import LocalProtocolError, SupervisorGone, UsageError
from ..io.binding import bound_client
from ..protocol.connection import INLINE_CHECK_ITEMS
from ..protocol.fields import CheckIncomplete, check_json
from ..protocol.messages import (
    Request,
    RetryTask,
    SucceedTask,
    TaskState,
)
from . import deferral, hitl, sensors
from .arguments import call_arguments
from .assets import TaskAssets, inactive_assets
from .branching import after_return
from .event_loops import asyncio_hint, run_on_asyncio
from .mapping import MappedTry, MappingError, mapped_length
from .params import run_params
from .retries import decide_retry
from .timeouts import deadline, expired
from .trigger_dagrun import trigger_dagrun

__all__ = ["TaskOutcome", "run_task", "TASK_LOGGER"]

#: Logger name of the ``log`` a task receives (filterable with NAMESPACE_LEVELS).
TASK_LOGGER = "task"

log = logging.getLogger("trio_coord.runtime")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    """What the try ended with: the terminal message and a one-line reason for humans."""

    terminal: Request
    summary: str


def _failure(
    ctx: TaskContext,
    reason: str,
    *,
    retryable: bool = True,
    send_reason: bool = False,
    decision: RetryDecision | None = None,
) -> TaskOutcome:
    """The failed outcome; ``reason`` goes in ``RetryTask`` only with ``send_reason``.

    A retry policy's ``decision`` can fail the try now, or give the retry its reason and
    delay; it never retries a try the server has no retry left for.
    """
    if decision is not None and decision.action is RetryAction.FAIL:
        retryable = False
    if retryable and ctx.should_retry:
        sent = reason if send_reason else None
        delay = None
        if decision is not None and decision.action is RetryAction.RETRY:
            sent = decision.reason
            if decision.retry_delay is not None:
                delay = decision.retry_delay.total_seconds()
        retry = RetryTask(end_date=_now(), retry_reason=sent, retry_delay_seconds=delay)
        return TaskOutcome(retry, f"up_for_retry: {sent or reason}")
    return TaskOutcome(TaskState(state="failed", end_date=_now()), f"failed: {reason}")


async def run_task(
    task: Task | None,
    ctx: TaskContext,
    client: Client,
    *,
    scope: trio.CancelScope,
    cancel_reason: Callable[[], str | None],
    missing: str | None = None,
) -> TaskOutcome:
    """Run the task to an outcome; never raises for anything the user's code did.

    A mapped try's label goes on whatever terminal message the try ends with (§6.3).
    See :func:`_run_task` for the arguments.
    """
    mapped = MappedTry()
    outcome = await _run_task(
        task, ctx, client, mapped, scope=scope, cancel_reason=cancel_reason, missing=missing
    )
    return TaskOutcome(mapped.labelled(outcome.terminal), outcome.summary)


async def _run_task(
    task: Task | None,
    ctx: TaskContext,
    client: Client,
    mapped: MappedTry,
    *,
    scope: trio.CancelScope,
    cancel_reason: Callable[[], str | None],
    missing: str | None = None,
) -> TaskOutcome:
    """Run the task to an outcome; never raises for anything the user's code did.

    Args:
        task: the task, or None when the bundle has no such task.
        ctx: the try's context.
        client: the async client (a blocking twin is made for sync tasks).
        mapped: receives a mapped try's arguments and label.
        scope: the cancel scope the user's code runs in; SIGTERM and a lost supervisor
            cancel it (possibly before it is entered).
        cancel_reason: why the task was cancelled, when it was (SIGTERM, lost supervisor).
        missing: the log line that explains a ``None`` task (which bundle holds what).

    Raises:
        SupervisorGone: the comm channel broke; no terminal message can be sent.
    """
    if task is None:
        # A deployment error (the scheduler's DAG file and this bundle disagree) must be
        # visible: failing the try, not "removed", keeps the DAG run from succeeding.
        log.error("%s", missing or f"task {ctx.dag_id}.{ctx.task_id} is not in this bundle")
        return TaskOutcome(TaskState(state="failed", end_date=_now()), "failed: task not in bundle")

    # §9.2: stale XComs go before the body runs; if that fails, the body does not run.
    for key in ctx.ti_context.xcom_keys_to_clear or ():
        try:
            await client.delete_xcom(key)
        except SupervisorGone:
            raise
        except Exception as exc:
            log.error("could not clear XCom %r before running: %s", key, exc)
            return _failure(ctx, f"could not clear XCom {key!r}: {exc}")

    assets = TaskAssets(task, client)
    ctx = dataclasses.replace(ctx, assets=assets)
    try:
        problem = await inactive_assets(assets, client)
    except SupervisorGone:
        raise
    except Exception as exc:
        log.error("could not validate the task's inlets and outlets: %s", exc)
        return _failure(ctx, f"could not validate inlets and outlets: {exc}")
    if problem is not None:
        log.error("%s", problem)
        return _failure(ctx, problem)

    try:
        ctx = dataclasses.replace(ctx, params=run_params(task, ctx))
    except ParamError as exc:
        # The same conf fails every retry: fail now (Airflow refuses it at run creation).
        log.error("%s", exc)
        return _failure(ctx, str(exc), retryable=False)

    task_log = logging.getLogger(TASK_LOGGER)
    push_error: Exception | None = None
    try:
        with scope:
            with deadline(task) as limit:
                await trio.lowlevel.checkpoint_if_cancelled()  # a zero timeout runs nothing
                value = await _call(task, ctx, client, task_log, mapped)
                if task.kind == "trigger_dagrun":
                    await trigger_dagrun(task, client, value)
                    value = None  # the function's value was the conf; the operator returns nothing
                if task.kind == "hitl" and ctx.ti_context.next_method is None:
                    raise await hitl.ask(task, client, value)
            if limit.cancelled_caught:
                raise expired(task)
            # In the task's scope: SIGTERM during a long push (a large value) cancels it too.
            if not await after_return(task, ctx, client, value):
                push_error = await _push_result(task, client, value)
        if scope.cancelled_caught:
            reason = cancel_reason() or "the task was cancelled"
            log.error("task cancelled: %s", reason)
            return _failure(ctx, reason, send_reason=True)
    except deferral.PauseTry as pause:
        return TaskOutcome(pause.terminal, pause.summary)
    except SkipTask as exc:
        log.info("task skipped%s", f": {exc}" if str(exc) else "")
        return TaskOutcome(TaskState(state="skipped", end_date=_now()), "skipped")
    except FailTask as exc:
        log.error("task failed without retry: %s", exc, exc_info=True)
        return _failure(ctx, str(exc) or "FailTask", retryable=False)
    except SupervisorGone:
        raise
    except TaskTimeout as exc:
        log.error("%s", exc)
        return _failure(ctx, str(exc), decision=decide_retry(task, ctx, exc))
    except MappingError as exc:  # this try's element or label: no traceback to show
        log.error("task failed: %s", exc)
        return _failure(ctx, str(exc))
    except (Exception, SystemExit) as exc:  # the user's exception, whatever it is
        log.error("task failed: %s: %s", type(exc).__name__, exc, exc_info=exc)
        hint = asyncio_hint(exc, is_async=task.is_async and task.event_loop == "trio")
        if hint is not None:
            log.error("%s", hint)
        decision = decide_retry(task, ctx, exc)
        return _failure(ctx, f"{type(exc).__name__}: {exc}", decision=decision)

    if isinstance(push_error, MappingError):
        log.error("%s", push_error)
        return _failure(ctx, str(push_error))
    if isinstance(push_error, LocalProtocolError):
        log.error("the return value cannot be stored as an XCom: %s", push_error)
        return _failure(
            ctx,
            f"return value is not JSON-serialisable: {push_error}",
            decision=decide_retry(task, ctx, push_error),
        )
    if push_error is not None:
        log.error("pushing the return value failed: %s", push_error, exc_info=push_error)
        return _failure(
            ctx,
            f"pushing the return value failed: {push_error}",
            decision=decide_retry(task, ctx, push_error),
        )
    try:
        fields = assets.success_fields()
    except UsageError as exc:
        log.error("the outlet events cannot be sent: %s", exc)
        return _failure(ctx, f"outlet events: {exc}")
    return TaskOutcome(SucceedTask(end_date=_now(), **fields), "success")


async def _call(
    task: Task, ctx: TaskContext, client: Client, task_log: logging.Logger, mapped: MappedTry
) -> Any:
    """The try's body by task kind: a resumed method, a sensor's pokes, or the function."""
    try:
        if ctx.ti_context.next_method is not None:
            invoke = functools.partial(_invoke, task, ctx, client, task_log, (), {})
            if task.kind == "hitl":
                return await hitl.resume(task, ctx, client, invoke)
            return await deferral.resume(task, ctx, invoke)
        # TaskFlow: upstream outputs are pulled here, in the Trio task, whatever runs the body.
        args, bound = await call_arguments(task, client, {})
        # A mapped try: its element of each expanded input, and the partial arguments.
        bound = {**bound, **(await mapped.resolve(task, ctx, client))}
        invoke = functools.partial(_invoke, task, ctx, client, task_log, args, bound)
        if task.kind == "sensor":
            return await sensors.run_sensor(task, ctx, client, invoke)
        return await invoke(task.fn, task.inject, {})
    except Defer as defer:
        raise deferral.pause_for(defer) from None
    except AwaitInput as awaiting:
        raise hitl.pause_for_input(awaiting) from None
    except BaseExceptionGroup as group:  # Defer raised in a nursery of the task's
        raise deferral.pause_for_group(group) from None


async def _invoke(
    task: Task,
    ctx: TaskContext,
    client: Client,
    task_log: logging.Logger,
    args: tuple[Any, ...],
    bound: Mapping[str, Any],
    fn: Callable[..., Any],
    inject: tuple[str, ...],
    extra: Mapping[str, Any],
) -> Any:
    """Call ``fn`` (the task's function, or a resume method) with what it asks for.

    ``args``/``bound`` are the DAG's TaskFlow arguments, which only the task's own function
    takes; ``extra`` holds a resume method's event and keyword arguments.
    """
    if fn is not task.fn:
        args, bound = (), {}
    is_async = inspect.iscoroutinefunction(fn)
    if is_async and task.event_loop == "asyncio":
        return await run_on_asyncio(
            lambda aclient: fn(*args, **bound, **_inject(inject, ctx, aclient, task_log), **extra),
            client,
        )
    task_client = client if is_async else SyncClient(client)
    kwargs = {**bound, **_inject(inject, ctx, task_client, task_log)}
    kwargs.update(extra)
    with bound_client(task_client):  # for ObjectStoragePath made without client=
        if is_async:
            return await fn(*args, **kwargs)
        # abandon_on_cancel: a thread cannot be interrupted; on SIGTERM we report the
        # failure and exit while it is still running (worker threads are daemons).
        return await trio.to_thread.run_sync(
            functools.partial(fn, *args, **kwargs), abandon_on_cancel=True
        )


def _inject(
    inject: tuple[str, ...], ctx: TaskContext, client: Any, task_log: logging.Logger
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in inject:
        if name in ("context", "ctx"):
            values[name] = ctx
        elif name == "client":
            values[name] = client
        elif name in ("log", "logger"):
            values[name] = task_log
        else:
            values[name] = getattr(ctx, name)
    return values


async def _push_result(task: Task, client: Client, value: Any) -> Exception | None:
    """Push the return value as XComs; return what went wrong instead of raising it.

    Each ``SetXCom`` value is checked (a cycle, an item with no JSON form, a size over
    what one frame carries: ``check_json``) and encoded by the comm channel before it is
    sent, a large one in a worker thread: the Trio thread keeps handling SIGTERM, which
    abandons the work (the thread finishes on its own; nothing is sent). With
    ``multiple_outputs`` there are several values, and all are checked here before the
    first is sent, so a bad one sends nothing at all.

    Raises:
        SupervisorGone: the comm channel broke.
    """
    try:
        length = mapped_length(task, value)
    except MappingError as exc:
        return exc
    if value is None:
        return None
    pushes: list[tuple[str, Any]] = []
    if task.multiple_outputs:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            return LocalProtocolError(
                "multiple_outputs needs a dict with string keys as the return value"
            )
        pushes += value.items()
    pushes.append(("return_value", value))
    try:
        if len(pushes) > 1:
            try:
                _check_values(pushes, INLINE_CHECK_ITEMS)
            except CheckIncomplete:
                await trio.to_thread.run_sync(_check_values, pushes, None, abandon_on_cancel=True)
        for key, item in pushes:
            await client.set_xcom(
                key, item, mapped_length=length if key == "return_value" else None
            )
    except SupervisorGone:
        raise
    except Exception as exc:
        return exc
    return None


def _check_values(pushes: list[tuple[str, Any]], max_items: int | None) -> None:
    for key, item in pushes:
        check_json(item, f"XCom {key!r}", max_items)
