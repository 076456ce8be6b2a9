"""``trio-coord dags`` through the real CLI, on a source file and on a packed bundle.

The JSON documents are loaded with airflow-core 3.3.2's own ``DagSerialization.from_dict``
in a separate interpreter, so what the command prints is what Airflow accepts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from bundle_helpers import packed, run_cli, scratch, write_bundle

pytestmark = pytest.mark.timeout(300)

FLOWS = """
import datetime
import trio_coord

bundle = trio_coord.Bundle("flows", version="1.2.0")
etl = bundle.dag("etl", schedule="0 3 * * *",
                 start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC), tags=["trio"])

@etl.task
def extract():
    return 1

@etl.task(depends_on=[extract])
def load():
    return 2

report = bundle.dag("report")

@report.task(queue="trio-reports")
async def mail():
    pass
"""

LOAD_IN_AIRFLOW = """
import json, sys
from airflow.serialization.serialized_objects import DagSerialization
docs = json.load(sys.stdin)
for dag_id, doc in docs.items():
    dag = DagSerialization.from_dict(doc)
    print(dag_id, sorted((t.task_id, sorted(t.upstream_task_ids), t.queue) for t in dag.tasks))
"""


def flows() -> Path:
    return write_bundle(scratch("dags-cli"), "flows", body=FLOWS)


def test_summary_of_a_source_file() -> None:
    """The readable summary lists each DAG's schedule, tasks, queues and dependencies; exit 0."""
    proc = run_cli("dags", str(flows()))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:4] == [
        "dag etl",
        "  schedule: 0 3 * * * (UTC)",
        "  start_date: 2026-01-01T00:00:00+00:00",
        "  tags: trio",
    ]
    assert "    load     queue trio-coord  after extract" in lines
    assert "    mail  queue trio-reports" in lines


def test_json_of_a_packed_bundle_loads_in_airflow() -> None:
    """--json on a packed bundle prints documents that airflow-core's DagSerialization.from_dict loads."""
    bundle = packed(flows(), "dags-cli-flows")
    proc = run_cli("dags", str(bundle), "--json")
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    assert sorted(docs) == ["etl", "report"]
    loaded = subprocess.run(
        [sys.executable, "-c", LOAD_IN_AIRFLOW],
        input=proc.stdout,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.splitlines() == [
        "etl [('extract', [], 'trio-coord'), ('load', ['extract'], 'trio-coord')]",
        "report [('mail', [], 'trio-reports')]",
    ]


def test_dag_id_selects_one_document() -> None:
    """--dag-id with --json prints that DAG's document alone."""
    proc = run_cli("dags", str(flows()), "--json", "--dag-id", "report")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["dag"]["dag_id"] == "report"


def test_dag_id_limits_the_summary() -> None:
    """--dag-id without --json summarizes that DAG alone."""
    proc = run_cli("dags", str(flows()), "--dag-id", "report")
    assert proc.returncode == 0, proc.stderr
    assert [line for line in proc.stdout.splitlines() if line.startswith("dag ")] == ["dag report"]


def test_unknown_dag_id_lists_the_dags() -> None:
    """An unknown --dag-id exits 1 and names the DAGs the bundle has."""
    proc = run_cli("dags", str(flows()), "--dag-id", "nope")
    assert proc.returncode == 1
    assert "has no DAG 'nope' (it has: etl, report)" in proc.stderr


def test_bundle_that_does_not_import_is_reported(tmp_path: Path) -> None:
    """A bundle that raises on import exits 1 with the user's error and no trio-coord frames."""
    file = write_bundle(tmp_path, "broken", body=FLOWS + "\nraise KeyError('oops')\n")
    proc = run_cli("dags", str(file))
    assert proc.returncode == 1
    assert "import error in broken.py:" in proc.stderr
    assert "KeyError: 'oops'" in proc.stderr
    assert "trio_coord/" not in proc.stderr


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    """A path that is not a file exits 2 with one line."""
    proc = run_cli("dags", str(tmp_path / "nope.py"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"trio-coord dags: error: {tmp_path / 'nope.py'}: no such file"
