"""Drift between a DAG file and its packed bundle: the manifest's fingerprints and verify --dag-file.

Real files through the real CLI: one bundle is packed, then DAG files that differ from
it in one way each are compared with ``trio-coord verify BUNDLE --dag-file FILE``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
import trio.testing
import yaml
from bundle_helpers import packed, run_cli, scratch, write_bundle
from test_runtime import converse, startup

import trio_coord
from trio_coord.bundle import format as bundle_format

pytestmark = pytest.mark.timeout(300)

BASE = """
import trio_coord

bundle = trio_coord.Bundle("drifty", version="2.0.0")
etl = bundle.dag("etl")

@etl.task
def extract():
    pass

@etl.task(depends_on=[extract])
def transform():
    pass

@etl.task(depends_on=[transform])
def load():
    pass

other = bundle.dag("other")

@other.task
def alone():
    pass
"""


def packed_base() -> Path:
    return packed(write_bundle(scratch("drift-src"), "drifty", body=BASE), "drifty")


def verify(dag_file_body: str, name: str) -> tuple[int, list[str]]:
    file = write_bundle(scratch("drift-files"), name, body=dag_file_body)
    proc = run_cli("verify", str(packed_base()), "--dag-file", str(file))
    # The user's own traceback may be shown (it points at their line); trio-coord's never.
    assert "trio_coord/" not in proc.stdout + proc.stderr
    return proc.returncode, proc.stdout.splitlines()


def test_manifest_records_a_fingerprint_per_dag() -> None:
    """The packed manifest holds dag_fingerprints with each DAG's tasks, as YAML strings that read back."""
    read = bundle_format.read_bundle(packed_base())
    assert read is not None
    recorded = yaml.safe_load(read.metadata)["dag_fingerprints"]
    assert sorted(recorded) == ["etl", "other"]
    etl = json.loads(recorded["etl"])
    assert sorted(etl["tasks"]) == ["extract", "load", "transform"]


def test_same_file_has_no_drift() -> None:
    """The file the bundle was packed from matches it: exit 0."""
    code, out = verify(BASE, "same")
    assert code == 0, out
    assert "the same DAGs, tasks, dependencies and queues" in out[0]


def test_added_task_is_reported() -> None:
    """A task added to the DAG file but not packed is a difference: exit 1, the task named."""
    body = BASE + "\n@etl.task(depends_on=[load])\ndef publish():\n    pass\n"
    code, out = verify(body, "added")
    assert code == 1
    assert "  dag 'etl': task 'publish' added in the DAG file, not in the bundle" in out
    assert out[-1] == "1 difference(s) found"


def test_removed_task_is_reported() -> None:
    """A task the DAG file no longer has (still in the bundle) is a difference, with its rewiring."""
    body = BASE.replace(
        "@etl.task(depends_on=[transform])\ndef load():\n    pass\n",
        "",
    )
    code, out = verify(body, "removed")
    assert code == 1
    assert "  dag 'etl': task 'load' removed from the DAG file, still in the bundle" in out


def test_rewired_task_and_changed_queue_are_reported() -> None:
    """Every difference is listed: a changed upstream and a changed queue, each on its own line."""
    body = BASE.replace("depends_on=[transform]", "depends_on=[extract]").replace(
        "@other.task\n", '@other.task(queue="gpu")\n'
    )
    code, out = verify(body, "rewired")
    assert code == 1
    assert (
        "  dag 'etl': task 'load' rewired: upstream ['transform'] in the bundle, ['extract'] in the DAG file"
        in out
    )
    assert (
        "  dag 'other': task 'alone' queue changed: 'trio-coord' in the bundle, 'gpu' in the DAG file"
        in out
    )
    assert out[-1] == "2 difference(s) found"


def test_added_and_removed_dags_are_reported() -> None:
    """A whole DAG missing from, or new in, the DAG file is reported as such."""
    body = BASE.replace('other = bundle.dag("other")', 'other = bundle.dag("renamed")')
    code, out = verify(body, "renamed")
    assert code == 1
    assert "  dag 'renamed': in the DAG file, not in the bundle (added)" in out
    assert "  dag 'other': in the bundle, not in the DAG file (removed)" in out


def test_dag_file_that_does_not_import_is_a_clear_failure() -> None:
    """A DAG file that raises on import is a clear failure with the user's line, exit 1, no trio-coord frames."""
    code, out = verify(BASE + "\nraise RuntimeError('half edited')\n", "broken")
    assert code == 1
    assert any("does not import" in line for line in out)
    assert "RuntimeError: half edited" in out


def test_dag_file_needs_exactly_one_bundle(tmp_path: Path) -> None:
    """--dag-file with two bundles (or none) is a usage error, exit 2."""
    file = write_bundle(tmp_path, "x", body=BASE)
    proc = run_cli("verify", str(packed_base()), str(packed_base()), "--dag-file", str(file))
    assert proc.returncode == 2
    assert "exactly one BUNDLE" in proc.stderr


async def test_unknown_dag_fails_and_lists_the_dags(autojump_clock: trio.testing.MockClock) -> None:
    """A StartupDetails for a dag the bundle lacks fails the try and names the dags it holds."""
    bundle = trio_coord.Bundle("b", version="3.1")
    bundle.dag("alpha").task(task_id="t")(lambda: None)
    bundle.dag("beta").task(task_id="t")(lambda: None)
    code, sup, _ = await converse(bundle, [0, startup("t"), None])
    assert code == 0
    assert [(b["type"], b["state"]) for _, b, _ in sup.requests] == [("TaskState", "failed")]
    (line,) = [r["event"] for r in sup.log_records if "is not in bundle" in r["event"]]
    assert "dag 'd' is not in bundle 'b' version '3.1'" in line
    assert "which holds dags: alpha, beta;" in line
