"""Assets in the document: asset schedules, task inlets/outlets and the DAG's asset edges.

Airflow writes an asset twice over, in two encodings, and both are copied here:

* inside a timetable's ``asset_condition`` the object is flat
  (``{"__type": "asset", "name": ..., "uri": ..., "group": ..., "extra": ...}``, conditions
  as ``{"__type": "asset_all" | "asset_any", "objects": [...]}``);
* in a task's ``inlets``/``outlets`` each item is wrapped (``{"__type": "asset",
  "__var": {...}}``).

``dag_dependencies`` lists what the scheduler and the UI's dependency graph read: one entry
per asset or alias in the schedule (into the DAG) and per task outlet (out of it), sorted as
Python sorts its ``DagDependency`` dataclasses (by source, target, label, type, id).
"""

from __future__ import annotations

import json
from typing import Any, Final

from ..authoring.assets import Asset, AssetAlias, AssetAll, AssetAny, BaseAsset
from ..authoring.dags import Dag

__all__ = ["ASSET_TIMETABLE", "asset_timetable", "dag_dependencies", "encode_lineage"]

#: The timetable class of a DAG scheduled on assets.
ASSET_TIMETABLE: Final = "airflow.timetables.simple.AssetTriggeredTimetable"


def _asset_fields(a: Asset) -> dict[str, Any]:
    return {"name": a.name, "uri": a.uri, "group": a.group, "extra": dict(a.extra)}


def encode_condition(c: BaseAsset) -> dict[str, Any]:
    """One node of an asset condition in the flat encoding of a timetable."""
    if isinstance(c, Asset):
        return {"__type": "asset", **_asset_fields(c)}
    if isinstance(c, AssetAlias):
        return {"__type": "asset_alias", "name": c.name, "group": c.group}
    if isinstance(c, AssetAll | AssetAny):
        kind = "asset_all" if isinstance(c, AssetAll) else "asset_any"
        return {"__type": kind, "objects": [encode_condition(o) for o in c.objects]}
    raise ValueError(f"cannot serialize {type(c).__name__} as an asset condition")


def asset_timetable(schedule: BaseAsset) -> dict[str, Any]:
    """The ``timetable`` field of an asset-scheduled DAG."""
    return {"__type": ASSET_TIMETABLE, "__var": {"asset_condition": encode_condition(schedule)}}


def encode_lineage(items: list[Asset | AssetAlias]) -> list[dict[str, Any]]:
    """A task's ``inlets`` or ``outlets`` in the wrapped encoding."""
    out: list[dict[str, Any]] = []
    for a in items:
        if isinstance(a, Asset):
            out.append({"__type": "asset", "__var": _asset_fields(a)})
        else:
            out.append({"__type": "asset_alias", "__var": {"name": a.name, "group": a.group}})
    return out


def _asset_id(a: Asset) -> str:
    return json.dumps({"name": a.name, "uri": a.uri})


def _edge(source: str, target: str, item: Asset | AssetAlias) -> tuple[str, str, str, str, str]:
    if isinstance(item, Asset):
        return (source or "asset", target or "asset", item.name, "asset", _asset_id(item))
    return (source or "asset-alias", target or "asset-alias", item.name, "asset-alias", item.name)


def _leaves(c: BaseAsset) -> list[Asset | AssetAlias]:
    if isinstance(c, AssetAll | AssetAny):
        return [leaf for o in c.objects for leaf in _leaves(o)]
    if isinstance(c, Asset | AssetAlias):
        return [c]
    return []


def dag_dependencies(dag: Dag) -> list[dict[str, str]]:
    """The DAG's ``dag_dependencies``: its outlets (deduplicated per task) and its schedule."""
    edges: list[tuple[str, str, str, str, str]] = []
    for t in dag.tasks.values():
        edges += set(_edge(dag.dag_id, "", o) for o in t.options.get("outlets", ()))
    if isinstance(dag.schedule, BaseAsset):
        edges += [_edge("", dag.dag_id, leaf) for leaf in _leaves(dag.schedule)]
    keys = ("source", "target", "label", "dependency_type", "dependency_id")
    return [dict(zip(keys, e, strict=True)) for e in sorted(edges)]
