"""Retry policies (Airflow 3.3's ``retry_policy``): declaration checks, decisions, what is sent.

Supervised runs use ``tests/airflow_harness/bundle_branching.py`` under the REAL 1.3.2
supervisor; the policy there retries a ConnectionError after 42 s with a reason, fails a
KeyError at once and retries a timeout with its own reason.
"""

from __future__ import annotations

import datetime
import json
import textwrap
from typing import Any

import pytest
from airflow_harness.harness import HERE, supervise

import trio_coord
from trio_coord import ExceptionRetryPolicy, RetryAction, RetryDecision, RetryPolicy, RetryRule
from trio_coord.errors import UsageError
from trio_coord.local import main

BUNDLE = f"{HERE / 'bundle_branching.py'}:bundle"


# -- declaration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"exception": "ValueError"}, "dotted import path"),
        ({"exception": 42}, "exception must be an exception class"),
        ({"exception": [ValueError, int]}, "exception must be an exception class"),
        ({"exception": []}, "at least one"),
        ({"exception": ValueError, "action": "retry"}, "action must be a RetryAction"),
        ({"exception": ValueError, "retry_delay": 5}, "non-negative timedelta"),
        ({"exception": ValueError, "reason": 3}, "reason must be a string"),
    ],
)
def test_bad_rules_are_refused_where_written(kwargs: dict[str, Any], fragment: str) -> None:
    """A RetryRule with a wrong field is a UsageError naming what is accepted."""
    with pytest.raises(UsageError, match=fragment):
        RetryRule(**kwargs)


def test_retry_policy_option_takes_a_policy_in_task_or_default_args() -> None:
    """retry_policy is a task option (and a default_args key); anything else is refused."""
    policy = ExceptionRetryPolicy(rules=[RetryRule(exception=ValueError)])
    d = trio_coord.Bundle("b").dag("d", default_args={"retry_policy": policy})

    @d.task
    def t() -> None: ...

    assert t.option("retry_policy") is policy
    with pytest.raises(UsageError, match="retry_policy must be a RetryPolicy"):

        @d.task(retry_policy={"rules": []})
        def u() -> None: ...

    with pytest.raises(UsageError, match="rules must be a list of RetryRule"):
        ExceptionRetryPolicy(rules=[ValueError])  # type: ignore[list-item]


def test_exception_policy_first_matching_rule_wins() -> None:
    """Rules are tried in order; subclasses match unless match_subclasses=False; else the default."""
    policy = ExceptionRetryPolicy(
        rules=[
            RetryRule(exception=ConnectionRefusedError, action=RetryAction.FAIL, reason="down"),
            RetryRule(exception=[OSError, "builtins.KeyError"], retry_delay=datetime.timedelta(1)),
            RetryRule(exception=ValueError, match_subclasses=False),
        ],
        default=RetryAction.FAIL,
    )
    assert policy.evaluate(ConnectionRefusedError(), 1, 2) == RetryDecision.fail("down")
    assert policy.evaluate(KeyError("k"), 1, 2) == RetryDecision(
        RetryAction.RETRY, datetime.timedelta(1), "Matched rule for KeyError"
    )
    assert policy.evaluate(UnicodeError(), 1, 2).action is RetryAction.FAIL  # the default
    assert policy.evaluate(ValueError(), 1, 2).action is RetryAction.RETRY
    unknown = RetryRule(exception="nowhere_module.Missing")
    assert not unknown.matches(ValueError())


# -- under the real supervisor -------------------------------------------------------------


@pytest.mark.supervisor
def test_policy_reason_and_delay_go_in_the_retry_patch() -> None:
    """A RETRY decision's reason and delay reach the API in the up_for_retry PATCH body."""
    r = supervise("flaky", bundle=BUNDLE, should_retry=True)
    assert r.final_state == "up_for_retry"
    (patch,) = r.state_patches
    assert patch["state"] == "up_for_retry"
    assert patch["retry_reason"] == "the database was unreachable"
    assert patch["retry_delay_seconds"] == 42.0


@pytest.mark.supervisor
def test_policy_fail_skips_the_retries_left() -> None:
    """A FAIL decision ends the try failed although the server would allow a retry."""
    r = supervise("bad_input", bundle=BUNDLE, should_retry=True)
    assert r.final_state == "failed"
    assert [p["state"] for p in r.state_patches] == ["failed"]
    assert "retry policy decision: fail (bad input)" in r.events()


