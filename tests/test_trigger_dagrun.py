"""The trigger_dagrun task kind: declaration checks and its calls under the real 1.3.2 supervisor."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from airflow_harness.harness import HERE, supervise

from trio_coord import Bundle
from trio_coord.authoring.tasks import TASK_KINDS
from trio_coord.errors import UsageError
from trio_coord.runtime.trigger_dagrun import run_id_for

BUNDLE = f"{HERE / 'bundle_assets.py'}:bundle"
TRIGGER = "POST /dag-runs/target/run-42"
CONFLICT = {TRIGGER: {"status": 409, "json": {"detail": {"reason": "already_exists"}}}}


# -- declaration -------------------------------------------------------------------------


def test_trigger_dagrun_is_a_task_kind_with_operator_defaults() -> None:
    """dag.trigger_dagrun declares kind 'trigger_dagrun' with the operator's defaults."""
    assert "trigger_dagrun" in TASK_KINDS
    d = Bundle("b").dag("d")
    t = d.trigger_dagrun("kick", trigger_dag_id="other", retries=2)
    assert t.kind == "trigger_dagrun"
    assert t.effective_retries == 2
    opts = t.kind_options
    assert opts["allowed_states"] == ["success"]
    assert opts["failed_states"] == ["failed"]
    assert opts["poke_interval"] == 60.0
    assert (opts["reset_dag_run"], opts["wait_for_completion"]) == (False, False)


def test_trigger_dagrun_decorator_form() -> None:
    """@dag.task.trigger_dagrun(...) keeps the function (its dict return becomes the conf)."""
    d = Bundle("b").dag("d")

    @d.task.trigger_dagrun(trigger_dag_id="other", failed_states=[])
    def kick() -> dict[str, Any]:
        return {"x": 1}

    assert kick.kind == "trigger_dagrun"
    assert kick.kind_options["failed_states"] == []
    assert kick.function() == {"x": 1}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "trigger_dag_id"),
        ({"trigger_dag_id": "bad id!"}, "not valid"),
        ({"trigger_dag_id": "o", "conf": {"k": object()}}, "JSON"),
        ({"trigger_dag_id": "o", "conf": [1]}, "conf must be a dict"),
        ({"trigger_dag_id": "o", "allowed_states": ["done"]}, "DAG run states"),
        ({"trigger_dag_id": "o", "poke_interval": 0}, "positive"),
        ({"trigger_dag_id": "o", "reset_dag_run": "yes"}, "True or False"),
        (
            {"trigger_dag_id": "o", "logical_date": datetime.datetime(2026, 1, 1)},
            "timezone-aware",
        ),
        ({"trigger_dag_id": "o", "deferrable": True}, "unknown keyword 'deferrable'"),
    ],
)
def test_bad_trigger_options_are_refused(kwargs: dict[str, Any], message: str) -> None:
    """Each bad trigger_dagrun argument is a UsageError at declaration, naming the argument."""
    d = Bundle("b").dag("d")
    with pytest.raises(UsageError, match=message):
        d.trigger_dagrun("kick", **kwargs)


def test_generated_run_ids_look_like_airflows() -> None:
    """manual__<logical date ISO>, or manual__<now ISO>_<8 random chars> without a date."""
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    assert run_id_for(when, when) == "manual__2026-01-02T03:04:05+00:00"
    no_date = run_id_for(None, when)
    assert no_date.startswith("manual__2026-01-02T03:04:05+00:00_")
    assert len(no_date.rsplit("_", 1)[1]) == 8


# -- the real 1.3.2 supervisor ------------------------------------------------------------


def test_trigger_posts_the_run_and_pushes_its_id() -> None:
    """POST dag-runs/target/run-42 carries conf and logical_date; trigger_run_id is pushed."""
    r = supervise("kick", bundle=BUNDLE)
    assert r.final_state == "success", r.log_text[-2000:]
    (call,) = r.api("POST", "/dag-runs/target/run-42")
    assert call["body"]["conf"] == {"a": 1}
    assert call["body"]["logical_date"]
    assert "reset_dag_run" not in call["body"]  # a default, left out as the SDK does
    assert r.xcoms["d1/r1/kick/trigger_run_id"] == "run-42"
    assert "d1/r1/kick/return_value" not in r.xcoms


def test_function_return_is_the_conf() -> None:
    """A decorated trigger task's returned dict replaces the declared conf."""
    r = supervise("kick_conf", bundle=BUNDLE)
    assert r.final_state == "success", r.log_text[-2000:]
    (call,) = r.api("POST", "/dag-runs/target/run-44")
    assert call["body"]["conf"] == {"a": 2, "parent": "r1"}


