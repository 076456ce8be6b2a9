"""Branch and short-circuit tasks: the graph they read, what they send, in which order.

The supervised tests run ``tests/airflow_harness/bundle_branching.py`` under the REAL
1.3.2 supervisor and check the Execution API calls it makes: the skipmixin XCom, the
``PATCH .../skip-downstream`` body, and that both come before the success PATCH.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow_harness.harness import HERE, TI_ID, Report, supervise
from bundle_helpers import run_airflow_script

import trio_coord
from trio_coord.authoring.graph import descendants, downstream, group_roots
from trio_coord.errors import UsageError
from trio_coord.local import main
from trio_coord.runtime.branching import InvalidBranch, branch_ids

BUNDLE = f"{HERE / 'bundle_branching.py'}:bundle"
SKIP_PATH = f"/task-instances/{TI_ID}/skip-downstream"
STATE_PATH = f"/task-instances/{TI_ID}/state"


def _dag() -> trio_coord.Dag:
    import importlib.util

    spec = importlib.util.spec_from_file_location("bundle_branching", HERE / "bundle_branching.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.d1  # type: ignore[no-any-return]


def _order(r: Report) -> list[str]:
    return [f"{c['method']} {c['path']}" for c in r.calls if c["method"] != "PUT"]


# -- the graph and the branch value (pure) --------------------------------------------------


def test_downstream_and_descendants_follow_the_declared_edges() -> None:
    """downstream is one edge away, descendants everything reachable, both in declaration order."""
    d = _dag()
    assert [t.task_id for t in downstream(d.tasks["pick"])] == [
        "left",
        "right",
        "join",
        "grp.first",
    ]
    assert [t.task_id for t in descendants(d.tasks["gate"])] == ["after_gate", "later"]
    assert [t.task_id for t in descendants(d.tasks["left"])] == ["join"]
    assert descendants(d.tasks["later"]) == []
    assert group_roots(d, "grp") == ["grp.first"]
    assert group_roots(d, "nope") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, set()),
        ("left", {"left"}),
        (["left", "right"], {"left", "right"}),
        (("right",), {"right"}),
        ("grp", {"grp.first"}),
        (["grp", "left"], {"grp.first", "left"}),
    ],
)
def test_branch_values_name_tasks_or_groups(value: Any, expected: set[str]) -> None:
    """A branch value is an id, a group id (its roots), a list of them, or None."""
    assert branch_ids(_dag().tasks["pick"], value) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("nowhere", "does not have: 'nowhere'"),
        (["left", 3], "non-string ids 3 (int)"),
        (7, "returned a int"),
        ({"left": 1}, "returned a dict"),
    ],
)
def test_bad_branch_values_are_refused_with_what_is_accepted(value: Any, fragment: str) -> None:
    """An unknown id or a value of the wrong type raises InvalidBranch naming the problem."""
    with pytest.raises(InvalidBranch, match=r"a task id|does not have") as info:
        branch_ids(_dag().tasks["pick"], value)
    assert fragment in str(info.value)


def test_short_circuit_option_must_be_a_bool() -> None:
    """ignore_downstream_trigger_rules takes True or False only, refused at declaration."""
    d = trio_coord.Bundle("b").dag("d")
    with pytest.raises(UsageError, match="ignore_downstream_trigger_rules must be True or False"):

        @d.task.short_circuit(ignore_downstream_trigger_rules="yes")  # type: ignore[arg-type]
        def gate() -> bool:
            return True


# -- under the real supervisor -------------------------------------------------------------


@pytest.mark.supervisor
def test_branch_skips_the_direct_downstream_not_followed_before_success() -> None:
    """Following right and a group: followed XCom, skip of left and join as (id, -1), then success."""
    r = supervise("pick", bundle=BUNDLE, conf={"mode": "slow"})
    assert (r.exit_code, r.final_state) == (0, "success")
    (skip,) = r.api("PATCH", SKIP_PATH)
    assert skip["body"] == {"tasks": [["left", -1], ["join", -1]]}
    assert r.xcoms == {"d1/r1/pick/skipmixin_key": {"followed": ["right", "grp.first"]}}
    order = _order(r)
    xcom = "POST /xcoms/d1/r1/pick/skipmixin_key"
    assert (
        order.index(xcom) < order.index(f"PATCH {SKIP_PATH}") < order.index(f"PATCH {STATE_PATH}")
    )
    assert [p["state"] for p in r.state_patches] == ["success"]
    assert "skipping downstream tasks: left, join" in r.events()


@pytest.mark.supervisor
def test_branch_keeps_a_join_downstream_of_the_followed_task() -> None:
    """Following left keeps join (downstream of left) and skips right and the group's root."""
    r = supervise("pick", bundle=BUNDLE)
    (skip,) = r.api("PATCH", SKIP_PATH)
    assert skip["body"] == {"tasks": [["right", -1], ["grp.first", -1]]}
    assert r.xcoms["d1/r1/pick/skipmixin_key"] == {"followed": ["left", "join"]}
    assert r.final_state == "success"


