"""A TaskFlow DAG (Airflow-shaped: ``@bundle.dag`` function, module-level ``@task``) for the
real-supervisor tests; importable by Airflow's DagBag through the export at the end."""

from __future__ import annotations

import datetime
from typing import Any

from trio_coord import Bundle, task, task_group
from trio_coord.airflow import export_dags

bundle = Bundle("taskflow-tests", version="1.0")


@bundle.dag(schedule="@daily", start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC))
def d1() -> None:
    @task
    def extract() -> dict[str, Any]:
        return {"rows": 3}

    @task(multiple_outputs=True)
    def stats() -> dict[str, int]:
        return {"total": 10, "count": 2}

    @task
    def plain(client: Any) -> int:
        client.set_xcom("extra", "pushed by hand")
        return 1

    @task
    def load(data: Any, extras: Any = None) -> dict[str, Any]:
        kinds = [type(e).__name__ for e in extras or ()]
        return {"data": data, "extras": extras, "kinds": kinds}

    @task
    async def report(total: Any, log: Any) -> dict[str, Any]:
        log.info("report got total=%r", total)
        return {"total": total}

    @task
    def needs_extra(value: Any) -> Any:
        return value

    rows = extract()
    numbers = stats()
    load(rows, extras=[numbers["count"], {"total": numbers["total"]}, ("fixed", 1)])
    report(total=numbers["total"])
    report(total=rows)  # a second call: the copy report__1
    needs_extra(plain()["extra"])

    @task_group
    def summary(value: Any) -> Any:
        @task
        def keep(value: Any) -> Any:
            return value

        return keep(value)

    summary(rows) >> load(rows)


d1()

export_dags(bundle, globals())
