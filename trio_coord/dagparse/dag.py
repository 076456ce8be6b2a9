"""The document: ``{"__version": 3, "dag": {...}}`` for one DAG, and for a whole bundle.

The DAG object admits only the keys Airflow's schema lists (``additionalProperties`` is
false there), so every key written here is one of :data:`ALWAYS` or :data:`WHEN_SET`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ..authoring import Bundle, Dag, Task
from ..authoring.assets import BaseAsset
from ..authoring.taskflow import finalize_dag
from ..errors import UsageError
from .assets import asset_timetable, dag_dependencies
from .groups import serialize_group
from .tasks import serialize_params, serialize_task
from .timetables import timetable
from .values import encode_value, epoch, seconds, timezone_of

__all__ = [
    "SERIALIZER_VERSION",
    "DagSerializationError",
    "dag_fingerprint",
    "serialize_bundle",
    "serialize_dag",
]

#: The only version number in the document (airflow-core 3.3's ``SERIALIZER_VERSION``).
SERIALIZER_VERSION: Final = 3

#: Airflow's built-in values for the config-backed DAG fields Python always writes.
CONFIG_DEFAULTS: Final[Mapping[str, Any]] = {
    "catchup": False,
    "max_active_tasks": 16,
    "max_active_runs": 16,
    "max_consecutive_failed_dag_runs": 0,
    "disable_bundle_versioning": False,
}

#: Keys on every DAG object, whatever the DAG sets.
ALWAYS: Final = (
    "dag_id",
    "fileloc",
    "relative_fileloc",
    "timezone",
    "timetable",
    "tasks",
    "dag_dependencies",
    "task_group",
    "edge_info",
    "params",
    "deadline",
    "allowed_run_types",
    *CONFIG_DEFAULTS,
)
#: Keys written only when the DAG sets them to something other than Airflow's default.
WHEN_SET: Final = (
    "description",
    "dag_display_name",
    "doc_md",
    "start_date",
    "end_date",
    "dagrun_timeout",
    "tags",
    "default_args",
    "fail_fast",
    "render_template_as_native_obj",
    "is_paused_upon_creation",
)


class DagSerializationError(UsageError):
    """A DAG that Airflow would accept but misread (a cycle, ...): reported as an import error."""


def _downstream(dag: Dag) -> dict[str, list[str]]:
    down: dict[str, list[str]] = {tid: [] for tid in dag.tasks}
    for t in dag.tasks.values():
        for up in t.upstream:
            if up not in down:
                raise DagSerializationError(
                    f"DAG {dag.dag_id!r}: task {t.task_id!r} depends on unknown task {up!r}"
                )
            down[up].append(t.task_id)
    return down


def _check_acyclic(dag: Dag, down: Mapping[str, list[str]]) -> None:
    """Airflow stores a cyclic DAG without complaint and then never runs it; refuse it here."""
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    for start in down:
        if start in state:
            continue
        path = [start]
        iters = [iter(sorted(down[start]))]
        state[start] = 1
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                iters.pop()
            elif state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt]
                raise DagSerializationError(f"DAG {dag.dag_id!r} has a cycle: {' >> '.join(cycle)}")
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(sorted(down[nxt])))


def _airflow_order(dag: Dag) -> list[Task]:
    """The tasks in the order Airflow's DAG gets them: a mapped task exists for Airflow
    only once expanded, so it takes its place at its ``expand`` call, not at its
    decorator (the export route replays the same events, so both routes agree)."""
    ids: dict[str, None] = {}
    for event in dag.events:
        kind, tid = event[0], event[1] if len(event) > 1 else None
        if kind not in ("task", "expand") or tid not in dag.tasks:
            continue
        # A mapped task's "task" event is its decorator; Airflow sees it at "expand".
        if dag.tasks[tid].is_mapped == (kind == "expand"):
            ids.setdefault(tid)
    ids.update(dict.fromkeys(dag.tasks))
    return [dag.tasks[tid] for tid in ids]


def serialize_dag(dag: Dag, *, fileloc: str, relative_fileloc: str) -> dict[str, Any]:
    """The DagSerialization v3 document airflow-core 3.3.2 would write for this DAG.

    Args:
        dag: a declared trio-coord DAG.
        fileloc: absolute path of the DAG file (Airflow stores the file's text as the source).
        relative_fileloc: the same path relative to the bundle root, ``/``-separated.

    Raises:
        DagSerializationError: the DAG cannot be written faithfully (a cycle, a value of a
            type Airflow cannot store).
    """
    finalize_dag(dag)
    down = _downstream(dag)
    _check_acyclic(dag, down)
    tz = timezone_of(dag.start_date)
    try:
        tasks = [serialize_task(t, down[t.task_id]) for t in _airflow_order(dag)]
        default_args = encode_value(_flag_policy(dag.default_args)) if dag.default_args else None
        params = serialize_params(dag, None)
    except ValueError as exc:
        raise DagSerializationError(f"DAG {dag.dag_id!r}: {exc}") from None
    out: dict[str, Any] = {
        "dag_id": dag.dag_id,
        "fileloc": fileloc,
        "relative_fileloc": relative_fileloc,
        "timezone": tz,
        "timetable": asset_timetable(dag.schedule)
        if isinstance(dag.schedule, BaseAsset)
        else timetable(dag.schedule, tz),
        "tasks": tasks,
        "dag_dependencies": dag_dependencies(dag),
        "task_group": serialize_group(dag.root_group),
        "edge_info": {},
        "params": params,
        "deadline": None,
        "allowed_run_types": None,
        "catchup": dag.catchup,
        "max_active_tasks": _or(dag.max_active_tasks, "max_active_tasks"),
        "max_active_runs": _or(dag.max_active_runs, "max_active_runs"),
        "max_consecutive_failed_dag_runs": _or(
            dag.max_consecutive_failed_dag_runs, "max_consecutive_failed_dag_runs"
        ),
        "disable_bundle_versioning": dag.disable_bundle_versioning,
    }
    description = dag.description if dag.description is not None else dag.bundle.description
    optional: dict[str, Any] = {
        "description": description,
        "dag_display_name": dag.dag_display_name if dag.dag_display_name != dag.dag_id else None,
        "doc_md": dag.doc_md,
        "start_date": epoch(dag.start_date) if dag.start_date else None,
        "end_date": epoch(dag.end_date) if dag.end_date else None,
        "dagrun_timeout": seconds(dag.dagrun_timeout) if dag.dagrun_timeout else None,
        "tags": sorted(set(dag.tags)) or None,
        "default_args": default_args,
        "fail_fast": True if dag.fail_fast else None,
        "render_template_as_native_obj": True if dag.render_template_as_native_obj else None,
        "is_paused_upon_creation": dag.is_paused_upon_creation,
    }
    out.update({k: v for k, v in optional.items() if v is not None})
    return {"__version": SERIALIZER_VERSION, "dag": out}


def _flag_policy(default_args: dict[str, Any]) -> dict[str, Any]:
    """``default_args`` without the retry policy: it is applied by the runtime and, as on
    the export route (where ``@task.stub`` refuses it), never reaches Airflow."""
    return {k: v for k, v in default_args.items() if k != "retry_policy"}


def _or(value: int | None, key: str) -> Any:
    return CONFIG_DEFAULTS[key] if value is None else value


def serialize_bundle(
    bundle: Bundle, *, fileloc: str, relative_fileloc: str
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Every DAG of a bundle: (documents by dag id, error message by dag id).

    A DAG that cannot be serialized is reported and the others are still written.
    """
    docs: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    for dag_id, dag in bundle.dags.items():
        try:
            docs[dag_id] = serialize_dag(dag, fileloc=fileloc, relative_fileloc=relative_fileloc)
        except UsageError as exc:
            errors[dag_id] = str(exc)
    return docs, errors


def dag_fingerprint(document: Mapping[str, Any]) -> dict[str, Any]:
    """A small structural summary of a serialized DAG, for drift checks.

    Returns ``{"dag_id", "tasks": {task_id: {"upstream", "downstream", "queue"}}}`` with
    sorted id lists; read from the document alone, so it works on any producer's output.
    """
    dag = document["dag"]
    tasks: dict[str, dict[str, Any]] = {}
    for entry in dag["tasks"]:
        var = entry["__var"]
        tasks[var["task_id"]] = {
            "upstream": [],
            "downstream": sorted(var.get("downstream_task_ids", [])),
            # A mapped task keeps its options in partial_kwargs, its queue too.
            "queue": var.get("queue", (var.get("partial_kwargs") or {}).get("queue", "default")),
        }
    for tid, info in tasks.items():
        for d in info["downstream"]:
            if d in tasks:
                tasks[d]["upstream"].append(tid)
    for info in tasks.values():
        info["upstream"].sort()
    return {"dag_id": dag["dag_id"], "tasks": tasks}
