"""trio-coord's native serialization judged by real airflow-core 3.3.2 (one oracle run for all).

Every native document (conformance cases, the dedicated test DAGs, the examples) must pass
L1 schema, L2 task lint, L3 ``DagSerialization.from_dict``, L4 ``LazyDeserializedDAG`` and
the wire decode; it must equal Python's serialization of the same DAG built with
``airflow.sdk`` (conformance) and of the export route read by Airflow's ``DagBag``.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
from dagparse_cases import (
    DATA,
    IGNORED_TASK_KEYS,
    GatedFeature,
    build_case,
    compare,
    load_cases,
    make_test_bundle,
)
from oracle import ask, failures

from trio_coord.dagparse import serialize_dag
from trio_coord.loader import load_bundle

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CASES = load_cases()
UNGATED = [c for c in CASES if not c.get("requires")]
GATED = [c for c in CASES if c.get("requires")]

#: Task keys that differ between the export route (``@task.stub`` operators) and the native
#: documents by design, each with its reason.
EXPORT_ROUTE_DIFFERENCES = {
    # The stub operator is Python's _StubOperator; native documents name trio-coord's
    # TrioOperator/trio_coord (ignored by the conformance rules already).
    "task_type",
    "_task_module",
    # @task.stub templates its callable's arguments; native tasks have no template fields.
    "template_fields",
    "op_args",
    "op_kwargs",
    "_operator_name",
    # The decorated-operator machinery records its callable (always the one placeholder
    # function) and how to render the templated arguments; native tasks have neither.
    "python_callable_name",
    "template_fields_renderers",
}

BUNDLE_FILE = '''
"""Test DAGs for the dagparse oracle: an Airflow DAG file exported with trio_coord.airflow."""
import sys
sys.path.insert(0, {tests!r})
from dagparse_cases import make_test_bundle
from trio_coord.airflow import export_dags

bundle = make_test_bundle()
export_dags(bundle, globals())
'''


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """All documents, and the oracle's one answer about them."""
    root = tmp_path_factory.mktemp("dagparse-oracle")
    bundle_file = root / "test_dags.py"
    bundle_file.write_text(BUNDLE_FILE.format(tests=str(Path(__file__).parent)))
    examples = root / "examples"
    examples.mkdir()
    native: dict[str, dict[str, Any]] = {}
    for case in UNGATED:
        native[case["dag_id"]] = serialize_dag(
            build_case(case), fileloc=str(bundle_file), relative_fileloc="test_dags.py"
        )
    for dag_id, dag in make_test_bundle().dags.items():
        native[dag_id] = serialize_dag(
            dag, fileloc=str(bundle_file), relative_fileloc="test_dags.py"
        )
    dagbag_files = [str(bundle_file)]
    for example in sorted(EXAMPLES.glob("*.py")):
        copied = examples / example.name
        shutil.copy(example, copied)
        dagbag_files.append(str(copied))
        for dag_id, dag in load_bundle(str(example)).dags.items():
            native[dag_id] = serialize_dag(dag, fileloc=str(copied), relative_fileloc=example.name)
    answer = ask({"validate": native, "conformance": str(DATA), "dagbag": dagbag_files})
    return {"native": native, "answer": answer}


def test_every_native_document_passes_every_level(world: dict[str, Any]) -> None:
    """Each native document passes L1 schema, L2 lint, L3 from_dict, L4 lazy view and the wire decode."""
    assert set(world["answer"]["levels"]) == set(world["native"])
    assert failures(world["answer"]) == {}


def test_the_oracle_rejects_a_broken_document(world: dict[str, Any]) -> None:
    """The oracle is not a rubber stamp: a wrapped start_date fails L1, an unknown downstream id L3."""
    doc = copy.deepcopy(world["native"]["t_full"])
    doc["dag"]["start_date"] = {"__type": "datetime", "__var": doc["dag"]["start_date"]}
    bad_edge = copy.deepcopy(world["native"]["t_minimal"])
    bad_edge["dag"]["tasks"][0]["__var"]["downstream_task_ids"] = ["nowhere"]
    answer = ask({"validate": {"wrapped": doc, "bad_edge": bad_edge}})
    assert answer["levels"]["wrapped"]["level"] == "L1"
    assert answer["levels"]["bad_edge"]["level"] == "L3"


@pytest.mark.parametrize("case", UNGATED, ids=[c["dag_id"] for c in UNGATED])
def test_conformance_case_equals_python(world: dict[str, Any], case: dict[str, Any]) -> None:
    """trio-coord's document for the case equals airflow.sdk's under the conformance rules."""
    answer = world["answer"]
    python = answer["python_docs"][case["dag_id"]]
    ours = world["native"][case["dag_id"]]
    diffs = compare(python, ours, answer["operator_defaults"])
    assert diffs == [], "\n".join(diffs)


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            c, marks=pytest.mark.xfail(strict=True, raises=GatedFeature, reason=c["missing"])
        )
        for c in GATED
    ],
    ids=[c["dag_id"] for c in GATED],
)
def test_gated_conformance_case(case: dict[str, Any]) -> None:
    """A gated case cannot be declared yet; it flips to a failure (strict xfail) when it can."""
    build_case(case)


def test_the_comparison_catches_a_difference(world: dict[str, Any]) -> None:
    """compare() reports a changed task value, a missing DAG key and a bool standing in for 1."""
    answer = world["answer"]
    python = answer["python_docs"]["conformance_cron"]
    ours = copy.deepcopy(world["native"]["conformance_cron"])
    ours["dag"]["tasks"][0]["__var"]["retries"] = 3
    del ours["dag"]["catchup"]
    ours["dag"]["max_active_runs"] = 3.0  # a number compares as a number: not a difference
    diffs = compare(python, ours, answer["operator_defaults"])
    assert any("extract.retries" in d for d in diffs)
    assert any("dag.catchup" in d for d in diffs)
    assert not any("max_active_runs" in d for d in diffs)
    ours["dag"]["max_active_tasks"] = True
    assert any("max_active_tasks" in d for d in compare(python, ours, answer["operator_defaults"]))


def test_export_route_builds_the_same_dags(world: dict[str, Any]) -> None:
    """Airflow's DagBag on the exported bundle and example files imports every DAG, without errors."""
    answer = world["answer"]
    assert answer["dagbag_errors"] == {}
    expected = set(make_test_bundle().dags) | {"hello", "report"}
    assert expected <= set(answer["dagbag_docs"])


@pytest.mark.parametrize("dag_id", [*sorted(make_test_bundle().dags), "hello", "report"])
def test_same_dag_two_routes(world: dict[str, Any], dag_id: str) -> None:
    """The export route as Python serializes it equals the native document on every compared field."""
    answer = world["answer"]
    python = answer["dagbag_docs"][dag_id]
    ours = world["native"][dag_id]
    ignored = IGNORED_TASK_KEYS | EXPORT_ROUTE_DIFFERENCES
    diffs = compare(python, ours, answer["operator_defaults"], ignored_task_keys=ignored)
    assert diffs == [], "\n".join(diffs)
