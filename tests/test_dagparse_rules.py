"""One test per rule of the serializer checklist, on the pure serializer (no Airflow needed)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from dagparse_cases import build_case, load_cases, make_test_bundle

from trio_coord import Bundle
from trio_coord.dagparse import (
    canonical_json,
    dag_fingerprint,
    serialize_bundle,
    serialize_dag,
)
from trio_coord.dagparse.dag import ALWAYS, WHEN_SET
from trio_coord.dagparse.tasks import SCHEMA_DEFAULTS
from trio_coord.errors import UsageError

UTC = datetime.UTC


def _doc(dag: Any) -> dict[str, Any]:
    return serialize_dag(dag, fileloc="/dags/f.py", relative_fileloc="f.py")


def _all_docs() -> list[dict[str, Any]]:
    docs = [_doc(d) for d in make_test_bundle().dags.values()]
    docs += [_doc(build_case(c)) for c in load_cases() if not c.get("requires")]
    return docs


def _noop() -> None:
    pass


def test_rule1_envelope_is_version_3_and_dag_only() -> None:
    """Rule 1: the document is exactly {"__version": 3, "dag": {...}}."""
    for doc in _all_docs():
        assert set(doc) == {"__version", "dag"}
        assert doc["__version"] == 3 and type(doc["__version"]) is int


def test_rule2_dag_keys_are_known_and_the_always_set_is_present() -> None:
    """Rule 2: only listed DAG keys are written, and every always-written key is there."""
    for doc in _all_docs():
        keys = set(doc["dag"])
        assert set(ALWAYS) <= keys
        assert keys <= set(ALWAYS) | set(WHEN_SET)


def test_rule2_decorated_fields_wrapped_the_rest_bare() -> None:
    """Rule 2: default_args keeps the typed wrapper (nested values too); dates, tags and timeouts are bare."""
    dag = make_test_bundle().dags["t_full"]
    d = _doc(dag)["dag"]
    assert d["default_args"] == {
        "__type": "dict",
        "__var": {
            "owner": "data",
            "retries": 2,
            "retry_delay": {"__type": "timedelta", "__var": 60.0},
        },
    }
    assert d["start_date"] == 1767225600.0 and d["end_date"] == 1798761599.0
    assert d["dagrun_timeout"] == 3600.0
    assert d["tags"] == ["etl", "trio"]
    assert d["params"][0] == [
        "batch_size",
        {
            "__class": "airflow.sdk.definitions.param.Param",
            "default": 1000,
            "description": None,
            "schema": {"__type": "dict", "__var": {}},
            "source": None,
        },
    ]


@pytest.mark.parametrize(
    ("schedule", "expression"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@quarterly", "0 0 1 */3 *"),
        ("@yearly", "0 0 1 1 *"),
        ("30 3 * * MON-FRI 15", "30 3 * * MON-FRI 15"),
    ],
)
def test_rule3_cron_presets_expanded_with_the_dag_timezone(schedule: str, expression: str) -> None:
    """Rule 3: presets are written expanded, as CronTriggerTimetable in the DAG's own timezone."""
    tz = datetime.timezone(datetime.timedelta(hours=-5))
    dag = Bundle("b").dag(
        "d", schedule=schedule, start_date=datetime.datetime(2026, 1, 1, tzinfo=tz)
    )
    d = _doc(dag)["dag"]
    assert d["timetable"] == {
        "__type": "airflow.timetables.trigger.CronTriggerTimetable",
        "__var": {
            "expression": expression,
            "timezone": -18000,
            "interval": 0.0,
            "run_immediately": False,
        },
    }
    assert d["timezone"] == -18000


def test_rule3_other_schedules_have_their_own_timetables() -> None:
    """Rule 3: None, @once, @continuous and a timedelta map to Null/Once/Continuous/DeltaTrigger."""
    b = Bundle("b")
    kinds = {
        None: ("airflow.timetables.simple.NullTimetable", {}),
        "@once": ("airflow.timetables.simple.OnceTimetable", {}),
        "@continuous": ("airflow.timetables.simple.ContinuousTimetable", {}),
        datetime.timedelta(minutes=90): (
            "airflow.timetables.trigger.DeltaTriggerTimetable",
            {"delta": 5400.0, "interval": 0.0},
        ),
    }
    for i, (schedule, (cls, var)) in enumerate(kinds.items()):
        dag = b.dag(f"d{i}", schedule=schedule, max_active_runs=1)
        assert _doc(dag)["dag"]["timetable"] == {"__type": cls, "__var": var}


def test_rule4_task_identity_queue_and_resolved_default_args() -> None:
    """Rule 4: identity keys on every task, an explicit queue, default_args applied to each task."""
    d = _doc(make_test_bundle().dags["t_full"])["dag"]
    tasks = {t["__var"]["task_id"]: t["__var"] for t in d["tasks"]}
    for var in tasks.values():
        assert var["task_type"] == "TrioOperator" and var["_task_module"] == "trio_coord"
        assert var["language"] == "python-trio" and var["template_fields"] == []
        assert var["queue"] == "trio" and var["owner"] == "data" and var["retry_delay"] == 60.0
    assert tasks["extract"]["retries"] == 2 and tasks["transform"]["retries"] == 3
    assert tasks["transform"]["execution_timeout"] == 600.0


