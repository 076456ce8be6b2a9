"""A plain Airflow DAG (no trio-coord): the baseline the e2e run measures trio-coord against.

Its one task does nothing, like the one of e2e/perf_noop_bundle.py, so the difference
between the two is the cost of running a task through a packed bundle rather than
Airflow's own Python task runner.
"""

from __future__ import annotations

import datetime

from airflow.sdk import dag, task


@dag(
    schedule=None,
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
    catchup=False,
    max_active_runs=16,
    tags=["e2e"],
)
def native_noop():
    @task(task_id="noop")
    def noop_task():
        """Does nothing."""

    noop_task()


native_noop()
