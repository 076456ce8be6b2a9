"""Tasks that the real-supervisor tests run through ``trio-coord serve``."""

from __future__ import annotations

import os
import signal
import time

import trio

import trio_coord

bundle = trio_coord.Bundle("supervised", version="1.0.0")
d1 = bundle.dag("d1", retries=1)


@d1.task
async def ok(client, log, run_id):
    log.info("ok running in %s", run_id)
    return {"answer": 42, "run_id": run_id, "items": [1, "two", None]}


@d1.task
async def boom(log):
    raise ValueError("boom on purpose")


@d1.task
def boom_sync():
    raise RuntimeError("sync boom on purpose")


@d1.task
def skip_me():
    raise trio_coord.SkipTask("nothing to do today")


@d1.task
async def secrets(client, log):
    password_var = await client.get_variable("db_password")
    conn = await client.get_connection("warehouse")
    token = await client.get_variable("api_token")  # from AIRFLOW_VAR_API_TOKEN
    log.info("variable secret is %s", password_var)
    log.info("connection password is %s and host %s", conn.password, conn.host)
    log.info("env token is %s", token)
    missing = await client.get_variable("does_not_exist", default="fallback-value")
    log.info("missing variable gave %s", missing)
    return {"host": conn.host, "login": conn.login}


@d1.task
def secrets_sync(client, log):
    value = client.get_variable("db_password")
    log.info("sync variable secret is %s", value)
    client.set_variable("written_by_task", "fresh-value")
    return len(value)


@d1.task
async def many_logs(log):
    for i in range(1000):
        log.info("line %04d", i)


@d1.task
async def long_async(log):
    log.info("sleeping for a long time")
    await trio.sleep(120)


@d1.task
def long_sync(log):
    log.info("sleeping in a thread for a long time")
    time.sleep(120)


@d1.task
async def xcom_roundtrip(client, log):
    upstream = await client.get_xcom(task_id="ok")
    missing = await client.get_xcom("nope", task_id="ok", default="absent")
    await client.set_xcom("extra_key", {"seen": upstream})
    log.info("upstream=%s missing=%s", upstream, missing)
    return "done"


@d1.task
async def cyclic_return(log):
    value = [1, {"again": []}]
    value[1]["again"].append(value)
    return value


@d1.task
async def sigterm_while_encoding(log):
    """A large return value with SIGTERM already on its way: the runtime hears the signal
    at its first checkpoint, which is while the value is being checked for sending."""
    value = ["x" * 1000] * 200_000  # 200 MB once encoded
    os.kill(os.getpid(), signal.SIGTERM)
    return value
