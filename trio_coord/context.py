"""What a running task knows about itself: the try, its run and its DAG."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from .protocol.messages import DagRun, StartupDetails, TaskInstance, TIRunContext

__all__ = ["TaskContext"]


@dataclass(frozen=True, slots=True)
class TaskContext:
    """The task's view of ``StartupDetails`` (protocol.md §4.1), with the usual shortcuts."""

    details: StartupDetails
    #: This try's asset state (``runtime.assets.TaskAssets``), set by the task runner.
    assets: Any = None
    #: The run's params (Airflow's ``context["params"]``), resolved by the task runner.
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def ti(self) -> TaskInstance:
        return self.details.ti

    @property
    def ti_context(self) -> TIRunContext:
        return self.details.ti_context

    @property
    def dag_run(self) -> DagRun:
        return self.details.ti_context.dag_run

    @property
    def dag_id(self) -> str:
        return self.details.ti.dag_id

    @property
    def task_id(self) -> str:
        return self.details.ti.task_id

    @property
    def run_id(self) -> str:
        return self.details.ti.run_id

    @property
    def map_index(self) -> int:
        # §4.1: nil means unmapped, the same as -1.
        mi = self.details.ti.map_index
        return -1 if mi is None else mi

    @property
    def try_number(self) -> int:
        return self.details.ti.try_number

    @property
    def start_date(self) -> datetime.datetime:
        return self.details.start_date

    @property
    def logical_date(self) -> datetime.datetime | None:
        return self.dag_run.logical_date

    @property
    def data_interval_start(self) -> datetime.datetime | None:
        return self.dag_run.data_interval_start

    @property
    def data_interval_end(self) -> datetime.datetime | None:
        return self.dag_run.data_interval_end

    @property
    def conf(self) -> dict[str, Any]:
        return dict(self.dag_run.conf or {})

    @property
    def should_retry(self) -> bool:
        return bool(self.details.ti_context.should_retry)

    @property
    def outlet_events(self) -> Any:
        """``outlet_events[asset].extra[k] = v``; ``outlet_events[alias].add(asset, extra=...)``."""
        return self._assets().outlet_events

    @property
    def inlet_events(self) -> Any:
        """``inlet_events[asset]``: that inlet's events, read from the supervisor on first use."""
        return self._assets().inlet_events

    def _assets(self) -> Any:
        if self.assets is None:
            raise AttributeError("asset events exist only while a task runs")
        return self.assets