@pytest.mark.supervisor
def test_branch_following_everything_skips_nothing_and_pushes_its_value() -> None:
    """No task to skip: no skip call, and the return value is pushed as Airflow does then."""
    r = supervise("pick_all", bundle=BUNDLE)
    assert r.api("PATCH", SKIP_PATH) == []
    assert r.xcoms["d1/r1/pick_all/return_value"] == ["a1", "a2"]
    assert r.xcoms["d1/r1/pick_all/skipmixin_key"] == {"followed": ["a1", "a2"]}
    assert r.final_state == "success"


@pytest.mark.supervisor
def test_branch_returning_none_skips_every_direct_downstream_task() -> None:
    """None follows nothing: every direct downstream task is skipped."""
    r = supervise("pick_nothing", bundle=BUNDLE)
    (skip,) = r.api("PATCH", SKIP_PATH)
    assert skip["body"] == {"tasks": [["a1", -1], ["a2", -1]]}
    assert r.final_state == "success"


@pytest.mark.supervisor
def test_branch_to_an_unknown_task_fails_the_try_without_skipping() -> None:
    """An id the DAG lacks fails the try (retryable, as Airflow's AirflowException) and skips nothing."""
    r = supervise("pick_unknown", bundle=BUNDLE, should_retry=True)
    assert r.final_state == "up_for_retry"
    assert r.api("PATCH", SKIP_PATH) == []
    assert any("does not have: 'nowhere'" in e for e in r.events())


@pytest.mark.supervisor
def test_mapped_branch_instance_pushes_the_xcom_but_never_skips() -> None:
    """map_index 0: the followed XCom is written for the scheduler, no skip is sent (as Airflow)."""
    r = supervise("pick", bundle=BUNDLE, map_index=0)
    assert r.api("PATCH", SKIP_PATH) == []
    (post,) = r.api("POST", "/xcoms/d1/r1/pick/skipmixin_key")
    assert post["params"].get("map_index") == "0"
    assert post["body"] == {"followed": ["left", "join"]}
    # Nothing was skipped, so the value is pushed as well.
    assert r.xcoms["d1/r1/pick/return_value"] == "left"
    assert r.final_state == "success"


@pytest.mark.supervisor
def test_short_circuit_falsy_skips_every_descendant_by_default() -> None:
    """A falsy condition skips all descendants as plain ids, before success; no return_value."""
    r = supervise("gate", bundle=BUNDLE)
    (skip,) = r.api("PATCH", SKIP_PATH)
    assert skip["body"] == {"tasks": ["after_gate", "later"]}
    assert r.xcoms == {"d1/r1/gate/skipmixin_key": {"skipped": ["after_gate", "later"]}}
    order = _order(r)
    assert order.index(f"PATCH {SKIP_PATH}") < order.index(f"PATCH {STATE_PATH}")
    assert r.final_state == "success"


