"""examples/vocabulary_bundle.py, on every route: packed, parsed natively, exported to
airflow-core's DagBag, judged by the Airflow oracle, and run as a whole DAG locally."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from bundle_helpers import packed, run_cli, run_whole_dag
from dagparse_cases import EXPORT_ROUTE_DIFFERENCES, IGNORED_TASK_KEYS, compare
from oracle import ask, failures

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "vocabulary_bundle.py"
DAGS = ("shop_orders", "shop_report")


@pytest.fixture(scope="module")
def native() -> dict[str, Any]:
    """The documents the *packed* bundle's own parse workload gives (``trio-coord dags --json``)."""
    bundle = packed(EXAMPLE, "vocabulary")
    proc = run_cli("dags", str(bundle), "--json", timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    docs: dict[str, Any] = json.loads(proc.stdout)
    return docs


def test_packs_and_parses_natively(native: dict[str, Any]) -> None:
    """The packed bundle declares both DAGs; the mapped tasks are mapped operators with their expand inputs."""
    assert set(native) == set(DAGS)
    tasks = {t["__var"]["task_id"]: t["__var"] for t in native["shop_orders"]["dag"]["tasks"]}
    mapped = {tid for tid, t in tasks.items() if t.get("_is_mapped")}
    assert mapped == {"check", "per_region.count_orders", "per_region.price"}
    assert tasks["landing_file"]["_is_sensor"] is True
    assert tasks["landing_file"]["reschedule"] is True
    assert tasks["per_region.price"]["op_kwargs_expand_input"]["value"]["__var"]["count"] == {
        "__type": "xcomref",
        "__var": {"key": "return_value", "task_id": "per_region.count_orders"},
    }


def test_the_oracle_accepts_it_and_the_export_route_matches(
    native: dict[str, Any], tmp_path: Path
) -> None:
    """airflow-core 3.3.2 accepts each native document at every level; its DagBag imports the
    file without errors, and the export route serializes to the same DAGs."""
    copied = tmp_path / EXAMPLE.name
    shutil.copy(EXAMPLE, copied)
    answer = ask({"validate": native, "dagbag": [str(copied)]})
    assert failures(answer) == {}
    assert answer["dagbag_errors"] == {}
    ignored = IGNORED_TASK_KEYS | EXPORT_ROUTE_DIFFERENCES
    for dag_id in DAGS:
        python = answer["dagbag_docs"][dag_id]
        diffs = compare(
            python, native[dag_id], answer["operator_defaults"], ignored_task_keys=ignored
        )
        assert diffs == [], f"{dag_id}:\n" + "\n".join(diffs)


def test_whole_dag_runs_locally_as_airflow_would() -> None:
    """``trio-coord run ... shop_orders --no-wait``: sensor rescheduled then done, mapping
    expanded (literal, upstream output, mapped over mapped), the branch skips ``hold``, the
    deferral resumes in its own function, the run triggers ``shop_report``; the run succeeds."""
    report, rows, status = run_whole_dag(EXAMPLE, "shop_orders")
    states = {key: row["state"] for key, row in rows.items()}
    assert states == {
        ("landing_file", -1): "success",
        **{("check", i): "success" for i in range(3)},
        ("list_regions", -1): "success",
        **{("per_region.count_orders", i): "success" for i in range(3)},
        **{("per_region.price", i): "success" for i in range(3)},
        ("total", -1): "success",
        ("choose", -1): "success",
        ("hold", -1): "skipped",
        ("cool_down", -1): "success",
        ("publish", -1): "success",
        ("worth_reporting", -1): "success",
        ("kick_report", -1): "success",
    }, rows
    assert rows[("landing_file", -1)]["tries"] == 2  # one reschedule
    assert rows[("cool_down", -1)]["tries"] == 2  # deferred, then resumed
    assert rows[("cool_down", -1)]["xcoms"]["return_value"] == "cool-down"
    assert rows[("list_regions", -1)]["xcoms"]["return_value"] == ["EU", "US", "APAC"]
    # count = 3 * (len(region) + 1); price = count * 2.5; the total adds the three prices.
    counts = [rows[("per_region.count_orders", i)]["xcoms"]["return_value"] for i in range(3)]
    assert counts == [9, 9, 15]
    assert rows[("total", -1)]["xcoms"]["return_value"] == sum(c * 2.5 for c in counts)
    assert rows[("check", 2)]["xcoms"]["return_value"] == "duplicates: ok"
    assert "trigger_run_id" in rows[("kick_report", -1)]["xcoms"]
    assert (report["state"], report["status"], status) == ("success", 0, 0)
