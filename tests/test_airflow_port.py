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
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from bundle_helpers import run_cli

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

AIRFLOW_SIDE = r"""
import json, runpy, sys
ns = runpy.run_path(sys.argv[1])
dag = ns["inventory"]()  # the @dag function builds the DAG, as the DAG processor's import does
print("@@" + json.dumps({
    "tasks": {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks},
    "mapped": sorted(t.task_id for t in dag.tasks if type(t).__name__.endswith("MappedOperator")),
    "params": dict(dag.params), "schedule": str(dag.schedule),
}))
"""


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
    assert sorted(others) == ['        return 1 + len(summary["low"])', '        return len(summary["low"])']


def _airflow_dag() -> dict:  # type: ignore[type-arg]
    env = {**os.environ, "AIRFLOW_HOME": tempfile.mkdtemp()}
    proc = subprocess.run(
        [sys.executable, "-c", AIRFLOW_SIDE, str(ORIGINAL)],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert "@@" in proc.stdout, proc.stderr[-3000:]
    return json.loads(proc.stdout.split("@@", 1)[1])  # type: ignore[no-any-return]


def test_same_task_ids_and_dependencies_as_airflow() -> None:
    """airflow.sdk's DAG from the original and trio-coord's from the port: same tasks, edges, mapped tasks and params."""
    original = _airflow_dag()
    dag = load_bundle(str(PORT)).dags["inventory"]
    ported = {tid: sorted(t.upstream) for tid, t in dag.tasks.items()}
    assert ported == original["tasks"]
    assert sorted(tid for tid, t in dag.tasks.items() if t.is_mapped) == original["mapped"]
    assert original["mapped"] == ["count_stock"]
    assert {k: p.default for k, p in dag.params.items()} == original["params"]


def test_the_port_runs_as_a_whole_dag_locally() -> None:
    """``trio-coord run trio_coord_dag.py inventory --no-wait``: mapped over three warehouses, the audit finds one low, the branch restocks and skips all_good."""
    proc = run_cli("run", str(PORT), "inventory", "--no-wait", "--json", timeout=600)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    states = {(t["task_id"], t["map_index"]): t["state"] for t in report["task_instances"]}
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
    }, proc.stderr[-3000:]
    xcoms = {t["task_id"]: t["xcoms"] for t in report["task_instances"] if t["map_index"] < 0}
    # 7 items a character of the name: only "feed-2026/east" (98) is below the minimum 100.
    assert xcoms["audit.summarize"]["return_value"] == {
        "low": ["feed-2026/east"],
        "needs_restock": True,
    }
    assert xcoms["restock"]["return_value"] == 1
    assert (report["state"], proc.returncode) == ("success", 0)
