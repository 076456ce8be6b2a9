"""The read-only questions a task asks about its DAG, runs and task instances, answered locally.

Pure: no I/O, no trio. A local run has no metadata database, so every answer comes from
what the run itself knows and says so by its shape rather than inventing history:

* runs: the try's own run (``running``) and the runs it triggered (``success``, as
  :mod:`.dagruns` reports them); nothing ran before, so "previous" queries find nothing;
* task instances: the try itself (``running``) and, in a whole-DAG run, every task
  instance that has already been settled, with its state and duration;
* the DAG and its assets: the bundle's own serialized DAGs (:class:`Catalogue`), read
  once, when a task first asks, through the parse workload a DAG processor would run.

Each answer has the type the 1.3.2 supervisor sends; a miss is the API's 404 as the
real supervisor forwards it (an error element), or the body error where the API has one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from ..protocol.messages import (
    AssetResult,
    AssetsByAliasResult,
    DagResult,
    DagRunResult,
    DRCount,
    ErrorResponse,
    GetAssetByName,
    GetAssetByUri,
    GetAssetsByAlias,
    GetDag,
    GetDagRun,
    GetDRCount,
    GetPreviousDagRun,
    GetPreviousTI,
    GetTaskBreadcrumbs,
    GetTaskStates,
    GetTICount,
    PreviousDagRunResult,
    PreviousTIResult,
    PrevSuccessfulDagRunResult,
    TaskBreadcrumbsResult,
    TaskStatesResult,
    TICount,
)
from ..protocol.models import DagRun

__all__ = ["Catalogue", "LocalQueries", "TIState", "not_found"]

#: ``(body, error element)`` as the session replies.
_Answer: TypeAlias = tuple[Any, ErrorResponse | None]

#: States the API's breadcrumbs list (terminal task-instance states).
_TERMINAL_TI: frozenset[str] = frozenset(
    {"success", "failed", "skipped", "removed", "upstream_failed"}
)


def not_found(message: str) -> ErrorResponse:
    """The error element the real supervisor sends for an API 404."""
    return ErrorResponse(error="API_SERVER_ERROR", detail={"status_code": 404, "message": message})


@dataclass(frozen=True, slots=True)
class TIState:
    """One task instance of the run as the queries see it."""

    task_id: str
    map_index: int
    state: str | None
    duration: float | None = None


@dataclass
class Catalogue:
    """The bundle's DAGs and declared assets, from its serialized DAG documents."""

    dags: dict[str, dict[str, Any]] = field(default_factory=dict)
    assets: list[AssetResult] = field(default_factory=list)
    #: Why the catalogue is empty when the bundle could not be parsed.
    problem: str | None = None

    @classmethod
    def from_parse_result(cls, result: Mapping[str, Any] | None, problem: str | None) -> Catalogue:
        found = cls(problem=problem if not result else None)
        seen: set[tuple[str, str]] = set()
        for entry in (result or {}).get("serialized_dags") or ():
            data = entry.get("data") if isinstance(entry, Mapping) else None
            dag = data.get("dag") if isinstance(data, Mapping) else None
            if not isinstance(dag, Mapping) or not isinstance(dag.get("dag_id"), str):
                continue
            found.dags[dag["dag_id"]] = dict(dag)
            for asset in _assets_in(dag):
                if (asset.name, asset.uri) not in seen:
                    seen.add((asset.name, asset.uri))
                    found.assets.append(asset)
        if not found.dags and found.problem is None:
            found.problem = "the bundle's parse gave no DAGs"
        return found

    def dag(self, msg: GetDag, *, bundle_name: str | None, rel_path: str | None) -> _Answer:
        dag = self.dags.get(msg.dag_id)
        if dag is None:
            why = f" ({self.problem})" if self.problem else ""
            return None, not_found(f"DAG {msg.dag_id!r} is not in this bundle{why}")
        tasks = [t.get("__var", t) for t in dag.get("tasks") or () if isinstance(t, Mapping)]
        owners = sorted({str(t.get("owner") or "airflow") for t in tasks if isinstance(t, Mapping)})
        tags = dag.get("tags") or []
        return DagResult(
            dag_id=msg.dag_id,
            is_paused=False,  # it is running
            bundle_name=bundle_name,
            bundle_version=None,
            relative_fileloc=str(dag.get("relative_fileloc") or rel_path or "") or None,
            owners=", ".join(owners) or None,
            tags=sorted(str(t) for t in tags),
            next_dagrun=None,
        ), None

    def asset(self, msg: GetAssetByName | GetAssetByUri) -> _Answer:
        if isinstance(msg, GetAssetByName):
            hit = next((a for a in self.assets if a.name == msg.name), None)
            detail = {"name": msg.name}
        else:
            hit = next((a for a in self.assets if a.uri == msg.uri), None)
            detail = {"uri": msg.uri}
        if hit is None:
            return ErrorResponse(error="ASSET_NOT_FOUND", detail=dict(detail)), None
        return hit, None


