"""The port proof: an Airflow 3 TaskFlow DAG becomes a trio-coord bundle by changing imports
and decorators only (plus declaring the bundle and exporting it), and gives the same DAG.

examples/airflow_port/airflow_dag.py is written against the real ``airflow.sdk``;
trio_coord_dag.py is its port. The checks: the textual difference, the task ids and
dependencies of both (the original built by ``airflow.sdk`` itself), and the port run as a
whole DAG locally.
"""

from __future__ import annotations

import ast
import difflib
import re
from pathlib import Path

from bundle_helpers import run_whole_dag
from test_bundle_airflow import dagbag

from trio_coord.loader import load_bundle

PORT_DIR = Path(__file__).resolve().parents[1] / "examples" / "airflow_port"
ORIGINAL = PORT_DIR / "airflow_dag.py"
PORT = PORT_DIR / "trio_coord_dag.py"

#: The lines a port may change: imports, decorators, the bundle and its export.
ALLOWED = [
    re.compile(r"^(from \S+ import .+|import \S+)$"),
    re.compile(r"^\s*@\S"),
    re.compile(r"^bundle = Bundle\(.*\)$"),
    re.compile(r"^export_dags\(bundle, globals\(\)\)$"),
    re.compile(r"^$"),
]


def _code_lines(path: Path) -> list[str]:
    """The file's lines after its module docstring (which describes the file, not the DAG)."""
    text = path.read_text()
    body = ast.parse(text).body
    first = body[0]
    skip = first.end_lineno if isinstance(first, ast.Expr) else 0
    return text.splitlines()[skip or 0 :]


def _not_allowed(original: Path, port: Path) -> tuple[list[str], list[str]]:
    """(every changed line, the changed lines no rule allows)."""
    diff = difflib.ndiff(_code_lines(original), _code_lines(port))
    changed = [line[2:] for line in diff if line[:2] in ("- ", "+ ")]
    return changed, [line for line in changed if not any(p.match(line) for p in ALLOWED)]


def test_only_imports_decorators_and_bundle_lines_differ() -> None:
    """Every line the port adds or removes is an import, a decorator, the bundle declaration or the export."""
    changed, others = _not_allowed(ORIGINAL, PORT)
    assert others == []
    assert "@dag(" in changed and "@bundle.dag(" in changed
    assert "export_dags(bundle, globals())" in changed


def test_the_diff_check_catches_a_body_change(tmp_path: Path) -> None:
    """The check is not a rubber stamp: a port that also changes a task body is reported."""
    edited = tmp_path / "edited.py"
    text = PORT.read_text()
    assert "return len(summary" in text
    edited.write_text(text.replace("return len(summary", "return 1 + len(summary"))
    _changed, others = _not_allowed(ORIGINAL, edited)
    assert sorted(others) == [
        '        return 1 + len(summary["low"])',
        '        return len(summary["low"])',
    ]


def test_same_task_ids_and_dependencies_as_airflow() -> None:
    """Airflow's DagBag (airflow.sdk) on the original and trio-coord's DAG from the port: same tasks, edges, mapped tasks."""
    out = dagbag(ORIGINAL)
    assert out["errors"] == {}
    original = out["dags"]["inventory"]["tasks"]
    assert original["feed_ready"]["type"] == "DecoratedSensorOperator"
    dag = load_bundle(str(PORT)).dags["inventory"]
    assert {tid: sorted(t.upstream) for tid, t in dag.tasks.items()} == {
        tid: t["upstream"] for tid, t in original.items()
    }
    mapped = sorted(tid for tid, t in original.items() if t["type"].endswith("MappedOperator"))
    assert mapped == ["count_stock"]
    assert sorted(tid for tid, t in dag.tasks.items() if t.is_mapped) == mapped
    assert dag.tasks["feed_ready"].kind == "sensor" and dag.tasks["route"].kind == "branch"


def test_the_port_runs_as_a_whole_dag_locally() -> None:
    """``trio-coord run trio_coord_dag.py inventory --no-wait``: mapped over three warehouses, the audit finds one low, the branch restocks and skips all_good."""
    report, rows, status = run_whole_dag(PORT, "inventory")
    states = {key: row["state"] for key, row in rows.items()}
    assert states == {
        ("feed_ready", -1): "success",
        ("list_warehouses", -1): "success",
        **{("count_stock", i): "success" for i in range(3)},
        ("audit.below_minimum", -1): "success",
        ("audit.summarize", -1): "success",
        ("route", -1): "success",
        ("restock", -1): "success",
        ("all_good", -1): "skipped",
        ("report", -1): "success",
    }, rows
    xcoms = {tid: row["xcoms"] for (tid, index), row in rows.items() if index < 0}
    # 7 items a character of the name: only "feed-2026/east" (98) is below the minimum 100.
    assert xcoms["audit.summarize"]["return_value"] == {
        "low": ["feed-2026/east"],
        "needs_restock": True,
    }
    assert xcoms["restock"]["return_value"] == 1
    assert (report["state"], status) == ("success", 0)