def test_rule4_schema_defaults_omitted() -> None:
    """Rule 4: a task option equal to its schema default is not written (retry_delay excepted, as Python)."""
    case = next(c for c in load_cases() if c["dag_id"] == "conformance_cron")
    tasks = _doc(build_case(case))["dag"]["tasks"]
    transform = tasks[1]["__var"]
    assert not set(transform) & set(SCHEMA_DEFAULTS)
    assert transform["retry_delay"] == 300.0
    assert "email_on_failure" not in tasks[0]["__var"]  # written by Python only with `email`


def test_rule4_downstream_ids_sorted_and_no_plain_object_extras() -> None:
    """Rule 4: downstream_task_ids sorted; no task value is a plain object (only params' pairs
    and a mapped task's partial_kwargs and expand input, as Python writes them, hold some)."""
    b = Bundle("b")
    d = b.dag("d")
    root = d.task(task_id="root")(_noop)
    for name in ("zeta", "alpha", "mid"):
        root >> d.task(task_id=name)(_noop)
    var = _doc(d)["dag"]["tasks"][0]["__var"]
    assert var["downstream_task_ids"] == ["alpha", "mid", "zeta"]
    for doc in _all_docs():
        for t in doc["dag"]["tasks"]:
            for key, value in t["__var"].items():
                if key not in ("params", "partial_kwargs", "op_kwargs_expand_input"):
                    assert not isinstance(value, dict), key
                    assert not (isinstance(value, list) and any(isinstance(v, dict) for v in value))
            assert "_arg_bindings" not in t["__var"]


def test_rule5_every_task_in_exactly_one_group() -> None:
    """Rule 5: each task appears once in the task_group tree, under the group that holds it."""
    for doc in _all_docs():
        seen: list[str] = []
        stack = [doc["dag"]["task_group"]]
        while stack:
            group = stack.pop()
            for key, (kind, value) in group["children"].items():
                if kind == "operator":
                    assert value == key
                    seen.append(key)
                else:
                    stack.append(value)
        assert sorted(seen) == sorted(t["__var"]["task_id"] for t in doc["dag"]["tasks"])


def test_rule5_group_edges_expand_like_airflow() -> None:
    """Rule 5: conformance_nested_group_edges expands each edge against the edges before it."""
    case = next(c for c in load_cases() if c["dag_id"] == "conformance_nested_group_edges")
    fp = dag_fingerprint(_doc(build_case(case)))
    assert fp["tasks"]["outer.inner.i"]["upstream"] == ["extract"]
    assert fp["tasks"]["outer.t"]["upstream"] == ["outer.inner.i"]
    assert fp["tasks"]["load"]["upstream"] == ["outer.t"]


def test_rule6_a_cycle_is_an_error_for_that_dag_only() -> None:
    """Rule 6: serialize_bundle reports a cyclic DAG by id and still writes the others."""
    b = Bundle("b")
    bad = b.dag("bad")
    x = bad.task(task_id="x")(_noop)
    y = bad.task(task_id="y")(_noop)
    x >> y >> x
    good = b.dag("good")
    good.task(task_id="only")(_noop)
    docs, errors = serialize_bundle(b, fileloc="/d/f.py", relative_fileloc="f.py")
    assert list(docs) == ["good"]
    assert errors == {"bad": "DAG 'bad' has a cycle: x >> y >> x"}


@pytest.mark.parametrize(
    ("task_kwargs", "message"),
    [
        ({"trigger_rule": "all_sucess"}, "did you mean 'all_success'?"),
        ({"weight_rule": "upstreem"}, "did you mean 'upstream'?"),
        ({"pool_slots": 0}, "pool_slots must be a positive integer"),
        ({"start_date": datetime.datetime(2026, 1, 1)}, "timezone-aware"),
    ],
)
def test_rule6_invalid_values_are_refused_at_declaration(
    task_kwargs: dict[str, Any], message: str
) -> None:
    """Rule 6: trigger rules, weight rules and other values Airflow would misread fail where written."""
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace("?", r"\?")):
        Bundle("b").dag("d").task(task_id="t", **task_kwargs)(_noop)


def test_rule6_fail_fast_needs_all_success() -> None:
    """Rule 6: fail_fast refuses a task (or default_args) with another trigger rule."""
    dag = Bundle("b").dag("d", fail_fast=True)
    dag.task(task_id="ok")(_noop)
    with pytest.raises(UsageError, match="fail_fast"):
        dag.task(task_id="bad", trigger_rule="all_done")(_noop)
    assert list(dag.tasks) == ["ok"]
    with pytest.raises(UsageError, match="fail_fast"):
        Bundle("b").dag("d", fail_fast=True, default_args={"trigger_rule": "one_success"})


def test_rule7_same_dag_same_bytes() -> None:
    """Rule 7: two declarations of the same DAG give identical canonical bytes (tags given as a set too)."""
    first = [canonical_json(_doc(d)) for d in make_test_bundle().dags.values()]
    second = [canonical_json(_doc(d)) for d in make_test_bundle().dags.values()]
    assert first == second
    assert b" " not in canonical_json({"a": [1, 2]})


def test_fingerprint_summarises_structure() -> None:
    """dag_fingerprint lists each task's sorted upstream/downstream and queue, from the document alone."""
    fp = dag_fingerprint(_doc(make_test_bundle().dags["t_full"]))
    assert fp == {
        "dag_id": "t_full",
        "tasks": {
            "extract": {"upstream": [], "downstream": ["load", "transform"], "queue": "trio"},
            "transform": {"upstream": ["extract"], "downstream": ["load"], "queue": "trio"},
            "load": {"upstream": ["extract", "transform"], "downstream": [], "queue": "trio"},
        },
    }
