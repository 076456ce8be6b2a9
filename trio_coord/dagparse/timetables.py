"""A DAG's ``schedule`` as the Airflow 3.3 timetable object Python's serializer writes.

Cron presets are expanded first (``@daily`` is written as ``0 0 * * *``), as Python does,
and cron strings become ``CronTriggerTimetable`` (Airflow's default since 3.0).
"""

from __future__ import annotations

import datetime
from typing import Any, Final

from .values import seconds

__all__ = ["CRON_PRESETS", "TIMETABLES", "timetable"]

#: Timetable class paths Airflow resolves on load (an unknown path fails to deserialize).
TIMETABLES: Final = {
    "none": "airflow.timetables.simple.NullTimetable",
    "@once": "airflow.timetables.simple.OnceTimetable",
    "@continuous": "airflow.timetables.simple.ContinuousTimetable",
    "cron": "airflow.timetables.trigger.CronTriggerTimetable",
    "delta": "airflow.timetables.trigger.DeltaTriggerTimetable",
}

#: The cron shorthands Python expands before serializing.
CRON_PRESETS: Final = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
}


def timetable(schedule: str | datetime.timedelta | None, timezone: str | int) -> dict[str, Any]:
    """The ``timetable`` field for a schedule already accepted by the authoring checks."""
    if schedule is None:
        return {"__type": TIMETABLES["none"], "__var": {}}
    if isinstance(schedule, datetime.timedelta):
        return {
            "__type": TIMETABLES["delta"],
            "__var": {"delta": seconds(schedule), "interval": 0.0},
        }
    if schedule in ("@once", "@continuous"):
        return {"__type": TIMETABLES[schedule], "__var": {}}
    return {
        "__type": TIMETABLES["cron"],
        "__var": {
            "expression": CRON_PRESETS.get(schedule, schedule),
            "timezone": timezone,
            "interval": 0.0,
            "run_immediately": False,
        },
    }
