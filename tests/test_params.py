"""DAG params at run time: defaults, the run's conf on top, the schema keywords checked.

Also the declaration checks a DAG author meets first (unknown arguments, negative retries,
naive datetimes, unknown trigger rules, unsupported schema keywords).
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from airflow_harness.harness import HERE, supervise
from hypothesis import given
from hypothesis import strategies as st

import trio_coord
from trio_coord import Param
from trio_coord.authoring.params import ParamError, resolve_params, validate_value
from trio_coord.errors import UsageError
from trio_coord.local import main

BUNDLE = f"{HERE / 'bundle_branching.py'}:bundle"


# -- the validator (pure) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "schema", "problem"),
    [
        (3, {"type": "integer"}, None),
        (3.0, {"type": "integer"}, None),
        (True, {"type": "integer"}, "not of type integer"),
        ("3", {"type": ["integer", "null"]}, "not of type integer or null"),
        (None, {"type": ["integer", "null"]}, None),
        ("b", {"enum": ["a", "b"]}, None),
        ("c", {"enum": ["a", "b"]}, "not one of"),
        (0, {"minimum": 1}, "less than the minimum 1"),
        (101, {"maximum": 100}, "greater than the maximum 100"),
        (1, {"exclusiveMinimum": 1}, "not above 1"),
        (5, {"exclusiveMaximum": 5}, "not below 5"),
        ("ab", {"minLength": 3}, "shorter than 3"),
        ("abcd", {"maxLength": 3}, "longer than 3"),
        ("x-1", {"pattern": "^[a-z]+$"}, "does not match"),
        ("2026-01-02", {"type": "string", "format": "date"}, None),
        ("2026-13-02", {"format": "date"}, "not a valid date"),
        ([1], {"minItems": 2}, "fewer than 2 items"),
        ([1, 2, 3], {"maxItems": 2}, "more than 2 items"),
        ({"a": 1}, {"type": "object"}, None),
        (7, {"const": 7, "title": "Seven"}, None),
        (10**400, {"type": "integer", "maximum": 10}, "greater than the maximum 10"),
        (float("nan"), {"type": "number"}, None),
    ],
)
def test_schema_keywords(value: Any, schema: dict[str, Any], problem: str | None) -> None:
    """Each supported keyword accepts what JSON Schema accepts and says why it refuses."""
    found = validate_value(value, schema)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_conf_overrides_defaults_and_adds_its_own_keys() -> None:
    """Every conf key becomes a param (as Airflow's ParamsDict.update), declared ones validated."""
    declared = {"n": (3, {"type": "integer"}), "mode": ("a", {})}
    assert resolve_params(declared, {"n": 5, "extra": [1]}) == {"n": 5, "mode": "a", "extra": [1]}
    assert resolve_params(declared, {"n": 5}, conf_overrides=False) == {"n": 3, "mode": "a"}
    with pytest.raises(ParamError, match="invalid value for param 'n': 'x' is not of type"):
        resolve_params(declared, {"n": "x"})


def test_unknown_or_malformed_schema_keywords_are_refused_at_declaration() -> None:
    """A keyword the validator does not implement is a UsageError listing the supported ones."""
    b = trio_coord.Bundle("b")
    with pytest.raises(UsageError, match="'multipleOf' is not supported; supported: type, enum"):
        b.dag("d1", params={"n": Param(4, multipleOf=2)})
    with pytest.raises(UsageError, match="pattern='\\(' is malformed"):
        b.dag("d2", params={"s": Param("x", pattern="(")})
    with pytest.raises(UsageError, match="type='int' is malformed"):
        b.dag("d3", params={"n": Param(1, type="int")})


def test_scheduled_dag_defaults_must_be_valid() -> None:
    """As Airflow: a scheduled DAG (no conf on its runs) may not have an invalid default."""
    b = trio_coord.Bundle("b")
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    with pytest.raises(UsageError, match="param 'n' default is invalid for a scheduled DAG"):
        b.dag("d1", schedule="@daily", start_date=start, params={"n": Param(None, type="integer")})
    b.dag("d2", params={"n": Param(None, type="integer")})  # manual runs bring their conf


# -- declaration checks -------------------------------------------------------------------


def test_declaration_checks() -> None:
    """Unknown task argument, negative retries, naive datetime, unknown trigger rule: UsageError."""
    d = trio_coord.Bundle("b").dag("d")
    with pytest.raises(UsageError, match=r"unknown keyword 'retires'.*did you mean 'retries'"):

        @d.task(retires=2)
        def a() -> None: ...

    with pytest.raises(UsageError, match=r"accepted: .*execution_timeout.*retry_policy"):

        @d.task(bogus=1)
        def a2() -> None: ...

    with pytest.raises(UsageError, match="retries must be a non-negative integer"):

        @d.task(retries=-1)
        def b() -> None: ...

    with pytest.raises(UsageError, match="start_date must be a timezone-aware datetime"):

        @d.task(start_date=datetime.datetime(2026, 1, 1))
        def c() -> None: ...

    with pytest.raises(
        UsageError, match=r"trigger_rule must be one of.*did you mean 'all_success'"
    ):

        @d.task(trigger_rule="all_sucess")
        def e() -> None: ...


# -- at run time ---------------------------------------------------------------------------


@pytest.mark.supervisor
def test_params_from_conf_reach_the_task_under_the_supervisor() -> None:
    """params (injected and context.params) are the defaults with the run's conf on top."""
    r = supervise("show_params", bundle=BUNDLE, conf={"mode": "slow", "note": "hi"})
    assert r.final_state == "success"
    assert r.xcoms["d1/r1/show_params/return_value"] == {
        "params": {"rows": 10, "mode": "slow", "note": "hi"},
        "same": True,
    }


@pytest.mark.supervisor
def test_invalid_conf_fails_the_try_with_the_reason() -> None:
    """A conf value outside its param's schema fails the try, without retry, naming the param."""
    r = supervise("show_params", bundle=BUNDLE, conf={"rows": 1000}, should_retry=True)
    assert r.final_state == "failed"
    assert "d1/r1/show_params/return_value" not in r.xcoms
    assert any(
        "invalid value for param 'rows': 1000 is greater than the maximum 100" in e
        for e in r.events()
    )


@pytest.mark.supervisor
def test_task_params_replace_the_dags_of_the_same_name() -> None:
    """A task's params= replaces a DAG param (schema too) and adds its own, checked against the conf."""
    r = supervise("task_params", bundle=BUNDLE)
    assert r.xcoms["d1/r1/task_params/return_value"] == {"rows": 500, "mode": "fast", "label": "x"}
    r = supervise("task_params", bundle=BUNDLE, conf={"label": "long"})
    assert r.final_state == "failed"
    assert any("param 'label': 'long' is longer than 3 characters" in e for e in r.events())


def test_task_params_are_checked_and_not_in_default_args() -> None:
    """Task params are checked like the DAG's; default_args may not carry params."""
    b = trio_coord.Bundle("b")
    d = b.dag("d")
    with pytest.raises(UsageError, match="schema keyword 'oneOf' is not supported"):

        @d.task(params={"x": Param(1, oneOf=[])})
        def t() -> None: ...

    with pytest.raises(UsageError, match="params must be a mapping"):

        @d.task(params=[1])
        def u() -> None: ...

    with pytest.raises(UsageError, match="unknown keyword 'params'"):
        b.dag("d2", default_args={"params": {"x": 1}})


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    main([BUNDLE, "d1", *argv, "--json", "--timeout", "60"])
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_local_run_params(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """trio-coord run: --conf reaches params; a bad value fails; the Airflow setting turns conf off."""
    summary = _run(capsys, "show_params", "--conf", '{"rows": 5}')
    assert summary["xcoms"]["return_value"]["params"] == {"rows": 5, "mode": "fast"}
    summary = _run(capsys, "show_params", "--conf", '{"mode": "medium"}')
    assert summary["state"] == "failed"
    assert "invalid value for param 'mode'" in summary["last_error"]
    monkeypatch.setenv("AIRFLOW__CORE__DAG_RUN_CONF_OVERRIDES_PARAMS", "False")
    summary = _run(capsys, "show_params", "--conf", '{"mode": "medium"}')
    assert summary["xcoms"]["return_value"]["params"] == {"rows": 10, "mode": "fast"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)
schemas = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(
            ["string", "integer", "number", "boolean", "null", "array", "object"]
        ),
        "enum": st.lists(json_values, min_size=1, max_size=3),
        "minimum": st.integers() | st.floats(allow_nan=False, allow_infinity=False),
        "exclusiveMaximum": st.integers(),
        "minLength": st.integers(min_value=0, max_value=5),
        "pattern": st.sampled_from(["^a", "b$", "[0-9]+"]),
        "format": st.sampled_from(["date", "date-time", "time"]),
        "maxItems": st.integers(min_value=0, max_value=3),
    },
)


@given(value=json_values, schema=schemas)
def test_validation_never_raises(value: Any, schema: dict[str, Any]) -> None:
    """Any JSON value against any accepted schema gives None or a reason, never an exception."""
    from trio_coord.authoring.params import check_schema

    check_schema("p", schema)
    problem = validate_value(value, schema)
    assert problem is None or isinstance(problem, str)
