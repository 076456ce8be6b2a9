"""The bundle the end-to-end run (``nox -s e2e``) deploys next to hello_bundle.py.

Each DAG is one scenario checked under a real Airflow 3.3.2 (scheduler, DAG processor, API
server, triggerer); e2e/scenarios.py holds the expected outcome of each. Like every bundle
file it is also the DAG file: the DAG processor imports it without trio.
"""

from __future__ import annotations

import datetime

import trio_coord

bundle = trio_coord.Bundle("e2e", version="1.0.0", description="trio-coord end-to-end scenarios")

START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)

data = bundle.dag("e2e_data", start_date=START, tags=["e2e"])


@data.task
async def read_inputs(client, log):
    """Read what the e2e created through the REST API and log it, the secrets too.

    The secrets (a connection password, a variable whose name is a sensitive one) are logged
    on purpose: the task log must show them masked.
    """
    plain = await client.get_variable("e2e_plain")
    api_key = await client.get_variable("e2e_api_key")
    conn = await client.get_connection("e2e_conn")
    from_api = await client.get_xcom("from_api", task_id="check_outputs")
    log.info("variable e2e_plain=%s", plain)
    log.info("connection e2e_conn host=%s login=%s", conn.host, conn.login)
    log.info("secret variable e2e_api_key=%s", api_key)
    log.info("secret connection password=%s", conn.password)
    log.info("xcom from the API: %r", from_api)
    return {"plain": plain, "host": conn.host, "login": conn.login, "from_api": from_api}


@data.task(depends_on=[read_inputs])
def check_outputs(client, log):
    """Pull the upstream task's return value: an XCom written by one bundle process, read by another."""
    upstream = client.get_xcom(task_id="read_inputs")
    log.info("upstream returned %r", upstream)
    return {"seen": upstream}


retry = bundle.dag(
    "e2e_retry", start_date=START, retries=1, retry_delay=datetime.timedelta(seconds=1)
)


@retry.task
def always_fails(context, log):
    """Fails on every try: one retry, then failed."""
    log.info("try %d is going to fail", context.try_number)
    raise RuntimeError(f"e2e failure on try {context.try_number}")


sleeper = bundle.dag("e2e_sleeper", start_date=START)


@sleeper.task
async def sleep_long(log):
    """Sleeps until something ends it: marked failed through the API, it must go away."""
    import os

    import trio  # only the bundle has trio; the DAG processor never runs this body

    log.info("sleeping in pid %d", os.getpid())
    await trio.sleep(600)


noop = bundle.dag("e2e_noop", start_date=START, max_active_runs=16)


@noop.task(task_id="noop")
def noop_task():
    """Does nothing: what the per-task cost measurement runs."""


from trio_coord.airflow import export_dags  # noqa: E402

export_dags(bundle, globals())
