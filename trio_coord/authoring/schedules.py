"""What a DAG's ``schedule`` may be, checked when the DAG is declared.

The serializer (``trio_coord.dagparse.timetables``) turns the same values into Airflow
timetables; this module only decides which values are acceptable.
"""

from __future__ import annotations

import datetime
import re
from typing import Any, Final

from ..errors import UsageError
from .assets import AssetAll, BaseAsset
from .validation import did_you_mean

__all__ = ["SCHEDULE_PRESETS", "Schedule", "check_schedule", "normalize_schedule"]

#: Schedule strings Airflow 3.3 accepts besides cron expressions. ``@once`` and
#: ``@continuous`` are their own timetables; the others are cron shorthands.
SCHEDULE_PRESETS: Final = frozenset(
    {"@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly"}
)
#: One cron field: numbers, names (``MON``, ``JAN``), ``*``, ranges, steps, lists and the
#: ``? L W #`` extensions. A shape check only: Airflow's parser has the last word at parse
#: time, but a typo like ``"daily"`` or ``"0 * *"`` fails here, at declaration.
_CRON_FIELD: Final = re.compile(r"^[0-9A-Za-z*?,/#\-]+$")

#: A schedule: None (triggered only), a preset or cron string, a fixed interval, or assets
#: (one, a list meaning all of them, or an ``&``/``|`` condition).
Schedule = str | datetime.timedelta | BaseAsset | list[BaseAsset] | tuple[BaseAsset, ...] | None


def normalize_schedule(schedule: Schedule) -> str | datetime.timedelta | BaseAsset | None:
    """A checked schedule in its one stored form: a list of assets is ``AssetAll`` of them,
    as Airflow reads it."""
    if isinstance(schedule, list | tuple):
        return AssetAll(*schedule)
    return schedule


def check_schedule(where: str, schedule: Any, max_active_runs: int | None) -> None:
    """Refuse a schedule Airflow would refuse or misread; ``@continuous`` needs one run at a time."""
    if schedule is None or isinstance(schedule, BaseAsset):
        return
    if isinstance(schedule, list | tuple):
        if not schedule:
            raise UsageError(
                f"{where}: an empty list of assets would never schedule a run; use "
                "schedule=None for a DAG that is only triggered"
            )
        for item in schedule:
            if not isinstance(item, BaseAsset):
                raise UsageError(
                    f"{where}: a schedule list holds assets (Asset, AssetAlias or an asset "
                    f"condition), got {type(item).__name__}"
                )
        return
    if isinstance(schedule, datetime.timedelta):
        if schedule <= datetime.timedelta(0):
            raise UsageError(f"{where}: a timedelta schedule must be positive, got {schedule!r}")
        return
    if not isinstance(schedule, str):
        raise UsageError(
            f"{where}: schedule must be None, a cron string, a preset such as '@daily', a "
            f"datetime.timedelta, or assets (an Asset, a list of them, or a condition such as "
            f"a1 & (a2 | a3)), got {type(schedule).__name__}"
        )
    if schedule.startswith("@"):
        if schedule not in SCHEDULE_PRESETS:
            raise UsageError(
                f"{where}: unknown schedule preset {schedule!r}{did_you_mean(schedule, SCHEDULE_PRESETS)} "
                f"(presets: {', '.join(sorted(SCHEDULE_PRESETS))})"
            )
        if schedule == "@continuous" and (max_active_runs or 0) != 1:
            raise UsageError(
                f"{where}: schedule '@continuous' needs max_active_runs=1 "
                "(Airflow refuses more than one continuous run at a time)"
            )
        return
    fields = schedule.split()
    if len(fields) not in (5, 6) or not all(_CRON_FIELD.match(f) for f in fields):
        hint = did_you_mean("@" + schedule, SCHEDULE_PRESETS) if len(fields) == 1 else ""
        raise UsageError(
            f"{where}: schedule {schedule!r} is not a cron expression (5 fields, e.g. "
            f"'0 * * * *', or 6 with seconds last) or a preset such as '@daily'{hint}"
        )
