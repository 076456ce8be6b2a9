"""Sensors on the export route: ``@task.stub`` placeholders the scheduler treats as sensors.

Airflow's scheduler reads two things from a serialized task to handle a sensor:
``_is_sensor`` (loading the DAG adds ``ReadyToRescheduleDep`` to the task's deps, which
keeps an ``up_for_reschedule`` task instance waiting until its ``reschedule_date``) and
``reschedule`` (the same dependency checks task instances with no state only for tasks in
reschedule mode). ``@task.stub`` writes neither, so a sensor's placeholder is a subclass
of the stub operator that writes both, as ``BaseSensorOperator`` does, and carries the
sensor colour. Everything else about the placeholder is the stub's. Like
:mod:`trio_coord.airflow`, this module imports Airflow only when called.
"""

from __future__ import annotations

import functools
from typing import Any

from .authoring.sensors import SENSOR_UI_COLOR

__all__ = ["sensor_stub"]


@functools.cache
def _sensor_class(stub_operator: type, reschedule: bool) -> type:
    base: Any = stub_operator

    class TrioCoordSensorStub(base):  # type: ignore[misc]
        _is_sensor = True
        ui_color = SENSOR_UI_COLOR

        @classmethod
        def get_serialized_fields(cls) -> frozenset[str]:
            fields: frozenset[str] = super().get_serialized_fields()
            return fields | {"reschedule", "_is_sensor"}

    TrioCoordSensorStub.reschedule = reschedule
    TrioCoordSensorStub.__module__ = __name__
    return TrioCoordSensorStub


def sensor_stub(stub_module: Any, *, reschedule: bool) -> Any:
    """A ``@task.stub``-like decorator whose tasks serialize as sensors in ``mode``."""
    factory = stub_module.task_decorator_factory
    operator = _sensor_class(stub_module._StubOperator, reschedule)

    def decorate(python_callable: Any = None, **kwargs: Any) -> Any:
        return factory(decorated_operator_class=operator, python_callable=python_callable, **kwargs)

    return decorate
