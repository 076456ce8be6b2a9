"""Running a sensor: poke until done, sleeping in the try or rescheduling it.

The semantics are Airflow's ``BaseSensorOperator.execute``, so a sensor means the same
thing whichever runtime runs it:

* poke; done (truthy, or ``PokeReturnValue.is_done``) -> the task succeeds, pushing the
  ``xcom_value`` of a ``PokeReturnValue`` as ``return_value``;
* not done and the run has lasted longer than ``timeout`` -> :class:`SensorTimeout`
  (fails without a retry), or a skip with ``soft_fail``;
* not done, ``poke`` mode -> sleep the next interval and poke again; the sleep is a
  ``trio.sleep`` inside the task's cancel scope, so SIGTERM or a lost supervisor ends it
  at once;
* not done, ``reschedule`` mode -> the try ends with ``RescheduleTask`` at now + the next
  interval, and Airflow starts a new try then. The run's duration counts from the first
  try's start: the supervisor's ``GetTaskRescheduleStartDate`` (asked only when
  ``ti_context.task_reschedule_count`` says there was a reschedule, for the try number
  where this sequence of tries began, as Airflow computes it).

The poke's exceptions: ``FailTask``/``SensorTimeout`` skip with ``soft_fail``;
``SkipTask`` skips; any other error fails the try (retryable), unless ``silent_fail``,
which logs it and counts the poke as not done. The interval with ``exponential_backoff``
is Airflow's formula, jitter included (a hash of the DAG id, task id, start and poke
count), capped by ``timeout`` and ``max_wait``.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

import trio

from ..authoring import FailTask, SkipTask, Task
from ..authoring.sensors import PokeReturnValue, SensorOptions, SensorTimeout, sensor_options
from ..client import Client
from ..context import TaskContext
from ..protocol.messages import RescheduleTask
from .deferral import Invoke, PauseTry

__all__ = ["next_poke_interval", "run_sensor"]

log = logging.getLogger("trio_coord.runtime")

#: Python's largest timedelta in seconds, less one: Airflow's cap on a backoff interval.
_MAX_INTERVAL = datetime.timedelta.max.total_seconds() - 1


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _jittered(dag_id: str, task_id: str, started_at: Any, poke_interval: float, count: int) -> int:
    """Airflow's backoff step for poke ``count``: at least 1 s, hash-jittered up to twice."""
    min_backoff = max(int(poke_interval * (2 ** (count - 2))), 1)
    digest = hashlib.sha1(
        f"{dag_id}#{task_id}#{started_at}#{count}".encode(), usedforsecurity=False
    ).hexdigest()
    return min_backoff + int(digest, 16) % min_backoff


def next_poke_interval(
    opts: SensorOptions,
    *,
    dag_id: str,
    task_id: str,
    started_at: Any,
    run_duration: float,
    poke_count: int,
) -> float:
    """Seconds until the next poke, as ``BaseSensorOperator._get_next_poke_interval``."""
    if not opts.exponential_backoff:
        return opts.poke_interval
    if opts.reschedule:
        # A new try does not know how many pokes came before: estimate it from the time
        # elapsed, walking the same jittered intervals.
        cumulative = 0.0
        estimated = 0
        while cumulative <= run_duration:
            estimated += 1
            jitter = _jittered(dag_id, task_id, started_at, opts.poke_interval, estimated)
            cumulative += min(jitter, _MAX_INTERVAL)
        poke_count = estimated or poke_count
    step: float = min(
        _jittered(dag_id, task_id, started_at, opts.poke_interval, poke_count), _MAX_INTERVAL
    )
    interval = min(opts.timeout - int(run_duration), step)
    if opts.max_wait:
        interval = min(opts.max_wait, interval)
    return float(interval)


async def _first_start(task: Task, ctx: TaskContext, client: Client) -> datetime.datetime | None:
    """When the first try of this reschedule sequence started, or None for the first try."""
    if not ctx.ti_context.task_reschedule_count:
        return None
    retries = task.option("retries")
    first_try = ctx.ti_context.max_tries - (retries if isinstance(retries, int) else 0) + 1
    return await client.get_first_reschedule_date(try_number=max(first_try, 1))


async def _poke(opts: SensorOptions, task: Task, invoke: Invoke) -> Any:
    try:
        return await invoke(task.fn, task.inject, {})
    except FailTask as exc:  # SensorTimeout included
        if opts.soft_fail:
            raise SkipTask("Skipping due to soft_fail is set to True.") from exc
        raise
    except SkipTask:
        raise
    except Exception:
        if not opts.silent_fail:
            raise
        log.error("Sensor poke failed (silent_fail: poking again)", exc_info=True)
        return False


async def run_sensor(task: Task, ctx: TaskContext, client: Client, invoke: Invoke) -> Any:
    """Poke ``task`` to the end of this try; return the XCom value to push when done.

    Raises:
        SensorTimeout, SkipTask: the sensor timed out (``soft_fail``: skipped).
        PauseTry: reschedule mode, not done yet.
    """
    opts = sensor_options(task)
    started_at: Any
    run_duration: Callable[[], float]
    if opts.reschedule:
        start = await _first_start(task, ctx, client) or _now()
        started_at = start

        def run_duration() -> float:
            return (_now() - start).total_seconds()

    else:
        started_at = start_monotonic = time.monotonic()

        def run_duration() -> float:
            return time.monotonic() - start_monotonic

    poke_count = 1
    while True:
        result = await _poke(opts, task, invoke)
        if result:
            log.info("Success criteria met. Exiting.")
            return result.xcom_value if isinstance(result, PokeReturnValue) else None
        elapsed = run_duration()
        if elapsed > opts.timeout:
            message = (
                f"Sensor has timed out; run duration of {elapsed} seconds exceeds the "
                f"specified timeout of {opts.timeout}."
            )
            if opts.soft_fail:
                raise SkipTask(message)
            raise SensorTimeout(message)
        interval = next_poke_interval(
            opts,
            dag_id=ctx.dag_id,
            task_id=ctx.task_id,
            started_at=started_at,
            run_duration=elapsed,
            poke_count=poke_count,
        )
        if opts.reschedule:
            when = _now() + datetime.timedelta(seconds=interval)
            log.info("Rescheduling task, marking task as UP_FOR_RESCHEDULE at %s", when.isoformat())
            raise PauseTry(
                RescheduleTask(reschedule_date=when, end_date=_now()),
                f"up_for_reschedule: next poke at {when.isoformat()}",
            )
        log.info("poke %d not done; next in %g s", poke_count, interval)
        await trio.sleep(max(interval, 0.0))
        poke_count += 1
