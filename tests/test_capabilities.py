"""capabilities.yaml claims only what a test shows.

The file is the machine-readable answer to Airflow's language-SDK conformance list. A claim is
only as good as the test behind it, so: every state and capability of the list is present (no
more, no fewer), every supported entry names at least one test, every named test exists in the
suite (found by reading the test file, parametrized tests included), and an unsupported entry
says why.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
FILE = ROOT / "capabilities.yaml"

#: Airflow's conformance dimensions, in its order: the states a runtime can end a try in and the
#: capabilities an SDK can claim.
STATES = (
    "success",
    "failed",
    "up_for_retry",
    "skipped",
    "deferred",
    "up_for_reschedule",
    "awaiting_input",
    "removed",
)
CAPABILITIES = (
    "mixed-lang-stub-target",
    "taskflow-binding",
    "task-logging",
    "xcom-read-write",
    "connection-read",
    "variable-read-write",
    "self-contained-bundle",
    "retry-policy",
    "task-state-store",
    "asset-state-store",
    "asset-event-emit",
    "asset-event-read",
    "native-dag-authoring",
    "task-args",
    "dag-params",
    "taskflow-dependencies",
    "branching",
    "dag-test",
    "task-group",
    "dynamic-task-mapping",
    "asset-inlets-outlets",
    "asset-scheduling",
    "object-store",
)


def _load() -> dict[str, Any]:
    data = yaml.safe_load(FILE.read_text())
    if not isinstance(data, dict):
        raise AssertionError("capabilities.yaml is not a mapping")
    return data


def _entries() -> list[tuple[str, str, dict[str, Any]]]:
    data = _load()
    return [
        (section, name, entry)
        for section in ("states", "capabilities")
        for name, entry in data[section].items()
    ]


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
    }


def test_every_dimension_of_the_conformance_list_is_answered_once() -> None:
    data = _load()
    assert tuple(data["states"]) == STATES
    assert tuple(data["capabilities"]) == CAPABILITIES


def test_the_declared_schema_version_is_the_one_the_runtime_sends() -> None:
    from trio_coord.bundle.manifest import SUPERVISOR_SCHEMA_VERSION

    assert _load()["supervisor_schema_version"] == SUPERVISOR_SCHEMA_VERSION


@pytest.mark.parametrize(("section", "name", "entry"), _entries(), ids=lambda v: str(v)[:40])
def test_each_entry_is_backed(section: str, name: str, entry: dict[str, Any]) -> None:
    assert isinstance(entry.get("supported"), bool), f"{section}.{name}: supported must be a bool"
    tests = entry.get("tests") or []
    if not entry["supported"]:
        assert entry.get("note"), f"{section}.{name}: an unsupported entry must say why"
        assert not tests, f"{section}.{name}: unsupported, yet it names tests"
        return
    assert tests, f"{section}.{name} is claimed supported but names no test"
    for ref in tests:
        file, _, test = ref.partition("::")
        path = ROOT / file
        assert path.is_file(), f"{section}.{name}: {file} does not exist"
        assert test in _test_names(path), f"{section}.{name}: {ref} is not a test in {file}"


def test_the_checker_catches_a_claim_without_a_test(tmp_path: Path) -> None:
    """The rule above, applied to a made-up entry, must fail: the check is not vacuous."""
    with pytest.raises(AssertionError, match="names no test"):
        test_each_entry_is_backed("capabilities", "branching", {"supported": True})
    with pytest.raises(AssertionError, match="is not a test"):
        test_each_entry_is_backed(
            "capabilities",
            "branching",
            {"supported": True, "tests": ["tests/test_capabilities.py::test_no_such_thing"]},
        )
