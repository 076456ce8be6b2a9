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
    def get_serialized_fields(cls: type) -> frozenset[str]:
        fields: frozenset[str] = super(cls, cls).get_serialized_fields()  # type: ignore[misc]
        return fields | {"reschedule", "_is_sensor"}

    return type(
        "TrioCoordSensorStub",
        (stub_operator,),
        {
            "_is_sensor": True,
            "reschedule": reschedule,
            "ui_color": SENSOR_UI_COLOR,
            "get_serialized_fields": classmethod(get_serialized_fields),
            "__module__": __name__,
        },
    )


def sensor_stub(stub_module: Any, *, reschedule: bool) -> Any:
    """A ``@task.stub``-like decorator whose tasks serialize as sensors in ``mode``."""
    factory = stub_module.task_decorator_factory
    operator = _sensor_class(stub_module._StubOperator, reschedule)

    def decorate(python_callable: Any = None, **kwargs: Any) -> Any:
        return factory(
            decorated_operator_class=operator, python_callable=python_callable, **kwargs
        )

    return decorate
