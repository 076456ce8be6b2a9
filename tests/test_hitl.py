"""Human in the loop: the ``hitl`` kind and ``AwaitInput`` under the real 1.3.2 supervisor.

The first try records the question (the POST body the API server receives) and ends in
``awaiting_input``; a second supervised try, resumed with the ``next_kwargs`` airflow-core
builds from a person's answer (``handle_event_submit``: the kwargs plus ``event``,
serialized with Airflow's own serde), continues with the chosen options and params.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.sdk.serde import serialize
from airflow_harness.harness import TI_ID, Report, supervise
from bundle_helpers import run_airflow_script

from trio_coord import AwaitInput, Param
from trio_coord.authoring.hitl import hitl_options
from trio_coord.errors import UsageError
from trio_coord.local.command import main
from trio_coord.runtime.hitl import pause_for_input

BUNDLE = f"{Path(__file__).parent / 'airflow_harness' / 'bundle_hitl.py'}:bundle"
HITL_PATH = f"/hitlDetails/{TI_ID}"
ANSWERED_AT = pendulum.datetime(2030, 5, 6, 7, 8, 9, tz="UTC")


def _echo(body: dict[str, Any]) -> dict[str, Any]:
    """What the API server answers to the create call: the stored request."""
    return {"status": 201, "json": {"ti_id": TI_ID, **body}}


def _asked(task_id: str, stored: dict[str, Any]) -> Report:
    return supervise(task_id, bundle=BUNDLE, routes={f"POST {HITL_PATH}": _echo(stored)})


def _resume_kwargs(event: dict[str, Any], **kwargs: Any) -> Any:
    """airflow-core's handle_event_submit: the parked kwargs plus the event, serde-encoded."""
    return serialize({**kwargs, "event": event})


def _answer(chosen: list[str], params_input: dict[str, Any] | None = None, **kw: Any) -> Any:
    return {
        "chosen_options": chosen,
        "params_input": params_input or {},
        "responded_at": ANSWERED_AT,
        "responded_by_user": {"id": "u1", "name": "Ada"},
        "timedout": False,
        **kw,
    }


def _resumed(task_id: str, method: str, next_kwargs: Any) -> Report:
    return supervise(
        task_id, bundle=BUNDLE, ti_context={"next_method": method, "next_kwargs": next_kwargs}
    )


REVIEW_QUESTION = {
    "options": ["ship", "hold", "drop"],
    "subject": "Ship release?",
    "body": "Check the changelog first.",
    "defaults": ["hold"],
    "multiple": False,
    "params": {
        "note": {
            "value": "none",
            "description": None,
            "schema": {"type": "string"},
            "source": "task",
        }
    },
    "assigned_users": [{"id": "u1", "name": "Ada"}],
}


@pytest.mark.supervisor
def test_hitl_task_creates_the_question_then_awaits_input() -> None:
    """The POST carries HITLOperator's fields; then one PATCH to awaiting_input, with the
    resume method and the response timeout; nothing is pushed."""
    r = _asked("review", REVIEW_QUESTION)
    assert (r.exit_code, r.final_state) == (0, "awaiting_input"), r.events()
    (create,) = r.api("POST", HITL_PATH)
    assert create["body"] == {"ti_id": TI_ID, "type": "CreateHITLDetailPayload", **REVIEW_QUESTION}
    (patch,) = r.state_patches
    assert patch["state"] == "awaiting_input"
    assert patch["next_method"] == "execute_complete"
    assert patch["next_kwargs"] == {}
    assert patch["timeout"] in ("PT1H", 3600, 3600.0)
    paths = [c["path"] for c in r.calls]
    assert paths.index(HITL_PATH) < paths.index(f"/task-instances/{TI_ID}/state")
    assert r.xcoms == {}


