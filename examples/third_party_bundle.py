"""A bundle whose tasks use a third-party package the DAG processor does not have.

Airflow's DAG processor imports this file to learn the DAGs, in an environment that has
trio-coord but not the tasks' dependencies. So the package is imported where it is used,
inside the task (or behind a guard, for names needed at module level): the file then
imports anywhere, and the packed bundle, which vendors the package from requirements.txt,
has it when the task runs. See docs/deployment.md, "Third-party packages in the bundle file".
"""

from __future__ import annotations

import datetime

import trio_coord

try:  # the guarded form: only for names needed at module level (constants, type hints)
    import polars
except ImportError:  # on the DAG processor: the tasks below never run there
    polars = None

bundle = trio_coord.Bundle("third-party", version="1.0.0")

report = bundle.dag(
    "report",
    schedule="@daily",
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
)


@report.task
def summarize(log):
    """The usual form: import the package inside the task that uses it."""
    import polars

    frame = polars.DataFrame({"n": [1, 2, 3]})
    log.info("sum is %s", frame["n"].sum())
    return int(frame["n"].sum())


from trio_coord.airflow import export_dags  # noqa: E402

export_dags(bundle, globals())
