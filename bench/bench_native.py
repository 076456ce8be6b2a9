"""The native baseline of the supervised benchmark: a plain Airflow DAG, one no-op task.

Run by Airflow's own Python task runner (bench/supervised.py ``native``), beside
trio-coord's no-op in bench_bundle.py, so "spawn → terminal" has a reference.
"""

from __future__ import annotations

import datetime

from airflow.sdk import dag, task


@dag(
    dag_id="bench_native",
    schedule=None,
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
)
def bench_native() -> None:
    @task(task_id="noop")
    def noop() -> None:
        """Does nothing."""

    noop()


bench_native()
