"""The pure protocol model on its own: its verdicts reproduce the tables of protocol.md,
and it stays independent of the implementation."""

from __future__ import annotations

import datetime
import subprocess
import sys

import pytest

from model.protocol_model import (
    CLIENT_CALLS,
    DIRECT_STATE,
    REQUEST_TYPES,
    SUCCESS_BODY,
    TERMINAL_TYPES,
    Answer,
    AnswerKind,
    Conversation,
    FirstFrame,
    LogVerdict,
    ModelViolation,
    Outcome,
    Phase,
    RaiseKind,
    RunModel,
    check_request,
    derive_final_state,
    expected_exit_code,
    judge_log_line,
    log_threshold,
    outcome_of,
)

UTC = datetime.UTC


def test_model_imports_neither_trio_msgpack_nor_trio_coord() -> None:
    """Importing model.protocol_model in a fresh interpreter loads no trio, msgpack or trio_coord."""
    code = (
        "import sys, model.protocol_model\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('trio', 'msgpack', 'msgspec', 'trio_coord'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_catalogue_has_the_55_request_types_and_6_terminals() -> None:
    """The catalogue holds Appendix A's 55 request types, six of them terminal."""
    assert len(REQUEST_TYPES) == 55
    assert TERMINAL_TYPES <= REQUEST_TYPES and len(TERMINAL_TYPES) == 6
    assert set(DIRECT_STATE) == TERMINAL_TYPES - {"TaskState"}
    assert set(CLIENT_CALLS.values()) <= REQUEST_TYPES


# §7.2, row by row: (rc, terminal type, terminal state, should_retry) -> (state, API call, stuck)
FINAL_STATE_TABLE = [
    (0, None, None, False, "success", None, True),
    (0, "TaskState", "failed", False, "failed", "finish", False),
    (0, "SucceedTask", "success", False, "success", None, False),
    (0, "RetryTask", "up_for_retry", True, "up_for_retry", None, False),
    (0, "DeferTask", "deferred", False, "deferred", None, False),
    (0, "RescheduleTask", "up_for_reschedule", False, "up_for_reschedule", None, False),
    (3, "TaskState", "skipped", False, "failed", "finish", False),
    (1, None, None, False, "failed", "finish", False),
    (1, None, None, True, "up_for_retry", None, True),
    (1, "SucceedTask", "success", False, "failed", "finish", False),
]


@pytest.mark.parametrize(
    ("rc", "ttype", "tstate", "retry", "state", "call", "stuck"), FINAL_STATE_TABLE
)
def test_final_state_reproduces_the_spec_table(
    rc: int,
    ttype: str | None,
    tstate: str | None,
    retry: bool,
    state: str,
    call: str | None,
    stuck: bool,
) -> None:
    """derive_final_state gives protocol.md §7.2's final state, exit-time API call and stuck flag."""
    got = derive_final_state(
        exit_code=rc,
        terminal_type=ttype,
        terminal_state=tstate,
        api_failed=False,
        should_retry=retry,
    )
    assert (got.state, got.api_call, got.stuck) == (state, call, stuck)


def test_failed_direct_call_is_replayed_whatever_the_exit_code() -> None:
    """A direct-state message whose PATCH failed is replayed once at exit (§7.1 rule 1)."""
    for rc in (0, 1):
        got = derive_final_state(
            exit_code=rc,
            terminal_type="SucceedTask",
            terminal_state="success",
            api_failed=True,
            should_retry=False,
        )
        assert (got.state, got.api_call) == ("success", "replay")


def test_exit_code_fails_closed_only_for_undelivered_failures() -> None:
    """Exit 1 without a terminal or with an undelivered failure; otherwise 0 (§6.1, §9.9)."""
    assert expected_exit_code(terminal_state=None, delivered=False) == 1
    assert expected_exit_code(terminal_state="failed", delivered=False) == 1
    assert expected_exit_code(terminal_state="up_for_retry", delivered=False) == 1
    assert expected_exit_code(terminal_state="success", delivered=False) == 0
    assert expected_exit_code(terminal_state="failed", delivered=True) == 0


@pytest.mark.parametrize(
    ("line", "verdict"),
    [
        (
            b'{"level":"info","event":"x","timestamp":"2024-01-02T03:04:05.123456Z"}',
            LogVerdict.ACCEPTED,
        ),
        (b'{"level":"info","timestamp":"2024-01-02 03:04:05+02:00"}', LogVerdict.ACCEPTED),
        (b'{"level":"INFO","event":"x"}', LogVerdict.DROPPED),
        (b'{"level":"notset","event":"x"}', LogVerdict.DROPPED),
        (b'{"level":"trace","event":"x"}', LogVerdict.DROPPED),
        (b'{"event":"x"}', LogVerdict.FATAL),
        (b"[1,2]", LogVerdict.FATAL),
        (b'{"level":["info"]}', LogVerdict.FATAL),
        (b'{"level":"info","timestamp":"2024-01-02"}', LogVerdict.FATAL),
        (b'{"level":"info","timestamp":1700000000}', LogVerdict.FATAL),
        (b'{"level":"info","self":1}', LogVerdict.FATAL),
        (b'{"level":"info","method_name":"x"}', LogVerdict.FATAL),
        (b'{"level":"info"', LogVerdict.MALFORMED),
        (b'{"level":"info","x":NaN}', LogVerdict.MALFORMED),
        (b"\xff", LogVerdict.MALFORMED),
    ],
)
def test_log_lines_are_judged_like_the_supervisor(line: bytes, verdict: LogVerdict) -> None:
    """judge_log_line gives §8.2 / §12 rows 24-30's verdict for each kind of line."""
    assert judge_log_line(line)[0] is verdict


def test_log_threshold_takes_the_longest_namespace_prefix() -> None:
    """The namespace entry with the longest dotted prefix wins; malformed entries are ignored (§8.3)."""
    ns = "a=ERROR, a.b=debug bogus a.bc=critical x="
    assert log_threshold("a.b.c", "warning", ns) == 10
    assert log_threshold("a.bcd", "warning", ns) == 40
    assert log_threshold("zzz", "warning", ns) == 30
    assert log_threshold("zzz", "nonsense", None) == 20


def test_conversation_refuses_sends_before_startup_and_after_the_terminal() -> None:
    """The runtime may send only between StartupDetails and its one terminal message."""
    conv = Conversation()
    assert not conv.may_send("GetVariable")
    with pytest.raises(ModelViolation):
        conv.runtime_sent(1, "GetVariable")
    conv.first_frame(ok=True)
    conv.runtime_sent(1, "GetVariable")
    with pytest.raises(ModelViolation, match="reused"):
        conv.runtime_sent(1, "GetVariable")
    conv.runtime_sent(2, "SucceedTask")
    assert conv.phase is Phase.TERMINAL_SENT
    with pytest.raises(ModelViolation):
        conv.runtime_sent(3, "GetVariable")
    assert conv.supervisor_replied(1) == "reply"
    assert conv.supervisor_replied(1) == "stray"
    assert conv.supervisor_replied(2) == "terminal"
    assert conv.supervisor_replied(2) == "after-end"


def test_answers_map_to_outcomes_by_placement_and_error() -> None:
    """Not-found, permission-denied, error element and a nil typed body each mean what §3.7/§12 say."""
    nf = Answer(AnswerKind.ERROR_BODY, "VARIABLE_NOT_FOUND")
    assert outcome_of("GetVariable", nf) is Outcome.NOT_FOUND
    assert outcome_of("GetVariable", nf, has_default=True) is Outcome.VALUE
    denied = Answer(AnswerKind.ERROR_BODY, "PERMISSION_DENIED")
    assert outcome_of("GetVariable", denied, has_default=True) is Outcome.PERMISSION_DENIED
    assert outcome_of("SetXCom", Answer(AnswerKind.ERROR_ELEMENT)) is Outcome.SUPERVISOR_ERROR
    assert outcome_of("GetVariable", Answer(AnswerKind.EMPTY)) is Outcome.BAD_REPLY
    assert outcome_of("SetXCom", Answer(AnswerKind.EMPTY)) is Outcome.VALUE
    assert all(SUCCESS_BODY[t] is None for t in TERMINAL_TYPES)


def test_check_request_names_what_the_supervisor_would_drop() -> None:
    """check_request flags naive datetimes, null outlets, unknown types, bad carriers and bad ids."""
    now = datetime.datetime(2024, 1, 1, tzinfo=UTC)
    ok = [1, {"end_date": now, "task_outlets": [], "outlet_events": [], "type": "SucceedTask"}]
    assert check_request(ok) == []
    assert check_request([1, {**ok[1], "end_date": "2024-01-01T00:00:00"}])
    assert check_request([1, {**ok[1], "task_outlets": None}])
    assert check_request([1, {**ok[1], "extra": 1}])
    assert check_request([1, {"type": "Nope"}])
    assert check_request([1, {"key": "k", "type": "GetVariable"}, {"traceparent": 1}])
    assert check_request(["1", {"key": "k", "type": "GetVariable"}])
    assert check_request([1])


def test_run_model_scripts_a_return_with_a_value() -> None:
    """A returned value is pushed as an XCom before SucceedTask, and delivery means exit 0."""
    run = RunModel(should_retry=False, request_timeout=10.5, terminal_timeout=20.5)
    run.first_frame(FirstFrame.STARTUP)
    run.task_returns(True)
    assert run.saw_request(1, "SetXCom").purpose == "push"
    run.answer(1, Answer(AnswerKind.RESULT))
    assert run.saw_request(2, "SucceedTask").purpose == "terminal"
    run.answer(2, Answer(AnswerKind.EMPTY))
    assert run.exit_codes == {0}
    assert run.final_state(0).state == "success"


def test_run_model_times_out_a_request_and_then_fails_the_push() -> None:
    """A push with no reply within the request timeout fails the task by should_retry."""
    run = RunModel(should_retry=True, request_timeout=10.5, terminal_timeout=20.5)
    run.first_frame(FirstFrame.STARTUP)
    run.task_returns(True)
    run.saw_request(1, "SetXCom")
    run.time_passes(10.0)
    assert run.owed == type(run.owed)()
    run.time_passes(1.0)
    assert [e.request_type for e in run.owed] == ["RetryTask"]


def test_run_model_lost_channel_mid_task_means_exit_1_and_no_terminal() -> None:
    """EOF while the task runs ends the run with exit 1, calls gone or cancelled."""
    run = RunModel(should_retry=False, request_timeout=10.5, terminal_timeout=20.5)
    run.first_frame(FirstFrame.STARTUP)
    step = run.task_call("get_variable")
    run.saw_request(1, "GetVariable")
    run.close_comm()
    assert run.exit_codes == {1}
    assert run.outcomes[step] == {Outcome.GONE, Outcome.CANCELLED}


def test_run_model_skip_fail_error_choose_the_terminal() -> None:
    """Skip, fail and other errors end in TaskState(skipped), TaskState(failed), RetryTask (§6.2)."""
    expect = {
        (RaiseKind.SKIP, True): ("TaskState", "skipped"),
        (RaiseKind.FAIL, True): ("TaskState", "failed"),
        (RaiseKind.ERROR, True): ("RetryTask", "up_for_retry"),
        (RaiseKind.ERROR, False): ("TaskState", "failed"),
    }
    for (kind, retry), terminal in expect.items():
        run = RunModel(should_retry=retry, request_timeout=10.5, terminal_timeout=20.5)
        run.first_frame(FirstFrame.STARTUP)
        run.task_raises(kind, "tok")
        assert run.terminal == terminal