@pytest.mark.supervisor
def test_short_circuit_respecting_trigger_rules_skips_only_the_direct_downstream() -> None:
    """ignore_downstream_trigger_rules=False skips the direct downstream only."""
    r = supervise("gate_direct", bundle=BUNDLE)
    (skip,) = r.api("PATCH", SKIP_PATH)
    assert skip["body"] == {"tasks": ["after_gate"]}
    assert r.final_state == "success"


@pytest.mark.supervisor
def test_short_circuit_truthy_skips_nothing_and_pushes_the_condition() -> None:
    """A truthy condition (rows from the conf) pushes it as return_value and skips nothing."""
    r = supervise("gate", bundle=BUNDLE, conf={"rows": 60})
    assert r.api("PATCH", SKIP_PATH) == []
    assert r.xcoms == {"d1/r1/gate/return_value": True}
    assert r.final_state == "success"


# -- trio-coord run ------------------------------------------------------------------------


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main([BUNDLE, "d1", *argv, "--json", "--timeout", "60"])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def test_local_run_answers_the_skip_and_lists_it(capsys: pytest.CaptureFixture[str]) -> None:
    """trio-coord run answers SkipDownstreamTasks and shows the skipped tasks in the summary."""
    code, summary, _ = _run(capsys, "pick", "--conf", '{"mode": "slow"}')
    assert code == 0 and summary["state"] == "success"
    assert summary["skipped_downstream"] == ["left", "join"]
    assert summary["requests"]["SkipDownstreamTasks"] == 1
    code = main([BUNDLE, "d1", "gate", "--quiet", "--timeout", "60"])
    out, _ = capsys.readouterr()
    assert code == 0
    assert "skipped downstream: after_gate, later" in out


# -- the export route (Airflow's DagBag) ---------------------------------------------------

EXPORT = """
import sys
sys.path.insert(0, {harness!r})
from bundle_branching import bundle
from trio_coord.airflow import export_dags
export_dags(bundle, globals())
"""

SERIALIZE = r"""
import json, sys
from pathlib import Path
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization
path = Path(sys.argv[1])
bag = DagBag(dag_folder=str(path), bundle_path=path.parent)
doc = DagSerialization.to_dict(bag.dags["d1"]) if "d1" in bag.dags else None
print("@@" + json.dumps({"errors": bag.import_errors, "doc": doc}, default=str))
"""


def test_export_route_marks_branch_and_short_circuit_tasks(tmp_path: Any) -> None:
    """DagBag: branch/short-circuit stubs carry _can_skip_downstream; timeouts and params reach Airflow."""

    from trio_coord.dagparse import serialize_dag

    path = tmp_path / "branching_dag.py"
    path.write_text(EXPORT.format(harness=str(HERE)))
    out = run_airflow_script(SERIALIZE, str(path), home=tmp_path / "home")
    assert out["errors"] == {}
    tasks = {t["__var"]["task_id"]: t["__var"] for t in out["doc"]["dag"]["tasks"]}
    marked = {tid for tid, t in tasks.items() if t.get("_can_skip_downstream")}
    assert marked == {"pick", "pick_nothing", "pick_unknown", "pick_all", "gate", "gate_direct"}
    assert tasks["slow_async"]["execution_timeout"] == 0.5
    assert not any(t.get("has_retry_policy") for t in tasks.values())
    params = dict(out["doc"]["dag"]["params"])
    assert params["rows"]["schema"]["__var"]["maximum"] == 100
    # The native serializer marks the same tasks.
    native = serialize_dag(_dag(), fileloc=str(path), relative_fileloc="branching_dag.py")
    native_marked = {
        t["__var"]["task_id"]
        for t in native["dag"]["tasks"]
        if t["__var"].get("_can_skip_downstream")
    }
    assert native_marked == marked
