"""DAGs and DAG runs: look them up, count them, find the previous one, trigger a new one.

The ids default to this try's DAG and run, as the task instance's own methods do in
Airflow (``ti.get_previous_dagrun()``, ``ti.get_dagrun_state(...)``).
"""

from __future__ import annotations

import datetime
from typing import Any

from ..protocol.messages import (
    DagResult,
    DagRun,
    DagRunResult,
    DagRunState,
    DagRunStateResult,
    DRCount,
    GetDag,
    GetDagRun,
    GetDagRunState,
    GetDRCount,
    GetPreviousDagRun,
    GetPrevSuccessfulDagRun,
    OKResponse,
    PreviousDagRunResult,
    PrevSuccessfulDagRunResult,
    TriggerDagRun,
)
from ._core import ClientCore

__all__ = ["DagRunsMixin"]


class DagRunsMixin(ClientCore):
    async def get_dag(self, dag_id: str | None = None) -> DagResult:
        """A DAG's summary: paused or not, bundle, owners, tags, next run.

        Raises:
            NotFound: no such DAG (an HTTP 404 from the API).
        """
        return await self._ask(GetDag(dag_id=dag_id or self._ti.dag_id), DagResult)

    async def get_dagrun(self, dag_id: str | None = None, run_id: str | None = None) -> DagRun:
        """A DAG run (this one by default), every field the API returns.

        Raises:
            NotFound: no such run (an HTTP 404 from the API).
        """
        ti = self._ti
        msg = GetDagRun(dag_id=dag_id or ti.dag_id, run_id=run_id or ti.run_id)
        return await self._ask(msg, DagRunResult)

    async def get_dagrun_state(
        self, dag_id: str | None = None, run_id: str | None = None
    ) -> DagRunState:
        """A DAG run's state (``"running"``, ``"success"``...)."""
        ti = self._ti
        msg = GetDagRunState(dag_id=dag_id or ti.dag_id, run_id=run_id or ti.run_id)
        return (await self._ask(msg, DagRunStateResult)).state

    async def get_dr_count(
        self,
        dag_id: str | None = None,
        *,
        logical_dates: list[datetime.datetime] | None = None,
        run_ids: list[str] | None = None,
        states: list[str] | None = None,
    ) -> int:
        """How many runs of a DAG match every filter given."""
        msg = GetDRCount(
            dag_id=dag_id or self._ti.dag_id,
            logical_dates=logical_dates,
            run_ids=run_ids,
            states=states,
        )
        return (await self._ask(msg, DRCount)).count

    async def get_previous_dagrun(
        self,
        state: str | None = None,
        *,
        dag_id: str | None = None,
        logical_date: datetime.datetime | None = None,
    ) -> DagRun | None:
        """The latest run before ``logical_date`` (this run's), optionally in ``state``.

        None when there is none, or, as in Airflow, when this run has no logical date.
        """
        if logical_date is None:
            logical_date = self._details.ti_context.dag_run.logical_date
            if logical_date is None:
                return None
        msg = GetPreviousDagRun(
            dag_id=dag_id or self._ti.dag_id, logical_date=logical_date, state=state
        )
        return (await self._ask(msg, PreviousDagRunResult)).dag_run

    async def get_prev_successful_dagrun(self) -> PrevSuccessfulDagRunResult:
        """Dates of the last successful run before this one (``prev_*_success`` in the context).

        Each date is None when there is no such run.
        """
        msg = GetPrevSuccessfulDagRun(ti_id=self._ti.id)
        return await self._ask(msg, PrevSuccessfulDagRunResult)

    async def trigger_dagrun(
        self,
        dag_id: str,
        run_id: str,
        *,
        conf: dict[str, Any] | None = None,
        logical_date: datetime.datetime | None = None,
        run_after: datetime.datetime | None = None,
        reset_dag_run: bool = False,
        note: str | None = None,
    ) -> None:
        """Create a run of ``dag_id`` (what ``TriggerDagRunOperator`` asks for).

        With ``reset_dag_run`` an existing run of that id is cleared instead.

        Raises:
            AlreadyExists: the run exists and ``reset_dag_run`` is false.
        """
        msg = TriggerDagRun(
            dag_id=dag_id,
            run_id=run_id,
            conf=conf,
            logical_date=logical_date,
            run_after=run_after,
            reset_dag_run=reset_dag_run,
            note=note,
        )
        await self._ask(msg, OKResponse)
