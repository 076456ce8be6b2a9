"""Running a ``trigger_dagrun`` task: what Airflow's runner does for a TriggerDagRunOperator.

1. ``TriggerDagRun`` with the run id (given, or ``manual__<run_after ISO>``, with a random
   suffix when there is no logical date, as Airflow generates it). With ``reset_dag_run``
   the API server clears an existing run instead of refusing it.
2. The run exists (``DAGRUN_ALREADY_EXISTS``): the try is skipped with
   ``skip_when_already_exists``, else failed without a retry, as the native runner does.
3. The run id is pushed as the ``trigger_run_id`` XCom.
4. With ``wait_for_completion``: ``GetDagRunState`` every ``poke_interval`` seconds until the
   run is in ``allowed_states`` (success) or ``failed_states`` (a failure, retried like any
   other). The wait runs in the task's cancel scope, so SIGTERM or a lost supervisor ends it.
   Deferring the wait to the triggerer is not supported.
"""

from __future__ import annotations

import datetime
import logging
import secrets
import string
from typing import Any

import trio

from ..authoring import FailTask, SkipTask, Task
from ..authoring.trigger_dagrun import NOW
from ..client import Client
from ..errors import AlreadyExists, UsageError

__all__ = ["TRIGGER_RUN_ID_KEY", "TriggeredRunFailed", "run_id_for", "trigger_dagrun"]

#: The XCom key the operator stores the triggered run's id under.
TRIGGER_RUN_ID_KEY = "trigger_run_id"

log = logging.getLogger("trio_coord.runtime")


class TriggeredRunFailed(Exception):
    """The triggered run ended in one of ``failed_states``."""


def run_id_for(logical_date: datetime.datetime | None, now: datetime.datetime) -> str:
    """Airflow's manual run id: ``manual__<run_after>``, plus a random suffix without a date."""
    if logical_date is not None:
        return f"manual__{logical_date.isoformat()}"
    alphabet = string.ascii_letters + string.digits
    suffix = "".join(secrets.choice(alphabet) for _ in range(8))
    return f"manual__{now.isoformat()}_{suffix}"


async def trigger_dagrun(task: Task, client: Client, returned: Any) -> None:
    """Trigger, push ``trigger_run_id``, and wait if asked; raise to end the try otherwise.

    Args:
        returned: what the task's function returned: a dict replaces the declared conf.

    Raises:
        SkipTask: the run exists and ``skip_when_already_exists`` is set.
        FailTask: the run exists (and no reset was asked).
        TriggeredRunFailed: the run ended in a failed state.
        UsageError: the function returned something that is not a conf.
    """
    opts = task.kind_options
    conf = opts["conf"]
    if returned is not None:
        if not isinstance(returned, dict):
            raise UsageError(
                f"a trigger_dagrun task returns the run's conf (a dict) or None, "
                f"got {type(returned).__name__}"
            )
        conf = returned
    now = datetime.datetime.now(datetime.UTC)
    logical_date = now if opts["logical_date"] is NOW else opts["logical_date"]
    dag_id = opts["trigger_dag_id"]
    run_id = opts["trigger_run_id"] or run_id_for(logical_date, now)
    log.info("triggering a run of %s (run id %s)", dag_id, run_id)
    try:
        await client.trigger_dagrun(
            dag_id,
            run_id,
            conf=conf,
            logical_date=logical_date,
            reset_dag_run=opts["reset_dag_run"],
            note=opts["note"],
        )
    except AlreadyExists:
        if opts["skip_when_already_exists"]:
            raise SkipTask(f"a run {run_id} of {dag_id} exists already") from None
        raise FailTask(f"a run {run_id} of {dag_id} exists already") from None
    log.info("triggered run %s of %s", run_id, dag_id)
    await client.set_xcom(TRIGGER_RUN_ID_KEY, run_id)
    if not opts["wait_for_completion"]:
        return
    allowed, failed = opts["allowed_states"], opts["failed_states"]
    while True:
        log.info("waiting for run %s of %s to reach %s", run_id, dag_id, allowed)
        await trio.sleep(opts["poke_interval"])
        state = await client.get_dagrun_state(dag_id, run_id)
        if state in failed:
            raise TriggeredRunFailed(f"{dag_id} run {run_id} ended in failed state {state!r}")
        if state in allowed:
            log.info("run %s of %s ended in allowed state %r", run_id, dag_id, state)
            return
