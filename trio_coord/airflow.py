"""The Airflow side of a bundle file: the same DAGs as real Airflow DAG objects.

On Airflow 3.3.2 the scheduler learns about DAGs only from Python files its DAG processor
imports (dag-parsing.md §1). A trio-coord bundle file *is* such a file: end it with ::

    from trio_coord.airflow import export_dags

    export_dags(bundle, globals())

When Airflow imports the file (DAG processor, ``DagBag``, ``airflow dags test``), each
trio-coord DAG becomes an ``airflow.sdk.DAG`` whose tasks are ``@task.stub`` placeholders
with the same ids, dependencies, retries, schedule, start date and tags, routed to the
task's queue; a worker whose ``[sdk] queue_to_coordinator`` maps that queue to the
``ExecutableCoordinator`` then runs the packed bundle, which executes the real code.

Everywhere else (the packed bundle, ``trio-coord serve``, the packer, a plain
``import``) the call does nothing: it acts only when ``airflow.sdk`` is already imported,
so the runtime never pays for importing Airflow and needs neither it nor its providers.
This module never imports trio.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import MutableMapping
from typing import Any

from .authoring import Bundle, Dag

__all__ = ["export_dags", "to_airflow_dags"]

#: Prefix of the module globals that hold the exported DAG objects.
GLOBAL_PREFIX = "airflow_dag__"


def _trio_coord_task() -> None:
    """Runs in a trio-coord bundle, chosen by the task's queue; never executed here."""


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
    return {
        d.dag_id: _build_dag(sdk.DAG, stub_module.stub, d, fileloc) for d in bundle.dags.values()
    }


def _build_dag(dag_cls: Any, stub: Any, d: Dag, fileloc: str | None) -> Any:
    kwargs: dict[str, Any] = {
        "schedule": d.schedule,
        "start_date": d.start_date,
        "catchup": d.catchup,
        "description": d.description,
        "tags": list(d.tags),
    }
    if d.max_active_runs is not None:
        kwargs["max_active_runs"] = d.max_active_runs
    if d.bundle.description and d.description is None:
        kwargs["description"] = d.bundle.description
    with dag_cls(d.dag_id, **kwargs) as adag:
        ops: dict[str, Any] = {}
        for t in d.tasks.values():
            task_kwargs: dict[str, Any] = {
                "task_id": t.task_id,
                "queue": t.effective_queue,
                "retries": t.effective_retries,
            }
            delay = t.retry_delay or d.retry_delay
            if delay is not None:
                task_kwargs["retry_delay"] = delay
            if t.fn.__doc__:
                task_kwargs["doc"] = t.fn.__doc__
            ops[t.task_id] = stub(_trio_coord_task, **task_kwargs)()
        for t in d.tasks.values():
            for up in t.upstream:
                ops[up] >> ops[t.task_id]
    if fileloc is not None:
        adag.fileloc = fileloc
    return adag
