"""Task instances: the previous try, counts and states across runs, breadcrumbs, reschedules.

Named after the ``RuntimeTaskInstance`` methods of the Task SDK. The query filters
are Airflow's: a ``map_index`` below 0 means "not mapped" and is not sent as a filter.
"""

from __future__ import annotations

import datetime
from typing import Any

from ..errors import UsageError
from ..protocol.messages import (
    GetPreviousTI,
    GetTaskBreadcrumbs,
    GetTaskRescheduleStartDate,
    GetTaskStates,
    GetTICount,
    PreviousTIResponse,
    PreviousTIResult,
    SkipDownstreamTasks,
    TaskBreadcrumbsResult,
    TaskInstanceState,
    TaskRescheduleStartDate,
    TaskStatesResult,
    TICount,
)
from ._core import ClientCore

__all__ = ["TaskInstancesMixin"]


class TaskInstancesMixin(ClientCore):
    async def get_previous_ti(
        self,
        state: TaskInstanceState | None = None,
        *,
        logical_date: datetime.datetime | None = None,
        map_index: int = -1,
        task_id: str | None = None,
        dag_id: str | None = None,
    ) -> PreviousTIResponse | None:
        """The latest instance of this task before ``logical_date`` (this run's), or None."""
        ti = self._ti
        if logical_date is None:
            logical_date = self._details.ti_context.dag_run.logical_date
        msg = GetPreviousTI(
            dag_id=dag_id or ti.dag_id,
            task_id=task_id or ti.task_id,
            logical_date=logical_date,
            map_index=map_index,
            state=state,
        )
        return (await self._ask(msg, PreviousTIResult)).task_instance

    async def skip_downstream_tasks(self, tasks: list[str | tuple[str, int]]) -> None:
        """Have the API server mark these tasks of this run skipped now.

        Each is a task id, or ``(task_id, map_index)`` for one instance. Branch and
        short-circuit tasks send it for you; follow it with success, never with a
        failure (the skipped tasks stay skipped).
        """
        tasks = list(tasks)
        for t in tasks:
            ok = isinstance(t, str) or (
                isinstance(t, tuple)
                and len(t) == 2
                and isinstance(t[0], str)
                and isinstance(t[1], int)
                and not isinstance(t[1], bool)
            )
            if not ok:
                raise UsageError(
                    f"skip_downstream_tasks: each task is an id or (id, map_index), got {t!r}"
                )
        await self.request(SkipDownstreamTasks(tasks=tasks))

    async def get_first_reschedule_date(self, try_number: int = 1) -> datetime.datetime | None:
        """When this sensor was first rescheduled in the try sequence starting at ``try_number``.

        None when it was never rescheduled.
        """
        msg = GetTaskRescheduleStartDate(ti_id=self._ti.id, try_number=try_number)
        return (await self._ask(msg, TaskRescheduleStartDate)).start_date

    async def get_ti_count(
        self,
        dag_id: str | None = None,
        *,
        map_index: int | None = None,
        task_ids: list[str] | None = None,
        task_group_id: str | None = None,
        logical_dates: list[datetime.datetime] | None = None,
        run_ids: list[str] | None = None,
        states: list[str] | None = None,
    ) -> int:
        """How many task instances match every filter given."""
        msg = GetTICount(
            dag_id=dag_id or self._ti.dag_id,
            map_index=map_index,
            task_ids=task_ids,
            task_group_id=task_group_id,
            logical_dates=logical_dates,
            run_ids=run_ids,
            states=states,
        )
        return (await self._ask(msg, TICount)).count

    async def get_task_states(
        self,
        dag_id: str | None = None,
        *,
        map_index: int | None = None,
        task_ids: list[str] | None = None,
        task_group_id: str | None = None,
        logical_dates: list[datetime.datetime] | None = None,
        run_ids: list[str] | None = None,
    ) -> dict[str, Any]:
        """The states of the matching task instances, keyed by run id then task id."""
        msg = GetTaskStates(
            dag_id=dag_id or self._ti.dag_id,
            map_index=map_index,
            task_ids=task_ids,
            task_group_id=task_group_id,
            logical_dates=logical_dates,
            run_ids=run_ids,
        )
        return dict((await self._ask(msg, TaskStatesResult)).task_states)

    async def get_task_breadcrumbs(
        self, dag_id: str | None = None, run_id: str | None = None
    ) -> list[dict[str, Any]]:
        """One summary map per task instance of a run (this one by default)."""
        ti = self._ti
        msg = GetTaskBreadcrumbs(dag_id=dag_id or ti.dag_id, run_id=run_id or ti.run_id)
        return list((await self._ask(msg, TaskBreadcrumbsResult)).breadcrumbs)
