"""Drift between the DAG file the scheduler reads and the bundle the worker runs.

On Airflow 3.3.2 the scheduler learns a DAG's structure from the bundle's Python file
(imported by the DAG processor) while the worker runs the packed bundle. If the file
is edited and the bundle not repacked (or the other way round), the scheduler asks
for tasks the bundle does not hold, or wires them differently. ``trio-coord pack``
records each DAG's structural fingerprint in the manifest (``dag_fingerprints``: dag
id -> canonical JSON of ``dag_fingerprint`` over the serialized DAG); this module
computes the same fingerprints for a loaded bundle and lists every difference.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..authoring import Bundle

__all__ = ["fingerprints", "differences"]


def fingerprints(bundle: Bundle) -> dict[str, str]:
    """dag id -> the canonical JSON text of its fingerprint, for each DAG that serializes."""
    from ..dagparse import canonical_json, dag_fingerprint, serialize_bundle

    documents, _ = serialize_bundle(
        bundle, fileloc=f"{bundle.name}.py", relative_fileloc=f"{bundle.name}.py"
    )
    return {
        dag_id: canonical_json(dag_fingerprint(doc)).decode("utf-8")
        for dag_id, doc in documents.items()
    }


def _tasks(fingerprint: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    tasks = fingerprint.get("tasks")
    if isinstance(tasks, Mapping):
        return {str(k): dict(v) if isinstance(v, Mapping) else {} for k, v in tasks.items()}
    return {}


def differences(bundle: Mapping[str, str], dag_file: Mapping[str, str]) -> list[str]:
    """Every way ``dag_file``'s DAGs differ from ``bundle``'s, one readable line each.

    Both map dag id -> fingerprint JSON text (as the manifest stores it).
    """
    out: list[str] = []
    for dag_id in sorted(dag_file.keys() - bundle.keys()):
        out.append(f"dag {dag_id!r}: in the DAG file, not in the bundle (added)")
    for dag_id in sorted(bundle.keys() - dag_file.keys()):
        out.append(f"dag {dag_id!r}: in the bundle, not in the DAG file (removed)")
    for dag_id in sorted(bundle.keys() & dag_file.keys()):
        if bundle[dag_id] == dag_file[dag_id]:
            continue
        old, new = _tasks(json.loads(bundle[dag_id])), _tasks(json.loads(dag_file[dag_id]))
        where = f"dag {dag_id!r}"
        for task_id in [t for t in new if t not in old]:
            out.append(f"{where}: task {task_id!r} added in the DAG file, not in the bundle")
        for task_id in [t for t in old if t not in new]:
            out.append(f"{where}: task {task_id!r} removed from the DAG file, still in the bundle")
        for task_id in [t for t in new if t in old]:
            was, now = old[task_id], new[task_id]
            if sorted(was.get("upstream") or []) != sorted(now.get("upstream") or []):
                out.append(
                    f"{where}: task {task_id!r} rewired: upstream {sorted(was.get('upstream') or [])}"
                    f" in the bundle, {sorted(now.get('upstream') or [])} in the DAG file"
                )
            if was.get("queue") != now.get("queue"):
                out.append(
                    f"{where}: task {task_id!r} queue changed: {was.get('queue')!r} in the bundle,"
                    f" {now.get('queue')!r} in the DAG file"
                )
        if not any(line.startswith(where + ":") for line in out):
            out.append(f"{where}: structure differs (fingerprints differ)")
    return out