@pytest.mark.supervisor
def test_answered_hitl_task_pushes_the_answer() -> None:
    """The resumed try checks the answer and pushes it, as execute_complete returns it."""
    event = _answer(["ship"], {"note": "all green"})
    r = _resumed("review", "execute_complete", _resume_kwargs(event))
    assert (r.exit_code, r.final_state) == (0, "success"), r.events()
    assert r.xcoms["d1/r1/review/return_value"] == {
        "chosen_options": ["ship"],
        "params_input": {"note": "all green"},
        "responded_at": ANSWERED_AT.isoformat(),
        "responded_by_user": {"id": "u1", "name": "Ada"},
    }


@pytest.mark.supervisor
def test_answer_outside_the_options_fails_the_try() -> None:
    r = _resumed("review", "execute_complete", _resume_kwargs(_answer(["launch"])))
    assert r.final_state in ("failed", "up_for_retry"), r.events()
    assert any("not in" in e and "launch" in e for e in r.events()), r.events()
    assert "d1/r1/review/return_value" not in r.xcoms


@pytest.mark.supervisor
def test_timeout_without_defaults_fails_as_hitl_timeout() -> None:
    """The scheduler's sweep resumes with an error event: HITLTimeoutError, retryable."""
    event = {
        "error": "The response timeout has passed without a response.",
        "error_type": "timeout",
    }
    r = _resumed("review", "execute_complete", _resume_kwargs(event))
    assert r.final_state == "failed", r.events()
    assert any("HITLTimeoutError" in e for e in r.events()), r.events()


@pytest.mark.supervisor
def test_timeout_with_defaults_succeeds_with_them() -> None:
    """With defaults, the sweep answers with them (timedout, nobody responded)."""
    event = _answer(["hold"], {"note": "none"}, responded_by_user=None, timedout=True)
    r = _resumed("review", "execute_complete", _resume_kwargs(event))
    assert (r.exit_code, r.final_state) == (0, "success"), r.events()
    assert r.xcoms["d1/r1/review/return_value"]["chosen_options"] == ["hold"]
    assert r.xcoms["d1/r1/review/return_value"]["responded_by_user"] is None


@pytest.mark.supervisor
def test_decorated_hitl_task_sets_the_body_and_resumes_in_its_function() -> None:
    stored = {
        "options": ["red", "green", "blue"],
        "subject": "Pick colours",
        "body": "For run r1: pick any.",
        "defaults": None,
        "multiple": True,
        "params": {},
        "assigned_users": None,
    }
    first = _asked("pick", stored)
    assert first.final_state == "awaiting_input", first.events()
    posted = first.api("POST", HITL_PATH)[0]["body"]
    assert posted["body"] == "For run r1: pick any."
    # Airflow 3.3's Execution API answers 422 to a null assigned_users: nobody is [].
    assert posted["assigned_users"] == []
    assert first.state_patches[0]["timeout"] is None
    r = _resumed("pick", "execute_complete", _resume_kwargs(_answer(["red", "blue"])))
    assert (r.exit_code, r.final_state) == (0, "success"), r.events()
    assert r.xcoms["d1/r1/pick/return_value"] == {
        "count": 2,
        "by": {"id": "u1", "name": "Ada"},
    }


@pytest.mark.supervisor
def test_approval_reject_skips_downstream_and_approve_does_not() -> None:
    rejected = _resumed("gate", "execute_complete", _resume_kwargs(_answer(["Reject"])))
    assert (rejected.exit_code, rejected.final_state) == (0, "success"), rejected.events()
    skips = [c for c in rejected.calls if c["path"].endswith("/skip-downstream")]
    assert [c["body"]["tasks"] for c in skips] == [["deploy"]]
    assert rejected.xcoms["d1/r1/gate/skipmixin_key"] == {"skipped": ["deploy"]}
    assert "d1/r1/gate/return_value" not in rejected.xcoms
    approved = _resumed("gate", "execute_complete", _resume_kwargs(_answer(["Approve"])))
    assert approved.final_state == "success", approved.events()
    assert not [c for c in approved.calls if c["path"].endswith("/skip-downstream")]
    assert approved.xcoms["d1/r1/gate/return_value"]["chosen_options"] == ["Approve"]


