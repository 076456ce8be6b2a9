"""State stores: small JSON values kept across tries, per task instance or per asset.

The task store is this try's task instance's (Airflow's ``task_store`` accessor); an
asset's store is named by the asset's ``name`` or ``uri``. A key that does not exist
reads as ``default``, as in Airflow. A task-store write expires after
``AIRFLOW__STATE_STORE__DEFAULT_RETENTION_DAYS`` days (30 when unset, 0 for never)
unless ``retention`` says otherwise; the supervisor does not pass that setting on, so
it is read from this process's environment.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any, Final

from ..errors import NotFound
from ..protocol.messages import (
    AssetStateStoreResult,
    ClearAssetStateStoreByName,
    ClearAssetStateStoreByUri,
    ClearTaskStateStore,
    DeleteAssetStateStoreByName,
    DeleteAssetStateStoreByUri,
    DeleteTaskStateStore,
    GetAssetStateStoreByName,
    GetAssetStateStoreByUri,
    GetTaskStateStore,
    OKResponse,
    Request,
    SetAssetStateStoreByName,
    SetAssetStateStoreByUri,
    SetTaskStateStore,
    TaskStateStoreResult,
)
from ._core import ClientCore
from .assets import one_of

__all__ = ["StateStoresMixin", "NEVER_EXPIRE", "RETENTION_ENV", "DEFAULT_RETENTION_DAYS"]

#: The environment variable Airflow's ``[state_store] default_retention_days`` comes from.
RETENTION_ENV: Final = "AIRFLOW__STATE_STORE__DEFAULT_RETENTION_DAYS"
#: Airflow's default for that setting.
DEFAULT_RETENTION_DAYS: Final = 30
#: ``retention=NEVER_EXPIRE``: the key is kept until deleted, whatever the setting says.
NEVER_EXPIRE: Final = datetime.timedelta.max


def _asset_store(
    by_name: Callable[..., Request],
    by_uri: Callable[..., Request],
    name: str | None,
    uri: str | None,
    **fields: Any,
) -> Request:
    """The request of the pair that names the asset the way the caller did."""
    one_of(name, uri)
    return by_name(name=name, **fields) if name is not None else by_uri(uri=uri, **fields)


class StateStoresMixin(ClientCore):
    # -- the task instance's store ---------------------------------------------------------

    async def get_task_state(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key`` for this task instance, or ``default``."""
        try:
            reply = await self._ask(
                GetTaskStateStore(ti_id=self._ti.id, key=key), TaskStateStoreResult
            )
        except NotFound:
            return default
        return reply.value

    async def set_task_state(
        self, key: str, value: Any, *, retention: datetime.timedelta | None = None
    ) -> None:
        """Store a JSON value under ``key``; ``retention`` overrides the default expiry.

        Raises:
            ValueError: ``value`` is None (delete the key instead), or the retention
                setting in the environment is not a whole number of days >= 0.
        """
        if value is None:
            raise ValueError("a state store value cannot be None; use delete_task_state")
        msg = SetTaskStateStore(
            ti_id=self._ti.id, key=key, value=value, expires_at=self._expires_at(retention)
        )
        await self._ask(msg, OKResponse)

    async def delete_task_state(self, key: str) -> None:
        """Remove ``key`` from this task instance's store (a missing key is not an error)."""
        await self._ask(DeleteTaskStateStore(ti_id=self._ti.id, key=key), OKResponse)

    async def clear_task_state(self) -> None:
        """Remove every key of this task instance's store."""
        await self._ask(ClearTaskStateStore(ti_id=self._ti.id), OKResponse)

    def _expires_at(self, retention: datetime.timedelta | None) -> datetime.datetime | None:
        if retention is NEVER_EXPIRE:
            return None
        now = datetime.datetime.now(datetime.UTC)
        if retention is not None:
            return now + retention
        raw = self._environ.get(RETENTION_ENV, "").strip()
        try:
            days = int(raw) if raw else DEFAULT_RETENTION_DAYS
        except ValueError:
            raise ValueError(f"{RETENTION_ENV}={raw!r} is not a whole number of days") from None
        if days < 0:
            raise ValueError(f"{RETENTION_ENV}={days} must be >= 0 (0 means never expire)")
        return None if days == 0 else now + datetime.timedelta(days=days)

    # -- an asset's store ------------------------------------------------------------------

    async def get_asset_state(
        self, key: str, *, name: str | None = None, uri: str | None = None, default: Any = None
    ) -> Any:
        """The value stored under ``key`` for the asset ``name`` (or ``uri``), or ``default``."""
        msg = _asset_store(GetAssetStateStoreByName, GetAssetStateStoreByUri, name, uri, key=key)
        try:
            return (await self._ask(msg, AssetStateStoreResult)).value
        except NotFound:
            return default

    async def set_asset_state(
        self, key: str, value: Any, *, name: str | None = None, uri: str | None = None
    ) -> None:
        """Store a JSON value under ``key`` for the asset ``name`` (or ``uri``)."""
        if value is None:
            raise ValueError("a state store value cannot be None; use delete_asset_state")
        msg = _asset_store(
            SetAssetStateStoreByName, SetAssetStateStoreByUri, name, uri, key=key, value=value
        )
        await self._ask(msg, OKResponse)

    async def delete_asset_state(
        self, key: str, *, name: str | None = None, uri: str | None = None
    ) -> None:
        """Remove ``key`` from the asset's store."""
        msg = _asset_store(
            DeleteAssetStateStoreByName, DeleteAssetStateStoreByUri, name, uri, key=key
        )
        await self._ask(msg, OKResponse)

    async def clear_asset_state(self, *, name: str | None = None, uri: str | None = None) -> None:
        """Remove every key of the asset's store."""
        msg = _asset_store(ClearAssetStateStoreByName, ClearAssetStateStoreByUri, name, uri)
        await self._ask(msg, OKResponse)
