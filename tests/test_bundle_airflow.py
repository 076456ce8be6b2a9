"""One file, both sides: Airflow 3.3.2's own DagBag sees stub DAGs; everything else sees a plain bundle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from bundle_helpers import EXAMPLE, run_airflow_script, write_bundle

DAGBAG = r"""
import json, os, sys, tempfile
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp())
if "--no-trio" in sys.argv:
    sys.modules["trio"] = None  # any "import trio" now fails
from pathlib import Path
from airflow.dag_processing.dagbag import DagBag
path = Path(sys.argv[1])
bag = DagBag(dag_folder=str(path), bundle_path=path.parent)
out = {"errors": bag.import_errors, "dags": {}}
for dag in bag.dags.values():
    out["dags"][dag.dag_id] = {
        "fileloc": dag.fileloc, "schedule": str(dag.schedule), "start_date": str(dag.start_date),
        "tags": sorted(dag.tags), "catchup": dag.catchup,
        "tasks": {t.task_id: {"queue": t.queue, "retries": t.retries, "upstream": sorted(t.upstream_task_ids),
                              "type": type(t).__name__, "doc": t.doc} for t in dag.tasks},
    }
print("@@" + json.dumps(out))
"""


def dagbag(path: Path, *flags: str) -> dict:  # type: ignore[type-arg]
    return run_airflow_script(DAGBAG, str(path), *flags)  # type: ignore[no-any-return]


MULTI = '''
"""A bundle with two DAGs, YAML-hostile ids and per-task settings (an Airflow DAG file)."""
import datetime
import trio_coord
from trio_coord.airflow import export_dags

bundle = trio_coord.Bundle("multi", version="2.0")
etl = bundle.dag("etl", schedule="@hourly", start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
                 tags=["a", "b"], retries=2, queue="trio")
num = bundle.dag("123", schedule=None, start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc))

@etl.task
def extract():
    return 1

@etl.task(retries=0, queue="other-queue")
def transform():
    pass

@etl.task(task_id="true")
def load():
    pass

extract >> transform >> load
[extract] >> load

@num.task
def only():
    pass

export_dags(bundle, globals())
'''


@pytest.mark.slow
def test_example_bundle_is_an_airflow_dag_file() -> None:
    """DagBag imports examples/hello_bundle.py: dag 'hello', its three stub tasks on the trio-coord queue, no errors."""
    out = dagbag(EXAMPLE)
    assert out["errors"] == {}
    hello = out["dags"]["hello"]
    assert set(out["dags"]) == {"hello"}
    assert hello["schedule"] == "@daily" and hello["start_date"].startswith("2026-01-01")
    assert hello["tags"] == ["example", "trio-coord"] and hello["fileloc"] == str(EXAMPLE)
    assert hello["tasks"]["shout"]["upstream"] == ["greet"]
    for task in hello["tasks"].values():
        assert (task["queue"], task["retries"], task["type"]) == ("trio-coord", 1, "_StubOperator")
    assert hello["tasks"]["greet"]["doc"].startswith("Read a variable")


@pytest.mark.slow
def test_ids_dependencies_queues_and_retries_as_declared(tmp_path: Path) -> None:
    """Two DAGs, a numeric dag id, a task named 'true', per-task queue/retries and edges all reach Airflow."""
    path = write_bundle(tmp_path, body=MULTI, filename="multi_dag.py")
    out = dagbag(path, "--no-trio")
    assert out["errors"] == {}
    assert set(out["dags"]) == {"etl", "123"}
    etl = out["dags"]["etl"]["tasks"]
    assert etl["extract"] == {
        "queue": "trio",
        "retries": 2,
        "upstream": [],
        "type": "_StubOperator",
        "doc": None,
    }
    assert (
        etl["transform"]["queue"],
        etl["transform"]["retries"],
        etl["transform"]["upstream"],
    ) == ("other-queue", 0, ["extract"])
    assert etl["true"]["upstream"] == ["extract", "transform"]
    assert out["dags"]["etl"]["tags"] == ["a", "b"] and out["dags"]["etl"]["schedule"] == "@hourly"
    assert list(out["dags"]["123"]["tasks"]) == ["only"]


def test_import_without_airflow_works_and_exports_nothing(tmp_path: Path) -> None:
    """Where Airflow cannot be imported, the bundle file imports, export_dags returns {} and loads neither airflow nor trio."""
    path = write_bundle(tmp_path, body=MULTI, filename="multi_dag.py")
    code = (
        "import sys, runpy; sys.modules['airflow'] = None\n"
        f"ns = runpy.run_path({str(path)!r})\n"
        "print(sorted(ns['bundle'].dags), [k for k in ns if k.startswith('airflow_dag__')],"
        " 'airflow' in sys.modules and sys.modules['airflow'] is not None, 'trio' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['123', 'etl'] [] False False"


def test_export_is_a_no_op_unless_airflow_is_already_loaded(tmp_path: Path) -> None:
    """With Airflow installed but not imported (the runtime's case), importing the bundle does not import it."""
    path = write_bundle(tmp_path, body=MULTI, filename="multi_dag.py")
    code = f"import runpy, sys; runpy.run_path({str(path)!r}); print('airflow' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout.strip()) == (0, "False"), proc.stderr
