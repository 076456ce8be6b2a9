"""A bundle file the e2e run puts in the DAG folder but never packs into ``executables_root``.

Airflow parses it and schedules its task on the trio-coord queue; the worker's coordinator
then finds no bundle for the dag id. The e2e run checks what a user sees when that happens.
"""

from __future__ import annotations

import datetime

import trio_coord

bundle = trio_coord.Bundle("e2e-unpacked", version="1.0.0")

missing = bundle.dag(
    "e2e_missing_bundle", start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
)


@missing.task
def never_runs(log):
    """Never runs: no packed bundle declares this DAG on the worker."""
    log.info("this line must not appear")


from trio_coord.airflow import export_dags  # noqa: E402

export_dags(bundle, globals())