@pytest.mark.supervisor
def test_plain_task_asks_with_the_client_and_await_input() -> None:
    stored = {
        "options": ["yes", "no"],
        "subject": "Continue?",
        "body": None,
        "defaults": ["no"],
        "multiple": False,
        "params": None,
        "assigned_users": None,
    }
    first = _asked("asks", stored)
    assert first.final_state == "awaiting_input", first.events()
    posted = first.api("POST", HITL_PATH)[0]["body"]
    # What the 3.3 Execution API accepts: no form fields is {}, nobody assigned is [].
    assert (posted["params"], posted["assigned_users"]) == ({}, [])
    (patch,) = first.state_patches
    assert (patch["next_method"], patch["next_kwargs"], patch["timeout"]) == (
        "answered",
        {"asked": 1},
        "PT30S" if isinstance(patch["timeout"], str) else 30.0,
    )
    r = _resumed("asks", "answered", _resume_kwargs(_answer(["yes"]), asked=1))
    assert (r.exit_code, r.final_state) == (0, "success"), r.events()
    assert r.xcoms["d1/r1/asks/return_value"] == {"yes": True, "asked": 1}


@pytest.mark.supervisor
def test_fail_method_fails_the_hitl_try() -> None:
    r = _resumed("review", "__fail__", {"error": "Unknown", "traceback": ["boom\n"]})
    assert r.final_state in ("failed", "up_for_retry"), r.events()


