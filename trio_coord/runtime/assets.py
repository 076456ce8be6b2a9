"""A try's assets at run time: the events it records and the events it reads.

What leaves with ``SucceedTask`` is what Airflow's own runner sends, so the API server
treats a trio-coord task and a Python one alike:

* ``task_outlets``: one ``AssetProfile`` per declared outlet, in order (``type`` "Asset"
  with name and uri, or "AssetAlias" with the name only);
* ``outlet_events``: one entry per asset the task touched through
  ``context.outlet_events[asset]`` (``{"dest_asset_key": {"name", "uri"}, "extra"}``, even
  when ``extra`` stayed empty: touching it is the signal), then one per alias event
  (``{"source_alias_name", "dest_asset_key", "dest_asset_extra", "extra"}``), in the order
  first touched. Filtering (an event for an asset that is no outlet) is the server's job.

Inlet events are read lazily: ``context.inlet_events[asset]`` asks the supervisor
(``GetAssetEventByAsset``, or ``GetAssetEventByAssetAlias`` for an alias) the first time
the events are used, with the filters chained before (``.after()``, ``.limit()``...).
A sync task reads them as a sequence; an async one awaits ``.fetch()``.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, overload

import trio

from ..authoring.assets import Asset, AssetAlias
from ..authoring.validation import check_json_dict
from ..errors import RemoteProtocolError, UsageError
from ..protocol.messages import AssetEventsResult, GetAssetEventByAsset
from ..protocol.models import AssetEventResponse, AssetProfile

if TYPE_CHECKING:
    from ..authoring import Task
    from ..client import Client

__all__ = [
    "InletEvents",
    "InletEventsAccessor",
    "OutletEventAccessor",
    "OutletEvents",
    "TaskAssets",
    "inactive_assets",
    "task_outlets",
]

_Key = tuple[str, str] | str  # (name, uri) for an asset, the name for an alias


class OutletEventAccessor:
    """The event a task records for one asset (``extra``), or through one alias (``add``)."""

    __slots__ = ("alias_events", "extra", "key")

    def __init__(self, key: _Key) -> None:
        self.key = key
        #: The asset event's extra; set keys in it (``accessor.extra["rows"] = 10``).
        self.extra: dict[str, Any] = {}
        self.alias_events: list[dict[str, Any]] = []

    def add(self, asset: Asset, extra: Mapping[str, Any] | None = None) -> None:
        """Record an event for ``asset`` through this alias (Airflow ignores it on an asset)."""
        if not isinstance(self.key, str):
            return
        if not isinstance(asset, Asset):
            raise UsageError(f"add() takes an Asset, got {type(asset).__name__}")
        self.alias_events.append(
            {
                "source_alias_name": self.key,
                "dest_asset_key": {"name": asset.name, "uri": asset.uri},
                "dest_asset_extra": dict(asset.extra),
                "extra": check_json_dict("an alias event's extra", extra or {}),
            }
        )

    def __repr__(self) -> str:
        return f"<OutletEventAccessor {self.key!r} extra={self.extra!r}>"


class OutletEvents(Mapping[Asset | AssetAlias, OutletEventAccessor]):
    """``context.outlet_events``: an accessor per asset or alias, made on first use."""

    def __init__(self) -> None:
        self._by_key: dict[_Key, OutletEventAccessor] = {}
        self._objects: dict[_Key, Asset | AssetAlias] = {}

    def __getitem__(self, item: Asset | AssetAlias) -> OutletEventAccessor:
        if isinstance(item, Asset):
            key: _Key = item.key
        elif isinstance(item, AssetAlias):
            key = item.name
        else:
            raise UsageError(
                f"outlet_events[...] takes an Asset or an AssetAlias, got {type(item).__name__}"
            )
        if key not in self._by_key:
            self._by_key[key] = OutletEventAccessor(key)
            self._objects[key] = item
        return self._by_key[key]

    def for_asset(self, *, name: str | None = None, uri: str | None = None) -> OutletEventAccessor:
        """The accessor of ``Asset(name=..., uri=...)``."""
        return self[Asset(name=name, uri=uri)]

    def for_asset_alias(self, *, name: str) -> OutletEventAccessor:
        return self[AssetAlias(name)]

    def __iter__(self) -> Iterator[Asset | AssetAlias]:
        return iter(self._objects.values())

    def __len__(self) -> int:
        return len(self._by_key)

    def serialize(self) -> list[dict[str, Any]]:
        """``SucceedTask.outlet_events``, in the native runner's shape and order."""
        out: list[dict[str, Any]] = []
        for key, accessor in self._by_key.items():
            if isinstance(key, tuple):
                extra = check_json_dict(f"outlet_events[{key[0]!r}].extra", accessor.extra)
                out.append({"dest_asset_key": {"name": key[0], "uri": key[1]}, "extra": extra})
            out.extend(accessor.alias_events)
        return out


def task_outlets(outlets: Sequence[Asset | AssetAlias]) -> list[AssetProfile]:
    """``SucceedTask.task_outlets``: a profile per declared outlet."""
    out = []
    for o in outlets:
        if isinstance(o, Asset):
            out.append(AssetProfile(name=o.name, uri=o.uri, type="Asset"))
        else:
            out.append(AssetProfile(name=o.name, type="AssetAlias"))
    return out