@pytest.mark.supervisor
def test_policy_sees_a_timeout_as_task_timeout() -> None:
    """An execution_timeout reaches the policy as trio_coord.TaskTimeout."""
    r = supervise("slow_with_policy", bundle=BUNDLE, should_retry=True)
    (patch,) = r.state_patches
    assert patch["state"] == "up_for_retry" and patch["retry_reason"] == "slow day, try again"
    assert patch.get("retry_delay_seconds") is None


@pytest.mark.supervisor
def test_policy_retry_without_retries_left_fails() -> None:
    """RETRY cannot add retries: with should_retry false the try fails."""
    r = supervise("flaky", bundle=BUNDLE)
    assert r.final_state == "failed"


# -- odd policies, through trio-coord run --------------------------------------------------

ODD = """
import datetime
import trio_coord
from trio_coord import RetryDecision, RetryPolicy


class Broken(RetryPolicy):
    def evaluate(self, exception, try_number, max_tries, context=None):
        raise RuntimeError("policy bug")


class WrongAnswer(RetryPolicy):
    def evaluate(self, exception, try_number, max_tries, context=None):
        return "retry"


class Counting(RetryPolicy):
    def evaluate(self, exception, try_number, max_tries, context=None):
        return RetryDecision.retry(
            delay=datetime.timedelta(minutes=try_number),
            reason=f"try {try_number} of {max_tries} in {context.task_id}",
        )


bundle = trio_coord.Bundle("odd")
d = bundle.dag("d", default_args={"retry_policy": Counting()})


@d.task(retry_policy=Broken())
def broken():
    raise ValueError("x")


@d.task(retry_policy=WrongAnswer())
def wrong():
    raise ValueError("x")


@d.task
def counted():
    raise ValueError("x")


@d.task
def refuses():
    raise trio_coord.FailTask("no")
"""


@pytest.fixture(scope="module")
def odd_bundle(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("odd") / "odd_bundle.py"
    path.write_text(textwrap.dedent(ODD))
    return f"{path}:bundle"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[dict[str, Any], str]:
    main([*argv, "--should-retry", "--json", "--timeout", "60"])
    out, err = capsys.readouterr()
    return json.loads(out), err


@pytest.mark.parametrize("task_id", ["broken", "wrong"])
def test_a_failing_policy_falls_back_to_the_usual_rule(
    odd_bundle: str, task_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A policy that raises or answers a non-decision is logged and ignored: a plain retry."""
    summary, err = _run(capsys, odd_bundle, "d", task_id)
    assert summary["state"] == "up_for_retry"
    assert summary["retry_reason"] is None and summary["retry_delay_seconds"] is None
    assert "the retry policy failed; the usual retry rule applies" in err


def test_policy_from_default_args_gets_try_number_max_tries_and_context(
    odd_bundle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """default_args' policy gets the try number, max_tries and the context; trio-coord run shows it."""
    summary, _ = _run(capsys, odd_bundle, "d", "counted", "--try-number", "2")
    assert summary["retry_reason"] == "try 2 of 2 in counted"
    assert summary["retry_delay_seconds"] == 120.0
    main([odd_bundle, "d", "counted", "--should-retry", "--quiet", "--timeout", "60"])
    out = capsys.readouterr().out
    assert "retry reason: try 1 of 1 in counted" in out
    assert "retry delay:  60 s" in out


def test_fail_task_never_consults_the_policy(
    odd_bundle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """FailTask fails at once, as AirflowFailException, whatever the policy would say."""
    summary, _ = _run(capsys, odd_bundle, "d", "refuses")
    assert summary["state"] == "failed" and summary["retry_reason"] is None


def test_policy_is_not_exported_to_airflow() -> None:
    """Neither the native document nor default_args carry the policy (Airflow's stub refuses it)."""
    from trio_coord.dagparse import serialize_dag

    policy = ExceptionRetryPolicy(rules=[RetryRule(exception=ValueError)])
    d = trio_coord.Bundle("b").dag("d", default_args={"retry_policy": policy, "retries": 1})

    @d.task(retry_policy=policy)
    def t() -> None: ...

    doc = serialize_dag(d, fileloc="/x.py", relative_fileloc="x.py")
    text = json.dumps(doc)
    assert "retry_policy" not in text
    assert doc["dag"]["default_args"] == {"__type": "dict", "__var": {"retries": 1}}


def test_custom_policy_must_implement_evaluate() -> None:
    """RetryPolicy is abstract: a subclass without evaluate cannot be built."""

    class Nothing(RetryPolicy):
        pass

    with pytest.raises(TypeError):
        Nothing()  # type: ignore[abstract]
