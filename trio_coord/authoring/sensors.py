"""Sensors, as declared: ``@dag.task.sensor(...)`` options checked where they are written.

A sensor's function is its *poke*: it returns whether the condition it waits for holds
(a bool, or a :class:`PokeReturnValue` carrying an XCom value too). How the runtime pokes
(sleeping in the worker, or giving the slot back between pokes) is ``mode``; the rest
are ``BaseSensorOperator``'s arguments with Airflow's names, defaults and checks, so a
sensor behaves the same whichever runtime executes it. The running side is
``trio_coord.runtime.sensors``.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ..errors import UsageError
from .tasks import FailTask

__all__ = [
    "DEFAULT_SENSOR_TIMEOUT",
    "SENSOR_MODES",
    "PokeReturnValue",
    "SensorOptions",
    "SENSOR_UI_COLOR",
    "SensorTimeout",
    "check_sensor_options",
    "sensor_options",
    "serialized_sensor_fields",
]

#: ``poke`` keeps the worker slot and sleeps between pokes; ``reschedule`` frees it.
SENSOR_MODES: Final = ("poke", "reschedule")
#: Airflow's ``[sensors] default_timeout``: seven days.
DEFAULT_SENSOR_TIMEOUT: Final = 7 * 24 * 3600.0
#: The colour Airflow's UI gives sensors (``BaseSensorOperator.ui_color``).
SENSOR_UI_COLOR: Final = "#e6f1f2"


class PokeReturnValue:
    """What a poke may return instead of a bool: done or not, and the XCom value to push
    when done (Airflow's ``PokeReturnValue``)."""

    __slots__ = ("is_done", "xcom_value")

    def __init__(self, is_done: bool, xcom_value: Any | None = None) -> None:
        self.is_done = is_done
        self.xcom_value = xcom_value

    def __bool__(self) -> bool:
        return bool(self.is_done)

    def __repr__(self) -> str:
        return f"PokeReturnValue(is_done={self.is_done!r}, xcom_value={self.xcom_value!r})"


class SensorTimeout(FailTask):
    """The sensor waited longer than its ``timeout`` (Airflow's ``AirflowSensorTimeout``):
    the task fails without a retry, or is skipped with ``soft_fail``."""


@dataclass(frozen=True, slots=True)
class SensorOptions:
    """A sensor's options, checked, with durations as float seconds."""

    poke_interval: float = 60.0
    timeout: float = DEFAULT_SENSOR_TIMEOUT
    mode: str = "poke"
    soft_fail: bool = False
    exponential_backoff: bool = False
    max_wait: float | None = None
    silent_fail: bool = False

    @property
    def reschedule(self) -> bool:
        """Whether the sensor gives its slot back between pokes (Airflow's ``reschedule``)."""
        return self.mode == "reschedule"


def _seconds(where: str, name: str, value: Any, *, optional: bool = False) -> float | None:
    """Airflow accepts a timedelta or a non-negative number of seconds."""
    if value is None and optional:
        return None
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        seconds = -1.0
    if not math.isfinite(seconds) or seconds < 0:
        extra = " or None" if optional else ""
        raise UsageError(
            f"{where}: {name} must be a timedelta or a non-negative number of seconds{extra}, "
            f"got {value!r}"
        )
    return seconds


def _flag(where: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"{where}: {name} must be True or False, got {value!r}")
    return value


def check_sensor_options(where: str, options: Mapping[str, Any]) -> SensorOptions:
    """The sensor options of ``@dag.task.sensor(...)``, or a UsageError naming what is accepted."""
    mode = options.get("mode", "poke")
    if mode not in SENSOR_MODES:
        raise UsageError(
            f"{where}: mode must be one of {', '.join(repr(m) for m in SENSOR_MODES)}, got {mode!r}"
        )
    timeout = options.get("timeout", DEFAULT_SENSOR_TIMEOUT)
    if timeout is None:
        timeout = DEFAULT_SENSOR_TIMEOUT
    poke_interval = _seconds(where, "poke_interval", options.get("poke_interval", 60.0))
    checked_timeout = _seconds(where, "timeout", timeout)
    max_wait = _seconds(where, "max_wait", options.get("max_wait"), optional=True)
    if poke_interval is None or checked_timeout is None:  # not optional: never None
        raise UsageError(f"{where}: poke_interval and timeout are required")
    return SensorOptions(
        poke_interval=poke_interval,
        timeout=checked_timeout,
        mode=str(mode),
        soft_fail=_flag(where, "soft_fail", options.get("soft_fail", False)),
        exponential_backoff=_flag(
            where, "exponential_backoff", options.get("exponential_backoff", False)
        ),
        max_wait=max_wait,
        silent_fail=_flag(where, "silent_fail", options.get("silent_fail", False)),
    )


def sensor_options(task: Any) -> SensorOptions:
    """The checked options of a sensor task (its ``kind_options`` were checked at declaration)."""
    return check_sensor_options(f"sensor {task.task_id!r}", task.kind_options)


def serialized_sensor_fields(task: Any) -> dict[str, Any]:
    """What a sensor's serialized task carries for the scheduler, as ``BaseSensorOperator``
    writes it: ``_is_sensor`` (the reschedule dependency), ``reschedule`` and the colour.
    Empty for other kinds."""
    if task.kind != "sensor":
        return {}
    return {
        "_is_sensor": True,
        "reschedule": sensor_options(task).reschedule,
        "ui_color": SENSOR_UI_COLOR,
    }
