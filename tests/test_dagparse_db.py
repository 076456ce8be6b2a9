"""The metadata-DB level: airflow-core 3.3.2 persists every native document as its DAG
processor would (one throw-away SQLite DB for all of them; migrating it is the slow part)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from dagparse_cases import build_case, load_cases, make_test_bundle
from oracle import ask, failures

from trio_coord.dagparse import serialize_dag
from trio_coord.loader import load_bundle

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
BUNDLE_NAME = "trio-bundle"


@pytest.fixture(scope="module")
def persisted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("dagparse-db")
    dags_file = root / "dags.py"
    # Airflow stores the text of each DAG's fileloc as its source code.
    dags_file.write_text("# trio-coord test DAGs (airflow dag file stand-in)\n")
    docs: dict[str, Any] = {}
    for case in load_cases():
        if not case.get("requires"):
            docs[case["dag_id"]] = serialize_dag(
                build_case(case), fileloc=str(dags_file), relative_fileloc="dags.py"
            )
    for dag_id, dag in make_test_bundle().dags.items():
        docs[dag_id] = serialize_dag(dag, fileloc=str(dags_file), relative_fileloc="dags.py")
    for example in sorted(EXAMPLES.glob("*.py")):
        copied = root / example.name
        shutil.copy(example, copied)
        for dag_id, dag in load_bundle(str(example)).dags.items():
            docs[dag_id] = serialize_dag(dag, fileloc=str(copied), relative_fileloc=example.name)
    answer = ask({"validate": docs, "db": {"bundle_name": BUNDLE_NAME, "bundle_path": str(root)}})
    return {"docs": docs, "answer": answer}


def test_every_document_is_persisted_without_import_errors(persisted: dict[str, Any]) -> None:
    """update_dag_parsing_results_in_db stores a dag, serialized_dag and code row for every document."""
    answer = persisted["answer"]
    assert failures(answer) == {}
    assert answer["db"]["errors"] == {}
    stored = answer["db"]["stored"]
    assert {k for k, v in stored.items() if v is not None} == set(persisted["docs"])


def test_persisted_rows_carry_what_trio_coord_declared(persisted: dict[str, Any]) -> None:
    """Queues, tags, owners, relative path and next run come out of the DB as declared."""
    stored = persisted["answer"]["db"]["stored"]
    full = stored["t_full"]
    assert full["queues"] == ["trio"]
    assert full["tags"] == ["etl", "trio"]
    assert full["owners"] == "data"
    assert full["max_active_runs"] == 1
    assert full["relative_fileloc"] == "dags.py"
    assert full["next_dagrun"][10:19] == "T03:00:00"  # cron "0 3 * * *", no catchup: from today
    assert stored["hello"]["queues"] == ["trio-coord"]
    assert stored["conformance_cron"]["tags"] == ["alpha", "gamma"]
    assert stored["t_groups"]["tasks"] == sorted(make_test_bundle().dags["t_groups"].tasks)