class InletEventsAccessor(Sequence[AssetEventResponse]):
    """The events of one inlet, fetched on first use; chain filters before using it."""

    def __init__(self, client: Client, target: Asset | AssetAlias, *, is_async: bool) -> None:
        self._client = client
        self._target = target
        self._is_async = is_async
        self._after: datetime.datetime | None = None
        self._before: datetime.datetime | None = None
        self._ascending = True
        self._limit: int | None = None
        self._events: list[AssetEventResponse] | None = None

    def after(self, after: datetime.datetime) -> InletEventsAccessor:
        self._after, self._events = after, None
        return self

    def before(self, before: datetime.datetime) -> InletEventsAccessor:
        self._before, self._events = before, None
        return self

    def ascending(self, ascending: bool = True) -> InletEventsAccessor:
        self._ascending, self._events = ascending, None
        return self

    def limit(self, limit: int) -> InletEventsAccessor:
        self._limit, self._events = limit, None
        return self

    async def fetch(self) -> list[AssetEventResponse]:
        """The events (asks the supervisor once per set of filters)."""
        if self._events is None:
            filters: dict[str, Any] = {
                "after": self._after,
                "before": self._before,
                "limit": self._limit,
                "ascending": self._ascending,
            }
            t = self._target
            if isinstance(t, AssetAlias):
                events = await self._client.get_asset_alias_events(t.name, **filters)
            else:
                # Both name and uri, as Airflow's runner asks for an Asset inlet (the
                # client's get_asset_events takes one of them, for lookups by either).
                msg = GetAssetEventByAsset(name=t.name, uri=t.uri, **filters)
                reply = await self._client.request(msg)
                if not isinstance(reply, AssetEventsResult):
                    raise RemoteProtocolError(
                        f"GetAssetEventByAsset: expected AssetEventsResult, got {reply!r:.200}"
                    )
                events = list(reply.asset_events)
            self._events = events
        return self._events

    def _sync(self) -> list[AssetEventResponse]:
        if self._events is None:
            if self._is_async:
                raise UsageError(
                    "an async task reads inlet events with `await context.inlet_events[a].fetch()`"
                )
            return trio.from_thread.run(self.fetch)
        return self._events

    @overload
    def __getitem__(self, index: int) -> AssetEventResponse: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[AssetEventResponse]: ...

    def __getitem__(self, index: int | slice) -> Any:
        return self._sync()[index]

    def __len__(self) -> int:
        return len(self._sync())

    def __iter__(self) -> Iterator[AssetEventResponse]:
        return iter(self._sync())


class InletEvents(Mapping[Any, InletEventsAccessor]):
    """``context.inlet_events``: the events of each declared inlet (by object or index)."""

    def __init__(self, inlets: Sequence[Asset | AssetAlias], client: Client, *, is_async: bool):
        self._inlets = list(inlets)
        self._client = client
        self._is_async = is_async

    def __getitem__(self, item: int | Asset | AssetAlias) -> InletEventsAccessor:
        if isinstance(item, int) and not isinstance(item, bool):
            target = self._inlets[item]
        elif isinstance(item, Asset):
            found = [i for i in self._inlets if isinstance(i, Asset) and i.key == item.key]
            if not found:
                raise KeyError(item)
            target = found[0]
        elif isinstance(item, AssetAlias):
            if not any(isinstance(i, AssetAlias) and i.name == item.name for i in self._inlets):
                raise KeyError(item)
            target = item
        else:
            raise UsageError(
                f"inlet_events[...] takes an Asset, an AssetAlias or an index, "
                f"got {type(item).__name__}"
            )
        return InletEventsAccessor(self._client, target, is_async=self._is_async)

    def __iter__(self) -> Iterator[Asset | AssetAlias]:
        return iter(self._inlets)

    def __len__(self) -> int:
        return len(self._inlets)


class TaskAssets:
    """One try's asset state: created before the task runs, read when it succeeds."""

    def __init__(self, task: Task, client: Client) -> None:
        self.inlets: list[Asset | AssetAlias] = list(task.options.get("inlets", ()))
        self.outlets: list[Asset | AssetAlias] = list(task.options.get("outlets", ()))
        self.outlet_events = OutletEvents()
        self.inlet_events = InletEvents(self.inlets, client, is_async=task.is_async)

    @property
    def declared(self) -> bool:
        """Airflow validates inlets and outlets before the body runs only when there are some."""
        return bool(self.inlets or self.outlets)

    def success_fields(self) -> dict[str, Any]:
        """The ``SucceedTask`` fields (raises UsageError for an extra that is not JSON data)."""
        return {
            "task_outlets": task_outlets(self.outlets),
            "outlet_events": self.outlet_events.serialize(),
        }


async def inactive_assets(assets: TaskAssets, client: Client) -> str | None:
    """Why the try must not run (an inlet or outlet is not an active asset), or None.

    Airflow's runner asks this before the body runs, and only when the task declares
    inlets or outlets; so does this one, so both make the same calls.
    """
    if not assets.declared:
        return None
    inactive = await client.validate_inlets_and_outlets()
    if not inactive:
        return None
    names = ", ".join(repr(p.name or p.uri) for p in inactive)
    return f"inlets or outlets that are not active assets: {names}"