def test_generated_run_id_and_note() -> None:
    """Without trigger_run_id the run id is manual__<logical date>, and the note is sent."""
    r = supervise("kick_auto", bundle=BUNDLE)
    assert r.final_state == "success", r.log_text[-2000:]
    posts = [c for c in r.calls if c["method"] == "POST" and "/dag-runs/target/" in c["path"]]
    assert len(posts) == 1
    run_id = posts[0]["path"].rsplit("/", 1)[1]
    assert run_id == f"manual__{posts[0]['body']['logical_date'].replace('Z', '+00:00')}"
    assert posts[0]["body"]["note"] == "from d1"
    assert r.xcoms["d1/r1/kick_auto/trigger_run_id"] == run_id


def test_an_existing_run_fails_the_task_without_retry() -> None:
    """HTTP 409 (the run exists): the try fails even with retries left, as the native runner does."""
    r = supervise("kick", bundle=BUNDLE, routes=CONFLICT, should_retry=True)
    assert r.final_state == "failed"
    assert r.state_patches[-1]["state"] == "failed"
    assert "exists already" in r.log_text
    assert "d1/r1/kick/trigger_run_id" not in r.xcoms


def test_an_existing_run_skips_with_skip_when_already_exists() -> None:
    """skip_when_already_exists turns the 409 into a skipped try."""
    r = supervise("kick_skip", bundle=BUNDLE, routes=CONFLICT)
    assert r.final_state == "skipped"


def test_reset_dag_run_clears_the_existing_run() -> None:
    """reset_dag_run=True: the 409 makes the supervisor clear the run, and the task succeeds."""
    r = supervise("kick_reset", bundle=BUNDLE, routes=CONFLICT)
    assert r.final_state == "success", r.log_text[-2000:]
    (post,) = r.api("POST", "/dag-runs/target/run-42")
    assert post["body"]["reset_dag_run"] is True
    assert r.api("POST", "/dag-runs/target/run-42/clear")
    assert r.xcoms["d1/r1/kick_reset/trigger_run_id"] == "run-42"


def _states(*states: str) -> dict[str, Any]:
    return {"GET /dag-runs/target/run-43/state": [{"json": {"state": s}} for s in states]}


def test_wait_for_completion_polls_until_success() -> None:
    """wait_for_completion polls GET dag-runs/.../state until an allowed state, then succeeds."""
    r = supervise(
        "kick_wait", bundle=BUNDLE, route_sequences=_states("queued", "running", "success")
    )
    assert r.final_state == "success", r.log_text[-2000:]
    assert len(r.api("GET", "/dag-runs/target/run-43/state")) == 3


def test_wait_for_completion_fails_on_a_failed_run() -> None:
    """A triggered run that ends failed fails the try (retried when retries are left)."""
    r = supervise("kick_wait", bundle=BUNDLE, route_sequences=_states("running", "failed"))
    assert r.final_state == "failed"
    assert len(r.api("GET", "/dag-runs/target/run-43/state")) == 2
    retried = supervise(
        "kick_wait", bundle=BUNDLE, route_sequences=_states("failed"), should_retry=True
    )
    assert retried.final_state == "up_for_retry"


# -- trio-coord run -----------------------------------------------------------------------


def test_local_run_triggers_and_waits() -> None:
    """Locally a triggered run is recorded, reads 'success', and the summary lists it."""
    from test_assets import local_run

    summary = local_run("kick_wait")
    assert summary["state"] == "success"
    assert summary["triggered_runs"] == ["target run-43"]
    assert summary["xcoms"]["trigger_run_id"] == "run-43"
    assert summary["requests"]["GetDagRunState"] == 1


def test_local_sessions_refuse_an_existing_run() -> None:
    """The in-memory runs answer DAGRUN_ALREADY_EXISTS, and clear with reset_dag_run."""
    from trio_coord.local.dagruns import LocalDagRuns
    from trio_coord.protocol.messages import ErrorResponse, OKResponse, TriggerDagRun

    runs = LocalDagRuns(own=("d1", "r1"))
    assert isinstance(runs.trigger(TriggerDagRun(dag_id="t", run_id="x"))[0], OKResponse)
    body, _ = runs.trigger(TriggerDagRun(dag_id="t", run_id="x"))
    assert isinstance(body, ErrorResponse) and body.error == "DAGRUN_ALREADY_EXISTS"
    body, _ = runs.trigger(TriggerDagRun(dag_id="t", run_id="x", reset_dag_run=True))
    assert isinstance(body, OKResponse)
    assert runs.summary() == ["t x (existing run cleared)"]
