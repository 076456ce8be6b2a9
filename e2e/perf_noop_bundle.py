"""The bundle the per-task cost measurement (e2e/perf.py) runs: one DAG of one no-op task.

The e2e run deploys it twice: as it is (DAG ``perf_noop_warm``, with a warm server) and
with every ``warm`` in its two names below turned into ``cold`` (DAG ``perf_noop_cold``,
a different bundle hash, so no server ever serves it). The two are the same code, so the
difference between their times is the warm start and nothing else. Like every bundle file
it is also the DAG file the DAG processor imports.
"""

from __future__ import annotations

import datetime

import trio_coord

bundle = trio_coord.Bundle("perf-noop-warm", version="1.0.0", description="e2e per-task cost")

noop = bundle.dag(
    "perf_noop_warm",
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
    max_active_runs=16,
)


@noop.task(task_id="noop")
def noop_task() -> None:
    """Does nothing, like the native baseline's task (e2e/native_noop_dag.py)."""


from trio_coord.airflow import export_dags  # noqa: E402

export_dags(bundle, globals())
