"""DAGs for whole-DAG local runs (``tests/test_local_dag_run.py``)."""

from __future__ import annotations

import datetime
import os

import trio_coord
from trio_coord.protocol import serde
from trio_coord.protocol.messages import DeferTask, RescheduleTask, SkipDownstreamTasks

bundle = trio_coord.Bundle("local_dag", version="1.0.0")
TEMPORAL = "airflow.providers.standard.triggers.temporal.DateTimeTrigger"


def _soon(seconds: float) -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)


# -- ordering and XComs ------------------------------------------------------------------

flow = bundle.dag("flow")


@flow.task
async def load(client, log):
    total = await client.get_xcom("return_value", task_id="transform")
    log.info("load got %s", total)
    return {"loaded": total}


@flow.task
def transform(client, log):
    rows = client.get_xcom("return_value", task_id="extract")
    log.info("transform got %s", rows)
    client.set_xcom("count", len(rows))
    return sum(rows)


@flow.task
async def extract(log):
    return [1, 2, 3]


# Declared first, run last: the order comes from the edges.
extract >> transform >> load

# -- SkipDownstreamTasks and skip propagation --------------------------------------------

branchy = bundle.dag("branchy")


@branchy.task
async def choose(client, ti):
    await client.request(SkipDownstreamTasks(tasks=["left"]))
    return "right"


@branchy.task
async def left():
    return "left ran"


@branchy.task
async def after_left():
    return "after_left ran"


@branchy.task
async def right():
    return "right ran"


@branchy.task(trigger_rule="none_failed_min_one_success")
async def join():
    return "joined"


choose >> [left, right]
left >> after_left
[after_left, right] >> join

# -- retries -----------------------------------------------------------------------------

retrying = bundle.dag("retrying")


@retrying.task(retries=2, retry_delay=datetime.timedelta(seconds=0))
def flaky(try_number, log):
    if try_number < 2:
        raise RuntimeError(f"flaky fails on try {try_number}")
    log.info("flaky works on try %s", try_number)
    return try_number


# -- failure, upstream_failed, all_done ----------------------------------------------------

failing = bundle.dag("failing")


@failing.task
async def boom():
    raise ValueError("boom on purpose")


@failing.task
async def after_boom():
    return "never"


@failing.task(trigger_rule="all_done")
async def cleanup():
    return "cleaned"


boom >> after_boom
boom >> cleanup

# -- reschedule and deferral (a runtime that sends these terminals, simulated by hand) ------

resched = bundle.dag("resched")


@resched.task
def poke(client, context, log):
    count = context.ti_context.task_reschedule_count or 0
    if count == 0:
        client.request(RescheduleTask(reschedule_date=_soon(0.3), end_date=_soon(0)))
        os._exit(0)  # the terminal message is sent: end the try as a runtime would
    first = client.get_first_reschedule_date()
    log.info("poke rescheduled %s time(s), first at %s", count, first)
    return {"count": count, "first": first.isoformat() if first else None}


deferring = bundle.dag("deferring")


def _defer_then_resume(client, context, seconds):
    if context.ti_context.next_method is None:
        client.request(
            DeferTask(
                classpath=TEMPORAL,
                trigger_kwargs={
                    "moment": serde.encode_datetime(_soon(seconds)),
                    "end_from_trigger": False,
                },
                next_method="execute_complete",
                next_kwargs={"carried": 1},
            )
        )
        os._exit(0)
    return "resumed"


@deferring.task
def waits(client, context):
    return _defer_then_resume(client, context, 0.3)


deferring_long = bundle.dag("deferring_long")


@deferring_long.task
def waits_an_hour(client, context):
    return _defer_then_resume(client, context, 3600)


foreign = bundle.dag("foreign")


@foreign.task
def waits_for_s3(client):
    client.request(
        DeferTask(
            classpath="airflow.providers.amazon.aws.triggers.s3.S3KeyTrigger",
            trigger_kwargs={"bucket_name": "b"},
            next_method="execute_complete",
        )
    )
    os._exit(0)


@foreign.task
def after_s3():
    return "never"


waits_for_s3 >> after_s3
