"""The Airflow side of a bundle file: the same DAGs as real Airflow DAG objects.

On Airflow 3.3.2 the scheduler learns about DAGs only from Python files its DAG processor
imports (dag-parsing.md §1). A trio-coord bundle file *is* such a file: end it with ::

    from trio_coord.airflow import export_dags

    export_dags(bundle, globals())

When Airflow imports the file (DAG processor, ``DagBag``, ``airflow dags test``), each
trio-coord DAG becomes an ``airflow.sdk.DAG`` whose tasks are ``@task.stub`` placeholders
with the same ids, dependencies, retries, schedule, start date and tags, routed to the
task's queue (and every other DAG, task and task-group option, replayed in the order it
was written); a worker whose ``[sdk] queue_to_coordinator`` maps that queue to the
``ExecutableCoordinator`` then runs the packed bundle, which executes the real code.

Everywhere else (the packed bundle, ``trio-coord serve``, the packer, a plain
``import``) the call does nothing: it acts only when ``airflow.sdk`` is already imported,
so the runtime never pays for importing Airflow and needs neither it nor its providers.
This module never imports trio.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import sys
from collections.abc import MutableMapping
from typing import Any

from .airflow_mapping import expand_stub
from .authoring import TASK_OPTIONS, Bundle, Dag, Param, Task, TaskGroup
from .authoring.assets import Asset, AssetAlias, AssetAll, AssetAny, BaseAsset
from .authoring.taskflow import finalize_bundle

__all__ = ["export_dags", "to_airflow_dags"]

#: Prefix of the module globals that hold the exported DAG objects.
GLOBAL_PREFIX = "airflow_dag__"


def _trio_coord_task() -> None:
    # Runs in a trio-coord bundle, chosen by the task's queue; never executed here. No
    # docstring on purpose: @task.stub would show it as every exported task's doc_md (and
    # it accepts only an empty body).
    pass


def export_dags(bundle: Bundle, namespace: MutableMapping[str, Any]) -> dict[str, Any]:
    """Publish the bundle's DAGs to Airflow, if Airflow is the one importing this file.

    Args:
        bundle: the bundle whose DAGs to publish.
        namespace: the bundle module's ``globals()``; each DAG is stored there as
            ``airflow_dag__<dag id>`` so Airflow's importer finds it at module level.

    Returns:
        dag id -> ``airflow.sdk.DAG``; empty when ``airflow.sdk`` has not been imported
        in this process (then nothing is imported and nothing changes).
    """
    if "airflow.sdk" not in sys.modules:
        return {}
    fileloc = namespace.get("__file__")
    dags = to_airflow_dags(bundle, fileloc=fileloc if isinstance(fileloc, str) else None)
    for dag_id, dag in dags.items():
        namespace[GLOBAL_PREFIX + re.sub(r"\W", "_", dag_id)] = dag
    return dags


def to_airflow_dags(bundle: Bundle, *, fileloc: str | None = None) -> dict[str, Any]:
    """Build one ``airflow.sdk.DAG`` per trio-coord DAG, importing Airflow to do so.

    Raises:
        ImportError: apache-airflow-task-sdk or the standard provider (``@task.stub``)
            is not installed; the message says which.
    """
    try:
        sdk = importlib.import_module("airflow.sdk")
    except ImportError as exc:
        raise ImportError(
            f"trio_coord.airflow needs apache-airflow-task-sdk to build DAG objects: {exc}"
        ) from exc
    try:
        stub_module = importlib.import_module("airflow.providers.standard.decorators.stub")
    except ImportError as exc:
        raise ImportError(
            "trio_coord.airflow builds @task.stub tasks and needs "
            f"apache-airflow-providers-standard in the DAG processor's environment: {exc}"
        ) from exc
    finalize_bundle(bundle)
    return {d.dag_id: _build_dag(sdk, stub_module.stub, d, fileloc) for d in bundle.dags.values()}


#: DAG options passed to ``airflow.sdk.DAG`` under the same name when the DAG sets them.
_DAG_OPTIONS = (
    "end_date",
    "dag_display_name",
    "doc_md",
    "dagrun_timeout",
    "max_active_tasks",
    "max_active_runs",
    "max_consecutive_failed_dag_runs",
    "is_paused_upon_creation",
)
#: Boolean DAG options passed only when true (false is Airflow's default).
_DAG_FLAGS = ("render_template_as_native_obj", "disable_bundle_versioning", "fail_fast")


def _dag_kwargs(sdk: Any, d: Dag) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "schedule": _asset(sdk, d.schedule) if isinstance(d.schedule, BaseAsset) else d.schedule,
        "start_date": d.start_date,
        "catchup": d.catchup,
        "description": d.description,
        "tags": list(d.tags),
    }
    if d.bundle.description and d.description is None:
        kwargs["description"] = d.bundle.description
    kwargs.update({k: getattr(d, k) for k in _DAG_OPTIONS if getattr(d, k) is not None})
    kwargs.update({k: True for k in _DAG_FLAGS if getattr(d, k)})
    default_args = {k: v for k, v in d.default_args.items() if k not in _NOT_EXPORTED}
    if default_args:
        kwargs["default_args"] = default_args
    if d.params:
        kwargs["params"] = _airflow_params(sdk, d.params)
    return kwargs


def _asset(sdk: Any, a: BaseAsset) -> Any:
    """The ``airflow.sdk`` twin of an asset, an alias or a condition."""
    if isinstance(a, Asset):
        return sdk.Asset(name=a.name, uri=a.uri, group=a.group, extra=dict(a.extra))
    if isinstance(a, AssetAlias):
        return sdk.AssetAlias(a.name, group=a.group)
    if isinstance(a, AssetAll | AssetAny):
        kind = sdk.AssetAll if isinstance(a, AssetAll) else sdk.AssetAny
        return kind(*(_asset(sdk, o) for o in a.objects))
    raise TypeError(f"not an asset: {a!r}")


def _airflow_params(sdk: Any, params: dict[str, Param]) -> dict[str, Any]:
    return {
        name: sdk.Param(p.default, description=p.description, **p.schema)
        for name, p in params.items()
    }


#: Task options that stay in the bundle: ``@task.stub`` refuses a retry policy (Airflow
#: expects the runtime that runs the task to apply it, which trio-coord does).
_NOT_EXPORTED = frozenset({"retry_policy"})


def _task_kwargs(sdk: Any, t: Task) -> dict[str, Any]:
    """Every option with its effective value: default_args and the DAG shortcuts resolved."""
    local = t.task_id
    if t.group is not None and t.group.prefix_group_id and t.group.group_id is not None:
        local = t.task_id[len(t.group.group_id) + 1 :]
    kwargs: dict[str, Any] = {"task_id": local}
    for name in TASK_OPTIONS:
        value = t.option(name)
        if name in ("inlets", "outlets") and value is not None:
            value = [_asset(sdk, a) for a in value]
        # A retry policy and a label function stay in the bundle (the runtime applies them).
        if value is not None and name not in _NOT_EXPORTED and not callable(value):
            kwargs[name] = _airflow_params(sdk, value) if name == "params" else value
    if t.fn.__doc__:
        kwargs["doc"] = t.fn.__doc__
    return kwargs


def _build_dag(sdk: Any, stub: Any, d: Dag, fileloc: str | None) -> Any:
    """Replay the DAG's declarations and edges in their order, so Airflow's own ``>>``
    bookkeeping (group roots and leaves at the time of each edge) comes out the same."""
    with sdk.DAG(d.dag_id, **_dag_kwargs(sdk, d)) as adag:
        nodes: dict[tuple[str, str | None], Any] = {}
        for event in d.events:
            kind = event[0]
            if kind == "group":
                group = _find_group(d, event[1])
                parent = nodes.get(("group", group.parent.group_id)) if group.parent else None
                nodes[("group", event[1])] = sdk.TaskGroup(
                    group.local_id,
                    parent_group=parent,
                    prefix_group_id=group.prefix_group_id,
                    dag=adag,
                )
            elif kind in ("task", "expand"):
                t = d.tasks[event[1]]
                if t.is_mapped != (kind == "expand"):
                    continue  # a mapped task exists for Airflow once expanded
                holder = nodes.get(("group", t.group.group_id)) if t.group else None
                with holder if holder is not None else contextlib.nullcontext():
                    make = stub if t.kind != "sensor" else _sensor_stub(t)
                    if t.mapping is None:
                        node = make(_trio_coord_task, **_task_kwargs(sdk, t))()
                    else:
                        node = expand_stub(make, t, _task_kwargs(sdk, t), nodes)
                if t.kind in ("branch", "short_circuit") or t.kind_options.get("approval") is True:
                    # Marks the stub as a SkipMixin operator, as Airflow's own branch and
                    # short-circuit operators (and the approval operator) are: the scheduler then honours the
                    # followed/skipped XCom the runtime pushes when the task is cleared.
                    node.operator._can_skip_downstream = True
                nodes[("task", t.task_id)] = node
            else:
                this = nodes[tuple(event[1])]
                others = [nodes[tuple(ref)] for ref in event[2]]
                if kind == "down":
                    this >> others
                else:
                    this << others
    if fileloc is not None:
        adag.fileloc = fileloc
    return adag


def _sensor_stub(t: Task) -> Any:
    from . import airflow_sensors
    from .authoring.sensors import sensor_options

    module = importlib.import_module("airflow.providers.standard.decorators.stub")
    return airflow_sensors.sensor_stub(module, reschedule=sensor_options(t).reschedule)


def _find_group(d: Dag, group_id: str) -> TaskGroup:
    stack = [d.root_group]
    while stack:
        g = stack.pop()
        if g.group_id == group_id:
            return g
        stack.extend(c for c in g.children.values() if isinstance(c, TaskGroup))
    raise KeyError(group_id)
