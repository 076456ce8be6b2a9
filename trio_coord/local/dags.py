"""``trio-coord dags``: the DAGs a bundle declares, as Airflow's DAG processor would get them.

The bundle (a source file or a packed executable) is run in its own process through its
parse workload (``local/parse.py``), so the summary and the JSON are built from the very
documents a DAG processor would store, without Airflow installed. Exit codes: 0 every
DAG serialized; 1 the bundle or a DAG failed (import errors are printed), or ``--dag-id``
names no DAG of the bundle; 2 usage (no such file).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "summary"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``trio-coord dags``."""
    parser.add_argument(
        "bundle", metavar="BUNDLE", help="a bundle source file (FILE.py) or a packed bundle"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the serialized DAG documents (dag id -> document; one document with --dag-id)",
    )
    parser.add_argument("--dag-id", metavar="ID", help="only this DAG")
    parser.add_argument(
        "--timeout", type=float, default=60.0, metavar="S", help="give up after S seconds"
    )
    parser.set_defaults(handler=_main)


def _schedule(dag: dict[str, Any]) -> str:
    timetable = dag.get("timetable") or {}
    var = timetable.get("__var") or {}
    kind = str(timetable.get("__type", "")).rsplit(".", 1)[-1]
    if kind == "NullTimetable":
        return "none (triggered only)"
    if "expression" in var:
        return f"{var['expression']} ({var.get('timezone', 'UTC')})"
    if "delta" in var:
        return f"every {var['delta']} s"
    return kind or "?"


def summary(documents: dict[str, dict[str, Any]]) -> str:
    """A readable listing: each DAG's schedule, then its tasks with queue and upstream."""
    from ..dagparse import dag_fingerprint

    out: list[str] = []
    for dag_id, doc in documents.items():
        dag = doc["dag"]
        out.append(f"dag {dag_id}")
        out.append(f"  schedule: {_schedule(dag)}")
        if isinstance(dag.get("start_date"), int | float):
            start = datetime.datetime.fromtimestamp(dag["start_date"], datetime.UTC)
            out.append(f"  start_date: {start.isoformat()}")
        if dag.get("tags"):
            out.append(f"  tags: {', '.join(sorted(dag['tags']))}")
        tasks = dag_fingerprint(doc)["tasks"]
        out.append(f"  tasks ({len(tasks)}):")
        width = max((len(t) for t in tasks), default=0)
        for task_id, info in tasks.items():
            after = f"  after {', '.join(info['upstream'])}" if info["upstream"] else ""
            out.append(f"    {task_id:<{width}}  queue {info['queue']}{after}")
    return "\n".join(out) + "\n"


def _main(ns: argparse.Namespace) -> int:
    from ..errors import UsageError
    from .parse import parse_bundle

    path = Path(ns.bundle)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    outcome = parse_bundle(str(path), timeout=ns.timeout)
    result = outcome.result
    if result is None:
        detail = outcome.problem or f"it exited with {outcome.exit_code} without a result"
        sys.stderr.write(f"error: {path} answered no DAG parse: {detail}\n")
        if outcome.log_text():
            sys.stderr.write(outcome.log_text() + "\n")
        return 1
    documents = {
        str(entry["data"]["dag"]["dag_id"]): entry["data"]
        for entry in result.get("serialized_dags") or []
    }
    errors: dict[str, str] = result.get("import_errors") or {}
    for key, text in errors.items():
        sys.stderr.write(f"import error in {key}:\n{text}\n")
    if ns.dag_id is not None:
        if ns.dag_id not in documents:
            held = ", ".join(documents) or "none"
            sys.stderr.write(f"error: {path} has no DAG {ns.dag_id!r} (it has: {held})\n")
            return 1
        documents = {ns.dag_id: documents[ns.dag_id]}
    if ns.json:
        doc: Any = documents[ns.dag_id] if ns.dag_id is not None else documents
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(summary(documents))
    return 1 if errors else 0
