"""Assets: look one up, resolve an alias, read its events, check this try's inlets/outlets.

An asset is named by ``name`` or by ``uri`` (exactly one, as in Airflow); the two
lookups are two requests on the wire, chosen here.
"""

from __future__ import annotations

import datetime

from ..protocol.messages import (
    AssetEventResponse,
    AssetEventsResult,
    AssetProfile,
    AssetResult,
    AssetsByAliasResult,
    GetAssetByName,
    GetAssetByUri,
    GetAssetEventByAsset,
    GetAssetEventByAssetAlias,
    GetAssetsByAlias,
    InactiveAssetsResult,
    ValidateInletsAndOutlets,
)
from ._core import ClientCore

__all__ = ["AssetsMixin", "one_of"]


def one_of(name: str | None, uri: str | None) -> None:
    """Refuse a call that names an asset by both ``name`` and ``uri``, or by neither."""
    if (name is None) == (uri is None):
        raise ValueError("name an asset by exactly one of name= or uri=")


class AssetsMixin(ClientCore):
    async def get_asset(self, *, name: str | None = None, uri: str | None = None) -> AssetResult:
        """The asset called ``name`` or at ``uri``.

        Raises:
            NotFound: no such asset.
        """
        one_of(name, uri)
        msg = GetAssetByName(name=name) if name is not None else GetAssetByUri(uri=str(uri))
        return await self._ask(msg, AssetResult)

    async def get_assets_by_alias(self, alias_name: str) -> list[AssetResult]:
        """The assets an asset alias resolves to (empty when none)."""
        reply = await self._ask(GetAssetsByAlias(alias_name=alias_name), AssetsByAliasResult)
        return list(reply.assets)

    async def get_asset_events(
        self,
        *,
        name: str | None = None,
        uri: str | None = None,
        after: datetime.datetime | None = None,
        before: datetime.datetime | None = None,
        limit: int | None = None,
        ascending: bool = True,
    ) -> list[AssetEventResponse]:
        """The events of one asset, oldest first unless ``ascending=False`` (``inlet_events``)."""
        one_of(name, uri)
        msg = GetAssetEventByAsset(
            name=name, uri=uri, after=after, before=before, limit=limit, ascending=ascending
        )
        return list((await self._ask(msg, AssetEventsResult)).asset_events)

    async def get_asset_alias_events(
        self,
        alias_name: str,
        *,
        after: datetime.datetime | None = None,
        before: datetime.datetime | None = None,
        limit: int | None = None,
        ascending: bool = True,
    ) -> list[AssetEventResponse]:
        """The events recorded through an asset alias, oldest first unless ``ascending=False``."""
        msg = GetAssetEventByAssetAlias(
            alias_name=alias_name, after=after, before=before, limit=limit, ascending=ascending
        )
        return list((await self._ask(msg, AssetEventsResult)).asset_events)

    async def validate_inlets_and_outlets(self) -> list[AssetProfile]:
        """This try's inlets and outlets that are not active assets (empty when all are)."""
        reply = await self._ask(ValidateInletsAndOutlets(ti_id=self._ti.id), InactiveAssetsResult)
        return list(reply.inactive_assets or [])
