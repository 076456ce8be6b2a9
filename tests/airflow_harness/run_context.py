"""The Execution API's answer to ``PUT /task-instances/{id}/run``, for mocked transports.

The real supervisor turns this body into ``StartupDetails.ti_context``. Shared by the
real-supervisor test driver and bench/supervised.py, which both replace only the API's
HTTP transport.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: Every date of the mocked run (its logical date, data interval, start, run after).
RUN_DATE = "2026-01-01T00:00:00Z"


def ti_run_context(
    *,
    dag_id: str,
    run_id: str,
    conf: dict[str, Any] | None = None,
    max_tries: int = 1,
    should_retry: bool = False,
    xcom_keys_to_clear: Sequence[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``TIRunContext`` body for a manual, running DAG run.

    ``extra`` adds or replaces top-level fields (``next_method``, ``next_kwargs``,
    ``task_reschedule_count``...): a resumed or rescheduled try.
    """
    body = {
        "dag_run": {
            "dag_id": dag_id,
            "run_id": run_id,
            "logical_date": RUN_DATE,
            "data_interval_start": RUN_DATE,
            "data_interval_end": RUN_DATE,
            "start_date": RUN_DATE,
            "end_date": None,
            "run_type": "manual",
            "state": "running",
            "run_after": RUN_DATE,
            "conf": conf,
            "consumed_asset_events": [],
            "partition_key": None,
        },
        "max_tries": max_tries,
        "should_retry": should_retry,
        "variables": [],
        "connections": [],
        "xcom_keys_to_clear": list(xcom_keys_to_clear),
    }
    body.update(extra or {})
    return body
