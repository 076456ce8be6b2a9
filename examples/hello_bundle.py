"""An example trio-coord bundle (the one the README runs): one DAG, sync and async tasks.

The same file is an Airflow DAG file: imported by Airflow's DAG processor, the export at the
bottom turns DAG "hello" into an Airflow DAG whose tasks are stubs on the "trio-coord" queue.
Packed with ``trio-coord pack examples/hello_bundle.py -o hello``, it is the executable that
Airflow's ExecutableCoordinator runs for those tasks (see docs/deployment.md).
"""

from __future__ import annotations

import datetime

import trio_coord

bundle = trio_coord.Bundle("hello", version="1.0.0", description="trio-coord example bundle")

hello = bundle.dag(
    "hello",
    schedule="@daily",
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
    tags=["example", "trio-coord"],
    retries=1,
)


@hello.task
async def greet(client, log, run_id):
    """Read a variable (with a fallback), log, and return a value that becomes an XCom."""
    name = await client.get_variable("greeting_name", default="world")
    log.info("hello, %s (run %s)", name, run_id)
    return {"greeting": f"hello, {name}", "run_id": run_id}


@hello.task(depends_on=[greet])
def shout(client, log):
    """A synchronous task: pulls the upstream XCom with the blocking client."""
    upstream = client.get_xcom(task_id="greet")
    text = (upstream or {}).get("greeting", "nothing to shout")
    log.info("shouting %r", text)
    return text.upper()


@hello.task
def fail_sometimes(context, log):
    """Fails on its first try, succeeds on the retry: shows RetryTask."""
    if context.try_number < 2:
        raise RuntimeError("first try always fails")
    log.info("second try succeeded")


# Airflow's DAG processor imports this same file: there the bundle's DAGs become real
# Airflow DAGs whose tasks are @task.stub placeholders on the "trio-coord" queue. Anywhere
# else (the packed bundle, trio-coord serve) this line does nothing.
from trio_coord.airflow import export_dags  # noqa: E402

export_dags(bundle, globals())
