"""Asset events in ``trio-coord run``: what the try records and reads, kept in memory.

A local run has no metadata database: events start empty (or seeded by the caller), a
successful try's ``outlet_events`` are added as the API server would add them, and the
inlet-event requests read from that list. Every asset is active, so
``ValidateInletsAndOutlets`` names none.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from ..protocol.messages import (
    AssetEventsResult,
    GetAssetEventByAsset,
    GetAssetEventByAssetAlias,
    InactiveAssetsResult,
    SucceedTask,
)
from ..protocol.models import AssetEventResponse, AssetResponse

__all__ = ["LocalAssets"]


@dataclass
class LocalAssets:
    """The run's asset events, oldest first, each with the aliases it was recorded through."""

    events: list[tuple[AssetEventResponse, tuple[str, ...]]] = field(default_factory=list)

    def validate(self) -> InactiveAssetsResult:
        return InactiveAssetsResult(inactive_assets=[])

    def by_asset(self, msg: GetAssetEventByAsset) -> AssetEventsResult:
        def match(e: AssetEventResponse) -> bool:
            return (msg.name is None or e.asset.name == msg.name) and (
                msg.uri is None or e.asset.uri == msg.uri
            )

        return self._select([e for e, _ in self.events if match(e)], msg)

    def by_alias(self, msg: GetAssetEventByAssetAlias) -> AssetEventsResult:
        return self._select([e for e, aliases in self.events if msg.alias_name in aliases], msg)

    @staticmethod
    def _select(
        found: list[AssetEventResponse], msg: GetAssetEventByAsset | GetAssetEventByAssetAlias
    ) -> AssetEventsResult:
        found = [
            e
            for e in found
            if (msg.after is None or e.timestamp >= msg.after)
            and (msg.before is None or e.timestamp <= msg.before)
        ]
        if not msg.ascending:
            found.reverse()
        if msg.limit is not None:
            found = found[: msg.limit]
        return AssetEventsResult(asset_events=found)

    def record(
        self, msg: SucceedTask, *, dag_id: str, task_id: str, run_id: str, map_index: int
    ) -> list[dict[str, Any]]:
        """Add the try's outlet events; return them in the summary's form."""
        shown: list[dict[str, Any]] = []
        for raw in msg.outlet_events:
            key = raw.get("dest_asset_key")
            if not isinstance(key, dict):
                continue
            name, uri = str(key.get("name")), str(key.get("uri"))
            extra = raw.get("extra")
            alias = raw.get("source_alias_name")
            event = AssetEventResponse(
                id=len(self.events) + 1,
                timestamp=msg.end_date or datetime.datetime.now(datetime.UTC),
                extra=dict(extra) if isinstance(extra, dict) else {},
                asset=AssetResponse(name=name, uri=uri, group="asset"),
                created_dagruns=[],
                source_dag_id=dag_id,
                source_task_id=task_id,
                source_run_id=run_id,
                source_map_index=map_index,
            )
            aliases = (alias,) if isinstance(alias, str) else ()
            self.events.append((event, aliases))
            shown.append(
                {"asset": name, "extra": event.extra, **({"alias": alias} if aliases else {})}
            )
        return shown