def _assets_in(node: Any) -> Iterator[AssetResult]:
    """Every ``{"__type": "asset", "__var": {...}}`` anywhere in a serialized document."""
    if isinstance(node, Mapping):
        inner = node.get("__var")
        if node.get("__type") == "asset" and isinstance(inner, Mapping):
            name, uri = inner.get("name"), inner.get("uri")
            if isinstance(name, str) and isinstance(uri, str):
                extra = inner.get("extra")
                yield AssetResult(
                    name=name,
                    uri=uri,
                    group=str(inner.get("group") or "asset"),
                    extra=dict(extra) if isinstance(extra, Mapping) else None,
                )
                return
        for value in node.values():
            yield from _assets_in(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from _assets_in(value)


@dataclass
class LocalQueries:
    """Runs and task instances the local run knows, and the answers built from them."""

    own: DagRun
    #: The runs the try triggered, by ``(dag_id, run_id)`` (shared with :mod:`.dagruns`).
    triggered: Mapping[tuple[str, str], Mapping[str, Any]]
    #: The run's task instances, the try's own included.
    instances: Iterable[TIState]

    def runs(self) -> list[DagRun]:
        """Every run this local run knows, its own first."""
        out = [self.own]
        for (dag_id, run_id), info in self.triggered.items():
            when = info.get("logical_date") or self.own.run_after
            out.append(
                dataclasses.replace(
                    self.own,
                    dag_id=dag_id,
                    run_id=run_id,
                    logical_date=info.get("logical_date"),
                    data_interval_start=info.get("logical_date"),
                    data_interval_end=info.get("logical_date"),
                    run_after=info.get("run_after") or when,
                    state="success",
                    conf=dict(info.get("conf") or {}),
                    consumed_asset_events=[],
                )
            )
        return out

    def dag_run(self, msg: GetDagRun) -> _Answer:
        for run in self.runs():
            if (run.dag_id, run.run_id) == (msg.dag_id, msg.run_id):
                fields = {f.name: getattr(run, f.name) for f in dataclasses.fields(DagRun)}
                return DagRunResult(**fields), None
        return None, not_found(f"no run {msg.run_id} of {msg.dag_id}")

    def dr_count(self, msg: GetDRCount) -> _Answer:
        count = sum(
            1
            for run in self.runs()
            if run.dag_id == msg.dag_id
            and (msg.logical_dates is None or run.logical_date in msg.logical_dates)
            and (msg.run_ids is None or run.run_id in msg.run_ids)
            and (msg.states is None or run.state in msg.states)
        )
        return DRCount(count=count), None

    def previous_dag_run(self, msg: GetPreviousDagRun) -> _Answer:
        earlier = [
            run
            for run in self.runs()
            if run.dag_id == msg.dag_id
            and run.logical_date is not None
            and run.logical_date < msg.logical_date
            and (msg.state is None or run.state == msg.state)
        ]
        latest = max(earlier, key=lambda r: r.logical_date or msg.logical_date, default=None)
        return PreviousDagRunResult(dag_run=latest), None

    def prev_successful_dag_run(self) -> _Answer:
        # The try's own run is running and nothing ran before it: no keys set.
        return PrevSuccessfulDagRunResult(), None

    def previous_ti(self, msg: GetPreviousTI) -> _Answer:
        # "Previous" means an earlier run's instance; a local run has none.
        return PreviousTIResult(task_instance=None), None

    def _select(self, msg: GetTICount | GetTaskStates) -> list[TIState]:
        if msg.dag_id != self.own.dag_id:
            return []
        if msg.run_ids is not None and self.own.run_id not in msg.run_ids:
            return []
        if msg.logical_dates is not None and self.own.logical_date not in msg.logical_dates:
            return []
        out = []
        for ti in self.instances:
            in_tasks = msg.task_ids is not None and ti.task_id in msg.task_ids
            in_group = msg.task_group_id is not None and ti.task_id.startswith(
                msg.task_group_id + "."
            )
            if (msg.task_ids is not None or msg.task_group_id is not None) and not (
                in_tasks or in_group
            ):
                continue
            if msg.map_index is not None and ti.map_index != msg.map_index:
                continue
            out.append(ti)
        return out

    def ti_count(self, msg: GetTICount) -> _Answer:
        found = [t for t in self._select(msg) if msg.states is None or t.state in msg.states]
        return TICount(count=len(found)), None

    def task_states(self, msg: GetTaskStates) -> _Answer:
        states: dict[str, Any] = {}
        for ti in self._select(msg):
            key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}_{ti.map_index}"
            states[key] = ti.state
        return TaskStatesResult(task_states={self.own.run_id: states} if states else {}), None

    def breadcrumbs(self, msg: GetTaskBreadcrumbs) -> _Answer:
        if (msg.dag_id, msg.run_id) != (self.own.dag_id, self.own.run_id):
            return TaskBreadcrumbsResult(breadcrumbs=[]), None
        ended = sorted(
            (t for t in self.instances if t.state in _TERMINAL_TI),
            key=lambda t: (t.task_id, t.map_index),
        )
        return TaskBreadcrumbsResult(
            breadcrumbs=[
                {
                    "task_id": t.task_id,
                    "map_index": t.map_index,
                    "state": t.state,
                    "operator": "TrioOperator",
                    "duration": t.duration,
                }
                for t in ended
            ]
        ), None


def by_alias(events: Iterable[tuple[Any, tuple[str, ...]]], msg: GetAssetsByAlias) -> _Answer:
    """The assets events were recorded for through the alias (what Airflow resolves it to)."""
    found: dict[tuple[str, str], AssetResult] = {}
    for event, aliases in events:
        if msg.alias_name in aliases:
            a = event.asset
            found.setdefault(
                (a.name, a.uri), AssetResult(name=a.name, uri=a.uri, group=a.group, extra=a.extra)
            )
    return AssetsByAliasResult(assets=list(found.values())), None