# -- declaring --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"options": ["a"]}, "subject"),
        ({"subject": "s", "options": []}, "cannot be empty"),
        ({"subject": "s", "options": "ab"}, "list of strings"),
        ({"subject": "s", "options": ["a"], "defaults": "b"}, "subset"),
        ({"subject": "s", "options": ["a", "b"], "defaults": ["a", "b"]}, "multiple"),
        ({"subject": "s", "options": ["a"], "params": {"_options": 1}}, "_options"),
        ({"subject": "s", "options": ["a"], "response_timeout": -1}, "response_timeout"),
        ({"subject": "s", "options": ["a"], "assigned_users": [{"id": 1}]}, "assigned user"),
        ({"subject": "s", "approval": True, "options": ["a"]}, "fixed options"),
        ({"subject": "s", "options": ["a"], "fail_on_reject": True}, "approval=True"),
    ],
)
def test_bad_hitl_options_are_usage_errors(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(UsageError, match=words):
        hitl_options(**kwargs)


def test_hitl_options_shape() -> None:
    opts = hitl_options(
        subject="s",
        approval=True,
        defaults="Approve",
        params={"n": Param(3, type="integer")},
        response_timeout=datetime.timedelta(minutes=2),
    )
    assert opts["options"] == ["Approve", "Reject"] and opts["defaults"] == ["Approve"]
    assert opts["params"] == {
        "n": {"value": 3, "description": None, "schema": {"type": "integer"}, "source": "task"}
    }
    assert opts["response_timeout"] == 120.0


def test_await_input_message() -> None:
    pause = pause_for_input(AwaitInput("later", kwargs={"k": (1, 2)}, timeout=5))
    msg = pause.terminal
    assert (msg.next_method, msg.timeout, msg.state) == ("later", 5.0, "awaiting_input")  # type: ignore[attr-defined]
    assert msg.next_kwargs == {  # type: ignore[attr-defined]
        "k": {"__classname__": "builtins.tuple", "__version__": 1, "__data__": [1, 2]}
    }
    with pytest.raises(UsageError, match="identifier"):
        AwaitInput("not one")
    with pytest.raises(UsageError, match="reserved"):
        AwaitInput("__fail__")


# -- trio-coord run ---------------------------------------------------------------------


def _local(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main([BUNDLE, "d1", *argv, "--json", "--timeout", "60"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else {}), err


def test_local_run_ends_awaiting_input_and_shows_the_question(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, summary, err = _local(capsys, "review")
    assert summary["state"] == "awaiting_input" and summary["terminal"] == "AwaitInputTask"
    assert summary["requests"] == {"AwaitInputTask": 1, "CreateHITLDetailPayload": 1}
    assert code != 0  # not success: the run is not over
    assert "awaiting input: 'Ship release?' (options: ship, hold, drop)" in err


def test_local_run_hitl_answer_resumes_with_it(capsys: pytest.CaptureFixture[str]) -> None:
    answer = '{"chosen_options": ["ship"], "params_input": {"note": "ok"}}'
    code, summary, err = _local(capsys, "review", "--hitl-answer", answer)
    assert (code, summary["state"]) == (0, "success"), err
    pushed = summary["xcoms"]["return_value"]
    assert (pushed["chosen_options"], pushed["params_input"]) == (["ship"], {"note": "ok"})
    assert "resuming in 'execute_complete'" in err
    code, summary, err = _local(capsys, "asks", "--hitl-answer", "yes")
    assert (code, summary["xcoms"]["return_value"]) == (0, {"yes": True, "asked": 1}), err


def test_local_run_refuses_an_answer_the_question_does_not_offer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = _local(capsys, "review", "--hitl-answer", "launch")
    assert code == 2
    assert "launch not offered; the options of 'Ship release?' are ship, hold, drop" in err
    code, _, err = _local(capsys, "review", "--hitl-answer", "ship,hold")
    assert code == 2 and "accepts a single option" in err
    code, _, err = _local(capsys, "review", "--hitl-answer", "{bad")
    assert code == 2 and "OPTION[,OPTION...]" in err


def test_local_whole_dag_answers_the_approval(capsys: pytest.CaptureFixture[str]) -> None:
    """Whole DAG with --hitl-answer Reject: every asking task resumes; the gate skips deploy."""
    main([BUNDLE, "d1", "--hitl-answer", "Reject", "--json", "--timeout", "120"])
    out, err = capsys.readouterr()
    report = json.loads(out)
    states = {ti["task_id"]: ti["state"] for ti in report["task_instances"]}
    assert states["gate"] == "success", err
    assert states["deploy"] == "skipped", err
    assert states["review"] == "awaiting_input"  # "Reject" is not one of its options


# -- what Airflow parses ----------------------------------------------------------------

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

EXPORT = """
import sys
sys.path.insert(0, {harness!r})
from bundle_hitl import bundle
from trio_coord.airflow import export_dags
export_dags(bundle, globals())
"""


def test_export_and_native_documents_mark_only_the_approval_as_skipping(tmp_path: Path) -> None:
    """A hitl task is a stub for the scheduler (the question lives in the runtime); the
    approval task is marked as a SkipMixin operator on both routes."""
    from airflow_harness import bundle_hitl

    from trio_coord.dagparse import serialize_dag

    path = tmp_path / "hitl_dag.py"
    path.write_text(EXPORT.format(harness=str(Path(__file__).parent / "airflow_harness")))
    out = run_airflow_script(SERIALIZE, str(path), home=tmp_path / "home")
    assert out["errors"] == {}
    tasks = {t["__var"]["task_id"]: t["__var"] for t in out["doc"]["dag"]["tasks"]}
    assert set(tasks) == {"review", "pick", "gate", "deploy", "asks"}
    marked = {tid for tid, t in tasks.items() if t.get("_can_skip_downstream")}
    assert marked == {"gate"}
    native = serialize_dag(bundle_hitl.d1, fileloc=str(path), relative_fileloc="hitl_dag.py")
    native_marked = {
        t["__var"]["task_id"]
        for t in native["dag"]["tasks"]
        if t["__var"].get("_can_skip_downstream")
    }
    assert native_marked == marked


def test_await_input_from_a_nursery_pauses_the_try() -> None:
    """AwaitInput raised in a task's nursery (an exception group) still awaits input;
    together with an error, the try fails."""
    from trio_coord.runtime.deferral import PauseTry, pause_for_group

    paused = pause_for_group(BaseExceptionGroup("g", [AwaitInput("later")]))
    assert isinstance(paused, PauseTry)
    assert paused.terminal.TYPE == "AwaitInputTask"
    mixed = pause_for_group(BaseExceptionGroup("g", [AwaitInput("later"), ValueError("x")]))
    assert isinstance(mixed, RuntimeError)
