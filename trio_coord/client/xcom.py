"""XComs: pull one value, count or page through a mapped task's values, push, delete.

Every read defaults to this try's DAG, run and task, as ``ti.xcom_pull`` does; a write
or delete always addresses this try (its map index included).
"""

from __future__ import annotations

from typing import Any

from ..errors import NotFound
from ..protocol.messages import (
    DeleteXCom,
    GetXCom,
    GetXComCount,
    GetXComSequenceItem,
    GetXComSequenceSlice,
    SetXCom,
    XComCountResponse,
    XComResult,
    XComSequenceIndexResult,
    XComSequenceSliceResult,
)
from ._core import MISSING, ClientCore, own_map_index

__all__ = ["XComMixin"]


class XComMixin(ClientCore):
    def _xcom_address(
        self, key: str, task_id: str | None, dag_id: str | None, run_id: str | None
    ) -> dict[str, str]:
        ti = self._ti
        return {
            "key": key,
            "dag_id": dag_id or ti.dag_id,
            "run_id": run_id or ti.run_id,
            "task_id": task_id or ti.task_id,
        }

    async def get_xcom(
        self,
        key: str = "return_value",
        *,
        task_id: str | None = None,
        dag_id: str | None = None,
        run_id: str | None = None,
        map_index: int | None = None,
        include_prior_dates: bool = False,
        default: Any = None,
    ) -> Any:
        """An XCom value (of this task unless ``task_id`` says otherwise), or ``default``."""
        reply = await self._ask(
            GetXCom(
                **self._xcom_address(key, task_id, dag_id, run_id),
                map_index=map_index,
                include_prior_dates=include_prior_dates,
            ),
            XComResult,
        )
        return default if reply.value is None else reply.value

    async def set_xcom(self, key: str, value: Any, *, mapped_length: int | None = None) -> None:
        """Push an XCom for this task try; the value must be JSON-compatible.

        ``mapped_length`` tells the scheduler how many instances a mapped downstream gets
        (the runtime sets it when a mapped task expands over this value).
        """
        ti = self._details.ti
        await self.request(
            SetXCom(
                key=key,
                value=value,
                dag_id=ti.dag_id,
                run_id=ti.run_id,
                task_id=ti.task_id,
                map_index=own_map_index(ti.map_index),
                mapped_length=mapped_length,
            )
        )

    async def delete_xcom(self, key: str) -> None:
        """Delete one of this task try's XComs."""
        ti = self._details.ti
        await self.request(
            DeleteXCom(
                key=key,
                dag_id=ti.dag_id,
                run_id=ti.run_id,
                task_id=ti.task_id,
                map_index=own_map_index(ti.map_index),
            )
        )

    async def get_xcom_count(
        self,
        key: str = "return_value",
        *,
        task_id: str | None = None,
        dag_id: str | None = None,
        run_id: str | None = None,
    ) -> int:
        """How many values a (mapped) task pushed under ``key``: one per map index."""
        reply = await self._ask(
            GetXComCount(**self._xcom_address(key, task_id, dag_id, run_id)), XComCountResponse
        )
        return reply.len

    async def get_xcom_item(
        self,
        index: int,
        key: str = "return_value",
        *,
        task_id: str | None = None,
        dag_id: str | None = None,
        run_id: str | None = None,
        default: Any = MISSING,
    ) -> Any:
        """The value a mapped task's instance pushed, by position (negative from the end).

        Raises:
            NotFound: no value at ``index`` and no ``default`` (Airflow's lazy sequence
                raises IndexError there).
        """
        msg = GetXComSequenceItem(**self._xcom_address(key, task_id, dag_id, run_id), offset=index)
        try:
            reply = await self._ask(msg, XComSequenceIndexResult)
        except NotFound:
            if default is MISSING:
                raise
            return default
        return reply.root

    async def get_xcom_slice(
        self,
        key: str = "return_value",
        *,
        start: int | None = None,
        stop: int | None = None,
        step: int | None = None,
        task_id: str | None = None,
        dag_id: str | None = None,
        run_id: str | None = None,
        include_prior_dates: bool = False,
    ) -> list[Any]:
        """A mapped task's values ``[start:stop:step]``, as a Python slice would select them."""
        reply = await self._ask(
            GetXComSequenceSlice(
                **self._xcom_address(key, task_id, dag_id, run_id),
                start=start,
                stop=stop,
                step=step,
                include_prior_dates=include_prior_dates,
            ),
            XComSequenceSliceResult,
        )
        return list(reply.root)
