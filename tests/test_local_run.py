"""``trio-coord run``: the embedded supervisor, its rules, and real runs of ``trio-coord serve``.

Three layers, cheapest first:

* pure pieces (options, log-line rules, final-state rules, the supervisor-side frame
  helpers) as tables;
* :class:`EmbeddedSupervisor` against a scripted runtime over memory streams, driven by
  the runtime's own sans-IO :class:`CommConnection`, with a fake process and virtual time
  for every timeout;
* real runs: ``trio_coord.local.main`` (and the ``python -m`` entry points) starting a real
  ``trio-coord serve`` process on example and ``tmp_path`` bundles.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from trio_coord.errors import RemoteProtocolError, UsageError
from trio_coord.local import main
from trio_coord.local.logs import Printer, check_log_line, format_record
from trio_coord.local.options import RunOptions, parse_args
from trio_coord.local.session import NO_FD_PASSING, UNHANDLED, UNSUPPORTED, Session, final_state
from trio_coord.local.supervisor import EmbeddedSupervisor, Limits
from trio_coord.protocol import NEED_DATA, CommConnection, Reply, Startup
from trio_coord.protocol.codec import packb
from trio_coord.protocol.framing import FrameDecoder, encode_frame
from trio_coord.protocol.messages import (
    ErrorResponse,
    GetDag,
    GetVariable,
    GetXCom,
    MaskSecret,
    Request,
    SetXCom,
    SucceedTask,
    TaskState,
    UpdateHITLDetail,
    VariableResult,
    XComResult,
)
from trio_coord.protocol.peer import decode_request_frame, encode_reply_frame
from trio_coord.runtime.masking import Masker

ROOT = Path(__file__).resolve().parents[1]
HELLO = str(ROOT / "examples" / "hello_bundle.py")

# A real run is a child interpreter; this bounds each one generously, far above need.
REAL_RUN_TIMEOUT = "60"


# == pure pieces ==========================================================================


@pytest.mark.parametrize(
    ("flag", "expected"),
    [
        ('greet.return_value={"a": 1}', (("greet", "return_value"), {"a": 1})),
        ("group.inner.key=2", (("group.inner", "key"), 2)),
        ('greet="hi"', (("greet", "return_value"), "hi")),
        ("t.k=null", (("t", "k"), None)),
    ],
)
def test_xcom_flag_splits_task_and_key_at_the_last_dot(
    flag: str, expected: tuple[tuple[str, str], Any]
) -> None:
    """--xcom TASK.KEY=JSON takes the key after the last dot, and TASK=JSON means return_value."""
    opts = parse_args([HELLO, "hello", "greet", "--xcom", flag])
    assert list(opts.xcoms.items()) == [expected]


def test_conn_flag_uri_becomes_a_connection_result_with_json_extra() -> None:
    """An Airflow URI is split into fields, its query becomes extra, sent as a JSON string."""
    opts = parse_args(
        [
            HELLO,
            "d",
            "t",
            "--conn",
            "db=postgres-x://bob:p%40ss@db.example:5432/mydb?sslmode=require",
        ]
    )
    conn = opts.connections["db"]
    assert (conn.conn_type, conn.host, conn.port, conn.login, conn.password, conn.schema) == (
        "postgres_x",
        "db.example",
        5432,
        "bob",
        "p@ss",
        "mydb",
    )
    assert conn.extra is not None and json.loads(conn.extra) == {"sslmode": "require"}


def test_conn_flag_accepts_the_json_form() -> None:
    """A value starting with { is read as Airflow's JSON connection form."""
    opts = parse_args(
        [HELLO, "d", "t", "--conn", 'api={"conn_type": "http", "host": "h", "extra": {"k": 1}}']
    )
    conn = opts.connections["api"]
    assert (conn.conn_type, conn.host, conn.port) == ("http", "h", None)
    assert conn.extra is not None and json.loads(conn.extra) == {"k": 1}


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        ([HELLO], "required: DAG_ID"),
        (["missing.py", "d", "t"], "does not exist"),
        (["some.module", "d", "t"], "MODULE:ATTR"),
        ([HELLO, "bad id", "t"], "DAG_ID"),
        ([HELLO, "d", "t", "--var", "novalue"], "KEY=VALUE"),
        ([HELLO, "d", "t", "--conn", "db=localhost"], "URI"),
        ([HELLO, "d", "t", "--xcom", "a.b=not json"], "not JSON"),
        ([HELLO, "d", "t", "--xcom", "a.b=NaN"], "not JSON"),
        ([HELLO, "d", "t", "--conf", "[1]"], "JSON object"),
        ([HELLO, "d", "t", "--try-number", "0"], "at least 1"),
        ([HELLO, "d", "t", "--map-index", "-2"], "-1"),
        ([HELLO, "d", "t", "--timeout", "0"], "positive"),
        ([HELLO, "d", "t", "--run-id", " "], "--run-id"),
        ([HELLO, "d", "t", "--nope"], "unrecognized"),
    ],
)
def test_usage_errors_are_one_sentence(argv: list[str], fragment: str) -> None:
    """Every bad command line raises UsageError with a message naming the problem."""
    with pytest.raises(UsageError, match=re.escape(fragment)):
        parse_args(argv)


@pytest.mark.parametrize(
    ("line", "kind", "fragment"),
    [
        (
            b'{"level": "info", "event": "hi", "timestamp": "2026-01-02T03:04:05.123Z"}',
            "record",
            "",
        ),
        (b'{"level": "info", "timestamp": "2026-01-02 03:04:05+02:00"}', "record", ""),
        (b"not json", "dropped", "malformed JSON"),
        (b'{"level": "INFO", "event": "x"}', "dropped", "'INFO'"),
        (b'{"level": "notset", "event": "x"}', "dropped", "'notset'"),
        (b"[1, 2]", "fatal", "list"),
        (b'{"event": "x"}', "fatal", "without 'level'"),
        (b'{"level": ["info"]}', "fatal", "level is a list"),
        (b'{"level": "info", "timestamp": "2026-01-02T03:04Z"}', "fatal", "RFC 3339"),
        (b'{"level": "info", "timestamp": 1700000000}', "fatal", "RFC 3339"),
        (b'{"level": "info", "self": 1}', "fatal", "'self'"),
        (b'{"level": "info", "method_name": "x"}', "fatal", "'method_name'"),
    ],
)
def test_log_lines_are_judged_by_the_supervisor_rules(
    line: bytes, kind: str, fragment: str
) -> None:
    """A log line is kept, dropped or fatal exactly as protocol.md §8.2 and §12 rows 24-30 say."""
    judged = check_log_line(line)
    assert getattr(judged, kind) is not None
    assert [a for a in ("record", "dropped", "fatal") if getattr(judged, a) is not None] == [kind]
    if fragment:
        assert fragment in getattr(judged, kind)


def test_format_record_hides_the_try_context_and_shows_other_fields() -> None:
    """Bound fields equal to the try's are left out; any other field is printed as key=value."""
    context = {"ti_id": "abc", "dag_id": "d"}
    record = {
        "timestamp": "2026-01-02T03:04:05.123456Z",
        "level": "warning",
        "event": "disk low",
        "logger": "task",
        "ti_id": "abc",
        "dag_id": "other",
        "free": "3 GB",
        "n": 2,
    }
    (line,) = format_record(record, context)
    assert re.fullmatch(
        r'\d\d:\d\d:\d\d\.\d{3} WARNING task: disk low dag_id=other free="3 GB" n=2', line
    )


def test_format_record_prints_the_exception_chain_cause_first() -> None:
    """An exception chain (outermost first on the wire) prints like Python: the cause first."""
    record = {
        "level": "error",
        "event": "failed",
        "logger": "task",
        "exception": [
            {"exc_type": "RuntimeError", "exc_value": "outer", "is_cause": False, "frames": []},
            {
                "exc_type": "KeyError",
                "exc_value": "'k'",
                "is_cause": True,
                "frames": [{"filename": "b.py", "lineno": 3, "name": "f"}],
            },
        ],
    }
    lines = format_record(record)[1:]
    assert lines == [
        "    Traceback (most recent call last):",
        '      File "b.py", line 3, in f',
        "    KeyError: 'k'",
        "    The above exception was the direct cause of the following exception:",
        "    RuntimeError: outer",
    ]


@pytest.mark.parametrize(
    ("terminal", "rc", "should_retry", "state", "defect"),
    [
        ("success", 0, False, "success", False),
        ("failed", 0, True, "failed", False),
        ("up_for_retry", 0, False, "up_for_retry", False),
        ("deferred", 0, False, "deferred", False),
        (None, 0, False, "success", True),
        ("skipped", 3, False, "failed", False),
        ("skipped", 3, True, "up_for_retry", True),
        ("up_for_retry", 1, True, "up_for_retry", False),
        (None, 1, False, "failed", False),
        (None, 1, True, "up_for_retry", True),
        (None, -9, False, "failed", False),
        ("success", 1, False, "failed", True),
    ],
)
def test_final_state_follows_the_supervisor_rules(
    terminal: str | None, rc: int, should_retry: bool, state: str, defect: bool
) -> None:
    """The terminal state counts only on exit 0; otherwise should_retry decides (§7.1, §7.2)."""
    got, note, found = final_state(terminal, rc, should_retry)
    assert got == state
    assert (found is not None) == defect
    assert (note is None) == (rc == 0 and terminal is not None)


def test_request_frame_helpers_round_trip_with_the_runtime_core() -> None:
    """A request the runtime core encodes decodes here, and our reply decodes in the core."""
    conn = CommConnection()
    conn.receive_data(encode_reply_frame(0, _session().details))
    assert isinstance(conn.next_event(), Startup)
    request_id, data = conn.send_request(GetVariable(key="k"))
    frame = decode_request_frame(data[4:])
    assert (frame.request_id, frame.body, frame.problem) == (request_id, GetVariable(key="k"), None)
    conn.receive_data(encode_reply_frame(request_id, VariableResult(key="k", value="v")))
    event = conn.next_event()
    assert isinstance(event, Reply) and event.result() == VariableResult(key="k", value="v")


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        ([1, None], "nil"),
        ([1, {"key": "k"}], "unknown request type None"),
        ([1, {"type": "GetVariabel", "key": "k"}], "unknown request type 'GetVariabel'"),
        ([1, {"type": "GetVariable"}], "'key' is missing"),
        ([1, {"type": "GetVariable", "key": 5}], "expected str"),
    ],
)
def test_undecodable_bodies_are_dropped_not_fatal(frame: list[Any], problem: str) -> None:
    """A body the supervisor cannot validate decodes to a frame with a problem and no request."""
    decoded = decode_request_frame(packb(frame))
    assert decoded.body is None and decoded.problem is not None and problem in decoded.problem


@pytest.mark.parametrize(
    "frame", [{"a": 1}, [1], ["1", {"type": "GetVariable", "key": "k"}], [1, {}, {"t": 1}]]
)
def test_frames_fatal_for_the_supervisor_raise(frame: Any) -> None:
    """Not an array of two, a non-integer id or a bad carrier raise (§12 rows 1-3)."""
    with pytest.raises(RemoteProtocolError):
        decode_request_frame(packb(frame))


def test_session_answers_like_the_supervisor() -> None:
    """Seeded values answer; misses are body errors or nil XComs; others get the 501 element."""
    session = _session(
        RunOptions(
            bundle=HELLO,
            dag_id="d",
            task_id="t",
            variables={"v": "1"},
            xcoms={("up", "return_value"): [1, 2]},
        )
    )
    run_id = session.details.ti.run_id

    def ask(msg: Request) -> Any:
        return session.answer(decode_request_frame(_request_payload(7, msg)))

    assert ask(GetVariable(key="v")) == (VariableResult(key="v", value="1"), None)
    assert ask(GetVariable(key="w")) == (
        ErrorResponse(error="VARIABLE_NOT_FOUND", detail={"key": "w"}),
        None,
    )
    pull = GetXCom(key="return_value", dag_id="d", run_id=run_id, task_id="up")
    assert ask(pull) == (XComResult(key="return_value", value=[1, 2]), None)
    missing = GetXCom(key="other", dag_id="d", run_id=run_id, task_id="up")
    assert ask(missing) == (XComResult(key="other", value=None), None)
    assert ask(GetDag(dag_id="d"))[1].detail["status_code"] == 404  # the DAGs were not loaded
    assert UNSUPPORTED.to_map()["detail"] == {
        "status_code": 501,
        "message": "not supported by trio-coord run",
    }
    assert session.requests == {"GetVariable": 2, "GetXCom": 2, "GetDag": 1}


def test_startup_details_reflect_the_options() -> None:
    """try, map index, should_retry, conf and seeded own XComs shape StartupDetails (§4.1, §9.2)."""
    opts = RunOptions(
        bundle=HELLO,
        dag_id="d",
        task_id="t",
        try_number=3,
        map_index=2,
        should_retry=True,
        conf={"a": 1},
        run_id="r1",
        xcoms={("t", "old"): 1, ("up", "x"): 2},
    )
    details = _session(opts).details
    ti, ctx = details.ti, details.ti_context
    assert (ti.try_number, ti.map_index, ti.run_id, ti.queue) == (3, 2, "r1", "trio-coord")
    assert (ctx.should_retry, ctx.max_tries, ctx.xcom_keys_to_clear) == (True, 3, ["old"])
    assert (ctx.dag_run.conf, ctx.dag_run.run_type, ctx.dag_run.state) == (
        {"a": 1},
        "manual",
        "running",
    )
    assert (
        _session(RunOptions(bundle=HELLO, dag_id="d", task_id="t")).details.ti_context.max_tries
        == 0
    )


# == the embedded supervisor against a scripted runtime ===================================


class MemoryListener(trio.abc.Listener[trio.abc.Stream]):
    """A listener whose connections are memory stream pairs."""

    def __init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[trio.abc.Stream](1)

    async def connect(self) -> trio.abc.Stream:
        client, server = trio.testing.memory_stream_pair()
        await self._send.send(server)
        return client

    async def accept(self) -> trio.abc.Stream:
        return await self._receive.receive()

    async def aclose(self) -> None:
        self._receive.close()
        await trio.lowlevel.checkpoint()


class FakeProcess:
    """A process that exits when told to, or on the signals listed in ``exits_on``."""

    pid = 4242
    stdout = None
    stderr = None

    def __init__(self, exits_on: dict[int, int] | None = None) -> None:
        self.exits_on = {signal.SIGTERM: -signal.SIGTERM} if exits_on is None else exits_on
        self.signals: list[tuple[float, int]] = []
        self.returncode: int | None = None
        self._done = trio.Event()

    def exit(self, rc: int) -> None:
        if self.returncode is None:
            self.returncode = rc
            self._done.set()

    async def wait(self) -> int:
        await self._done.wait()
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        self.signals.append((trio.current_time(), sig))
        if sig in self.exits_on:
            self.exit(self.exits_on[sig])

    def kill(self) -> None:
        self.signals.append((trio.current_time(), signal.SIGKILL))
        self.exit(-signal.SIGKILL)

    async def exited(self) -> None:
        await self._done.wait()


class ScriptedRuntime:
    """The runtime side, built on the runtime's own CommConnection."""

    def __init__(self, comm: trio.abc.Stream, logs: trio.abc.Stream) -> None:
        self.comm, self.logs = comm, logs
        self.conn = CommConnection()

    async def event(self) -> Any:
        while True:
            event = self.conn.next_event()
            if event is not NEED_DATA:
                return event
            self.conn.receive_data(await self.comm.receive_some(65536))

    async def request(self, msg: Request) -> Reply:
        _id, data = self.conn.send_request(msg)
        await self.comm.send_all(data)
        reply = await self.event()
        assert isinstance(reply, Reply)
        return reply

    async def close(self) -> None:
        await self.comm.aclose()
        await self.logs.aclose()


Script = Callable[[ScriptedRuntime, FakeProcess], Awaitable[None]]


async def _supervise(
    script: Script | None,
    *,
    opts: RunOptions | None = None,
    process: FakeProcess | None = None,
    limits: Limits | None = None,
) -> tuple[Any, FakeProcess, Printer, list[str]]:
    """Run the embedded supervisor with ``script`` playing the runtime; return the report."""
    process = process or FakeProcess()
    notices: list[str] = []
    printer = _ListPrinter(notices)
    session = Session(
        opts or RunOptions(bundle=HELLO, dag_id="d", task_id="t"), masker=printer.masker
    )
    supervisor = EmbeddedSupervisor(session, printer, limits or Limits())
    comm_l, logs_l = MemoryListener(), MemoryListener()
    async with trio.open_nursery() as nursery:
        if script is not None:

            async def runtime() -> None:
                rt = ScriptedRuntime(await comm_l.connect(), await logs_l.connect())
                await script(rt, process)
                await process.exited()
                await rt.close()

            nursery.start_soon(runtime)
        report = await supervisor.supervise(process, comm_l, logs_l)
    return report, process, printer, notices


class _ListPrinter(Printer):
    def __init__(self, notices: list[str]) -> None:
        super().__init__(Masker())
        self.lines: list[str] = []
        self.notices = notices

    def _write(self, stream: Any, lines: list[str]) -> None:
        self.lines.extend(self.masker.mask(line) for line in lines)

    def notice(self, text: str) -> None:
        self.notices.append(text)


async def test_scripted_runtime_is_answered_in_order_and_reported() -> None:
    """The first frame is StartupDetails; replies decode in the runtime core; exit 0 + SucceedTask is success."""
    seen: dict[str, Any] = {}

    async def script(rt: ScriptedRuntime, process: FakeProcess) -> None:
        first = await rt.event()
        assert isinstance(first, Startup)
        ti = first.details.ti
        missing = await rt.request(GetVariable(key="nope"))
        seen["missing"] = missing.error
        seen["in_body"] = missing.error_in_body
        seen["hitl"] = (await rt.request(UpdateHITLDetail(ti_id=ti.id, chosen_options=["a"]))).error
        await rt.request(
            SetXCom(
                key="return_value",
                value={"x": 1},
                dag_id=ti.dag_id,
                run_id=ti.run_id,
                task_id=ti.task_id,
            )
        )
        await rt.logs.send_all(b'{"level": "info", "event": "hello", "logger": "task"}\n')
        await rt.request(SucceedTask(end_date=first.details.start_date))
        process.exit(0)

    report, process, printer, notices = await _supervise(script)
    assert seen["missing"] == ErrorResponse(error="VARIABLE_NOT_FOUND", detail={"key": "nope"})
    assert seen["in_body"] is True
    assert seen["hitl"] == UNHANDLED
    assert (report.state, report.note, report.terminal, report.exit_code) == (
        "success",
        None,
        "SucceedTask",
        0,
    )
    assert report.xcoms == {"return_value": {"x": 1}}
    assert report.requests == {
        "GetVariable": 1,
        "SetXCom": 1,
        "SucceedTask": 1,
        "UpdateHITLDetail": 1,
    }
    assert report.status == 0 and report.defects == [] and notices == []
    assert [line.split(" ", 1)[1] for line in printer.lines] == ["INFO    task: hello"]
    assert process.signals == []


async def test_undecodable_request_gets_no_reply_but_later_ones_do() -> None:
    """A body with an unknown type is dropped silently like the real supervisor, and reported."""

    async def script(rt: ScriptedRuntime, process: FakeProcess) -> None:
        await rt.event()
        # Id 99 stays clear of the ids the core allocates (1, 2, ...).
        await rt.comm.send_all(encode_frame(packb([99, {"type": "NoSuchRequest"}])))
        reply = await rt.request(GetVariable(key="k"))
        assert reply.request_id == 1
        await rt.request(SucceedTask(end_date=rt_time()))
        process.exit(0)

    report, _process, _printer, notices = await _supervise(script)
    assert report.state == "success"
    assert report.requests["NoSuchRequest"] == 1
    assert any("dropped without a reply" in d for d in report.defects)
    assert any("request id 99 dropped" in n for n in notices)
    assert report.status == 0  # a defect, but the TI would still end success


async def test_requests_after_the_terminal_are_answered_and_reported() -> None:
    """A request or a second terminal after the first is still answered, but each is a defect."""

    async def script(rt: ScriptedRuntime, process: FakeProcess) -> None:
        await rt.event()
        await rt.comm.send_all(_raw_request(1, SucceedTask(end_date=rt_time())))
        await rt.comm.send_all(_raw_request(2, GetVariable(key="k")))
        await rt.comm.send_all(_raw_request(3, TaskState(state="failed")))
        decoder, replies = FrameDecoder(), 0
        while replies < 3:  # three replies; their content is not the point
            decoder.receive_data(await rt.comm.receive_some())
            while decoder.next_frame() not in (NEED_DATA, None):
                replies += 1
        process.exit(0)

    report, *_ = await _supervise(script)
    assert report.state == "failed"  # the last terminal wins, as in the real supervisor
    assert report.defects == [
        "GetVariable sent after the terminal SucceedTask (§6.1)",
        "a second terminal message, TaskState, after SucceedTask (§6.1)",
    ]


async def test_fatal_frame_ends_the_try_and_reports_a_stuck_ti() -> None:
    """A frame the real supervisor cannot survive is reported as a crash, and the task is stopped."""

    async def script(rt: ScriptedRuntime, process: FakeProcess) -> None:
        await rt.event()
        await rt.comm.send_all(encode_frame(packb({"not": "an array"})))

    report, process, _printer, _notices = await _supervise(script)
    assert report.state == "running"
    assert report.note is not None and "real supervisor would crash" in report.note
    assert [sig for _t, sig in process.signals] == [signal.SIGTERM]
    assert report.status == 1


async def test_fatal_log_line_is_reported_as_a_stuck_ti() -> None:
    """A log record without a level would crash the real supervisor: the report says RUNNING."""

    async def script(rt: ScriptedRuntime, process: FakeProcess) -> None:
        await rt.event()
        await rt.logs.send_all(b'{"event": "no level"}\n')
        await rt.request(SucceedTask(end_date=rt_time()))
        process.exit(0)

    report, *_ = await _supervise(script)
    assert report.state == "running" and report.status == 1
    assert any("without 'level'" in d for d in report.defects)


async def test_mask_secret_masks_later_printed_lines() -> None:
    """After MaskSecret, the value (5+ chars) is printed as *** and a shorter one is not."""

    async def script(rt: ScriptedRuntime, process: FakeProcess) -> None:
        await rt.event()
        await rt.request(MaskSecret(value="hunter22"))
        await rt.request(MaskSecret(value="abcd"))
        await rt.logs.send_all(
            b'{"level": "info", "event": "pw hunter22 and abcd", "logger": "t"}\n'
        )
        await rt.request(SucceedTask(end_date=rt_time()))
        process.exit(0)

    report, _process, printer, _notices = await _supervise(script)
    assert [line.split(" ", 1)[1] for line in printer.lines] == ["INFO    t: pw *** and abcd"]
    assert report.secrets_masked == 2


async def test_startup_timeout_sends_sigterm_then_sigkill(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A process that never connects gets SIGTERM at 10 s and SIGKILL 10 s later (§2.5, §7.4)."""
    process = FakeProcess(exits_on={})
    start = trio.current_time()
    report, *_, notices = await _supervise(None, process=process)
    assert [(t - start, sig) for t, sig in process.signals] == [
        (10.0, signal.SIGTERM),
        (20.0, signal.SIGKILL),
    ]
    assert report.state == "failed" and report.exit_code == -signal.SIGKILL
    assert report.note == "the process did not connect (comm and logs) within 10 s"
    assert any("did not connect" in n for n in notices)


async def test_exit_before_connecting_is_reported(autojump_clock: trio.testing.MockClock) -> None:
    """A process that exits before connecting fails the try with its exit status, unsignalled."""
    process = FakeProcess()

    async def exit_soon() -> None:
        await trio.sleep(1)
        process.exit(4)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(exit_soon)
        report, *_ = await _supervise(None, process=process)
    assert report.note == "the process ended (exit status 4) before connecting"
    assert process.signals == [] and report.status == 1


async def test_run_timeout_terminates_then_kills(autojump_clock: trio.testing.MockClock) -> None:
    """--timeout bounds the run: SIGTERM at the limit, SIGKILL after the 5 s grace."""

    async def script(rt: ScriptedRuntime, process: FakeProcess) -> None:
        await rt.event()

    process = FakeProcess(exits_on={})
    start = trio.current_time()
    report, *_ = await _supervise(script, process=process, limits=Limits(run=30.0))
    assert [(t - start, sig) for t, sig in process.signals] == [
        (30.0, signal.SIGTERM),
        (35.0, signal.SIGKILL),
    ]
    assert report.state == "failed"
    assert report.note is not None and report.note.startswith("timed out after 30 s")


async def test_run_timeout_shorter_than_startup_bounds_the_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A --timeout below the 10 s start-up bound ends the wait for connections at --timeout."""
    process = FakeProcess()
    start = trio.current_time()
    report, *_ = await _supervise(None, process=process, limits=Limits(run=3.0))
    assert [(t - start, sig) for t, sig in process.signals] == [(3.0, signal.SIGTERM)]
    assert report.note == "timed out after 3 s, before connecting"


async def test_process_outliving_its_terminal_is_terminated(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """20 s after the terminal reply a still-running process gets SIGTERM, and it is a defect."""
    replied: list[float] = []

    async def script(rt: ScriptedRuntime, process: FakeProcess) -> None:
        await rt.event()
        await rt.request(SucceedTask(end_date=rt_time()))
        replied.append(trio.current_time())

    process = FakeProcess(exits_on={signal.SIGTERM: 0})
    report, *_ = await _supervise(script, process=process)
    assert [(t - replied[0], sig) for t, sig in process.signals] == [(20.0, signal.SIGTERM)]
    assert report.state == "success"
    assert any("after its terminal message" in d for d in report.defects)


def rt_time() -> Any:
    """An aware 'now' for terminal messages in scripts."""
    import datetime

    return datetime.datetime.now(datetime.UTC)


def _session(opts: RunOptions | None = None) -> Session:
    return Session(opts or RunOptions(bundle=HELLO, dag_id="d", task_id="t"), masker=Masker())


def _request_payload(request_id: int, msg: Request) -> bytes:
    return packb([request_id, msg.to_map()])


def _raw_request(request_id: int, msg: Request) -> bytes:
    """A request frame written by hand, for sequences the runtime core refuses to send."""
    return encode_frame(_request_payload(request_id, msg))


@pytest.mark.parametrize(("label", "defect"), [(None, True), ("label-1", False)])
def test_terminal_without_the_label_is_reported_as_a_defect(
    label: str | None, defect: bool
) -> None:
    """A terminal message that drops a label set earlier is listed as a defect (§6.3); repeating it is not."""
    from trio_coord.protocol.messages import SetRenderedMapIndex, SucceedTask
    from trio_coord.protocol.peer import decode_request_frame

    session = _session()
    session.answer(
        decode_request_frame(_request_payload(1, SetRenderedMapIndex(rendered_map_index="label-1")))
    )
    session.answer(
        decode_request_frame(
            _request_payload(2, SucceedTask(end_date=rt_time(), rendered_map_index=label))
        )
    )
    found = [d for d in session.defects if "would be overwritten with null" in d]
    assert bool(found) is defect


# == real runs of trio-coord serve =========================================================

BUNDLE_SOURCE = """
import os
import trio
import trio_coord
from trio_coord.errors import NotFound, SupervisorError
from trio_coord.protocol.messages import ResendLoggingFD, SetRenderedMapIndex

bundle = trio_coord.Bundle("local_tests")
d = bundle.dag("d")


@d.task
async def variables(client):
    found = await client.get_variable("present")
    fallback = await client.get_variable("absent", default="fallback")
    try:
        await client.get_variable("absent")
    except NotFound as exc:
        missing = [exc.error, exc.detail, exc.in_body]
    return {"found": found, "fallback": fallback, "missing": missing}


@d.task
async def connections(client):
    c = await client.get_connection("db")
    assert c.password == "pw123"
    try:
        await client.get_connection("nope")
    except NotFound as exc:
        missing = [exc.error, exc.detail]
    return {"conn": [c.conn_type, c.host, c.port, c.login, c.password, c.schema, c.extra],
            "missing": missing}


@d.task
async def unsupported(client):
    try:
        await client.request(ResendLoggingFD())
    except SupervisorError as exc:
        return [exc.error, exc.status_code, exc.in_body]


@d.task
async def stale(client):
    return {"stale": await client.get_xcom("old"), "upstream": await client.get_xcom(task_id="up")}


@d.task
async def labelled(client):
    await client.request(SetRenderedMapIndex(rendered_map_index="label-1"))


@d.task
def boom():
    raise RuntimeError("boom")


@d.task
def noisy(log):
    for i in range(1000):
        log.info("line %04d", i)


@d.task
async def secrets(client, log):
    await client.mask_secret("hunter2hunter2")
    await client.mask_secret("abcd")
    c = await client.get_connection("db")
    token = await client.get_variable("api_token")
    plain = await client.get_variable("greeting")
    print("mask:", "hunter2hunter2", "short:", "abcd")
    print("conn password:", c.password)
    print("token:", token, "greeting:", plain)


@d.task
def exit_zero():
    os._exit(0)


@d.task
def exit_three():
    os._exit(3)


@d.task
async def slow(log):
    log.info("sleeping")
    await trio.sleep(120)
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("bundle") / "local_tests_bundle.py"
    path.write_text(textwrap.dedent(BUNDLE_SOURCE))
    return str(path)


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    """``trio_coord.local.main([... --json])``: exit status, the summary object, the logs."""
    code = main([*argv, "--json", "--timeout", REAL_RUN_TIMEOUT])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def test_hello_greet_succeeds_and_prints_its_xcom(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's first command: success, the task's log line, and the pushed XCom in the summary."""
    code = main([HELLO, "hello", "greet", "--timeout", REAL_RUN_TIMEOUT])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert re.search(r"^\d\d:\d\d:\d\d\.\d{3} INFO    task: hello, world \(run manual__", out, re.M)
    assert re.search(
        r'^xcom: +return_value = \{"greeting": "hello, world", "run_id": "manual__', out, re.M
    )
    assert re.search(r"^state: +success$", out, re.M)
    assert re.search(r"^requests: +3 \(GetVariable 1, SetXCom 1, SucceedTask 1\)$", out, re.M)
    assert err == ""


def test_seeded_variable_and_upstream_xcom_reach_the_task(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--var answers GetVariable, and --xcom answers the downstream task's GetXCom."""
    code, summary, _ = run_json(capsys, HELLO, "hello", "greet", "--var", "greeting_name=Ada")
    assert code == 0 and summary["xcoms"]["return_value"]["greeting"] == "hello, Ada"
    code, summary, _ = run_json(
        capsys, HELLO, "hello", "shout", "--xcom", 'greet.return_value={"greeting": "hi"}'
    )
    assert code == 0 and summary["xcoms"] == {"return_value": "HI"}


def test_missing_variable_uses_the_default_or_is_not_found(
    bundle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing variable is VARIABLE_NOT_FOUND in the reply body, so a default applies."""
    code, summary, _ = run_json(capsys, bundle, "d", "variables", "--var", "present=yes")
    assert code == 0
    assert summary["xcoms"]["return_value"] == {
        "found": "yes",
        "fallback": "fallback",
        "missing": ["VARIABLE_NOT_FOUND", {"key": "absent"}, True],
    }


def test_connection_from_conn_flag(bundle: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--conn ID=URI is served as a ConnectionResult; an unknown id is CONNECTION_NOT_FOUND.

    The password reaches the task (its length shows it is the real one) but the summary
    masks it, like every string it prints.
    """
    code, summary, _ = run_json(
        capsys,
        bundle,
        "d",
        "connections",
        "--conn",
        "db=postgres://bob:pw123@db.example:5433/mydb?sslmode=require",
    )
    assert code == 0
    assert summary["xcoms"]["return_value"] == {
        "conn": ["postgres", "db.example", 5433, "bob", "***", "mydb", {"sslmode": "require"}],
        "missing": ["CONNECTION_NOT_FOUND", {"conn_id": "nope"}],
    }


def test_resend_logging_fd_is_refused_with_a_clear_error(
    bundle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """ResendLoggingFD (meaningless over TCP) is refused with a 400 error element saying why."""
    code, summary, _ = run_json(capsys, bundle, "d", "unsupported")
    assert code == 0
    assert summary["xcoms"]["return_value"] == ["API_SERVER_ERROR", 400, False]
    assert "cannot be passed over TCP" in NO_FD_PASSING.to_map()["detail"]["message"]


def test_own_seeded_xcoms_are_cleared_before_the_task_runs(
    bundle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """XComs seeded for the task itself are in xcom_keys_to_clear, so the runtime deletes them first."""
    code, summary, _ = run_json(
        capsys, bundle, "d", "stale", "--xcom", "stale.old=1", "--xcom", "up=[1, 2]"
    )
    assert code == 0
    assert summary["xcoms"]["return_value"] == {"stale": None, "upstream": [1, 2]}
    assert summary["requests"]["DeleteXCom"] == 1


@pytest.mark.parametrize(
    ("flags", "state", "terminal"),
    [([], "failed", "TaskState"), (["--should-retry"], "up_for_retry", "RetryTask")],
)
def test_failure_is_failed_or_up_for_retry(
    bundle: str, capsys: pytest.CaptureFixture[str], flags: list[str], state: str, terminal: str
) -> None:
    """A raising task ends failed, or up_for_retry with --should-retry; either way exit 1."""
    code, summary, logs = run_json(capsys, bundle, "d", "boom", *flags)
    assert code == 1
    assert (summary["state"], summary["terminal"], summary["exit_code"]) == (state, terminal, 0)
    assert summary["last_error"] == "task failed: RuntimeError: boom"
    assert "    RuntimeError: boom" in logs.splitlines()


def test_label_survives_the_terminal_message(
    bundle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A SetRenderedMapIndex label is repeated by the runtime in its terminal message (§6.3): no defect."""
    code, summary, _ = run_json(capsys, bundle, "d", "labelled")
    assert summary["requests"] == {"SetRenderedMapIndex": 1, "SucceedTask": 1}
    assert summary["rendered_map_index"] == "label-1"
    assert not any("would be overwritten" in d for d in summary["defects"])
    assert code == 0


def test_unknown_task_is_refused_before_starting(
    bundle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A task id the bundle does not have is a usage error (exit 2) naming the ids it has."""
    assert main([bundle, "d", "no_such_task", "--timeout", REAL_RUN_TIMEOUT]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("trio-coord run: error: DAG 'd' has no task 'no_such_task'")
    assert "\n  d: " in err


def test_thousand_log_lines_arrive_complete_and_in_order(
    bundle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every task-log line is printed once, in the order it was logged."""
    code = main([bundle, "d", "noisy", "--timeout", REAL_RUN_TIMEOUT])
    out, _ = capsys.readouterr()
    assert code == 0
    lines = re.findall(r"^\d\d:\d\d:\d\d\.\d{3} INFO    task: line (\d{4})$", out, re.M)
    assert lines == [f"{i:04d}" for i in range(1000)]


def test_secrets_are_masked_in_printed_output(
    bundle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """MaskSecret values, connection passwords and sensitive variables (5+ chars) print as ***."""
    code = main(
        [
            bundle,
            "d",
            "secrets",
            "--conn",
            "db=postgres://bob:conn-pass-9@h/db",
            "--var",
            "api_token=tok-123456",
            "--var",
            "greeting=hello-there",
            "--timeout",
            REAL_RUN_TIMEOUT,
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, out + err
    for secret in ("hunter2hunter2", "conn-pass-9", "tok-123456"):
        assert secret not in out + err
    assert "task.stdout: mask: *** short: abcd" in out
    assert "task.stdout: conn password: ***" in out
    assert "task.stdout: token: *** greeting: hello-there" in out


def test_exit_zero_without_terminal_is_flagged(
    bundle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 0 with no terminal message reads success but is a defect, and exits 1."""
    code, summary, _ = run_json(capsys, bundle, "d", "exit_zero")
    assert code == 1
    assert (summary["state"], summary["note"]) == (
        "success",
        "no terminal message: the TI would be stuck RUNNING",
    )
    assert any("without a terminal message" in d for d in summary["defects"])


@pytest.mark.parametrize(("flags", "state"), [([], "failed"), (["--should-retry"], "up_for_retry")])
def test_nonzero_exit_is_failed_or_up_for_retry(
    bundle: str, capsys: pytest.CaptureFixture[str], flags: list[str], state: str
) -> None:
    """A non-zero exit without a terminal message becomes failed, or up_for_retry by should_retry."""
    code, summary, _ = run_json(capsys, bundle, "d", "exit_three", *flags)
    assert code == 1
    assert (summary["state"], summary["exit_code"], summary["terminal"]) == (state, 3, None)


def test_bundle_that_fails_to_import_is_explained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An import error stops the run before it starts: exit 4, the user's line, no summary."""
    bad = tmp_path / "broken_bundle.py"
    bad.write_text("import trio_coord\nbundle = trio_coord.Bundle('b')\n1 / 0\n")
    code = main([str(bad), "d", "t", "--timeout", REAL_RUN_TIMEOUT])
    out, err = capsys.readouterr()
    assert code == 4
    assert out == ""
    assert f'File "{bad}", line 3, in <module>' in err
    assert re.search(r"^ZeroDivisionError: division by zero$", err, re.M)
    assert "trio_coord/" not in err


def test_timeout_flag_stops_the_task(bundle: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--timeout sends SIGTERM; the runtime reports the failure and the summary says why.

    5 s leaves the child ample time to start and enter the task even on a loaded machine;
    the exact timing of every limit is pinned in virtual time above.
    """
    code = main([bundle, "d", "slow", "--timeout", "5", "--json"])
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert code == 1
    assert (summary["state"], summary["terminal"]) == ("failed", "TaskState")
    assert summary["note"] == "timed out after 5 s"
    assert "timed out after 5 s; sending SIGTERM" in err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        [HELLO],
        ["nope.py", "d", "t"],
        [HELLO, "d", "t", "--conn", "x"],
        [HELLO, "d", "t", "--json=1"],
    ],
)
def test_usage_error_exits_2_with_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A usage error is exit 2 and exactly one line on stderr, nothing on stdout."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1 and err.startswith("trio-coord run: error: ")


def _command(*module: str) -> list[str]:
    return [sys.executable, "-m", *module]


@pytest.mark.parametrize("entry", [("trio_coord", "run"), ("trio_coord.local",)])
def test_command_line_entry_points(entry: tuple[str, ...]) -> None:
    """`python -m trio_coord run` and `python -m trio_coord.local` run the task and exit 0."""
    result = subprocess.run(
        [*_command(*entry), HELLO, "hello", "greet", "--quiet", "--timeout", REAL_RUN_TIMEOUT],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("--- trio-coord run summary ---\n")
    assert re.search(r"^state: +success$", result.stdout, re.M)


def test_usage_error_from_the_command_line_has_no_traceback() -> None:
    """The real command prints one error line and exits 2 on a bad flag."""
    result = subprocess.run(
        [*_command("trio_coord", "run"), HELLO, "hello", "greet", "--try-number", "x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


async def test_sigint_forwards_sigterm_and_reports(bundle: str) -> None:
    """Ctrl-C on trio-coord run becomes SIGTERM for the task, which reports failed; exit 1."""
    with trio.fail_after(60):
        process = await trio.lowlevel.open_process(
            [*_command("trio_coord", "run"), bundle, "d", "slow", "--timeout", REAL_RUN_TIMEOUT],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert process.stdout is not None and process.stderr is not None
        out = b""
        while b"task: sleeping" not in out:
            chunk = await process.stdout.receive_some()
            assert chunk, out
            out += chunk
        process.send_signal(signal.SIGINT)
        async with trio.open_nursery() as nursery:
            err = bytearray()

            async def drain_err() -> None:
                assert process.stderr is not None
                while chunk := await process.stderr.receive_some():
                    err.extend(chunk)

            nursery.start_soon(drain_err)
            while chunk := await process.stdout.receive_some():
                out += chunk
        code = await process.wait()
    text = out.decode()
    assert code == 1
    assert re.search(r"^state: +failed  \(interrupted by SIGINT\)$", text, re.M)
    assert "cancelling the task" in text  # the runtime saw SIGTERM, once
    assert b"interrupted by SIGINT; sending SIGTERM to the task" in err


def test_child_environment_carries_the_logging_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The child gets the caller's environment plus the two logging variables (§2.4)."""
    from trio_coord.local.supervisor import child_environment

    monkeypatch.delenv("AIRFLOW__LOGGING__LOGGING_LEVEL", raising=False)
    monkeypatch.setenv("SOMETHING_ELSE", "kept")
    env = child_environment()
    assert env["AIRFLOW__LOGGING__LOGGING_LEVEL"] == "INFO"
    assert env["AIRFLOW__LOGGING__NAMESPACE_LEVELS"] == os.environ.get(
        "AIRFLOW__LOGGING__NAMESPACE_LEVELS", ""
    )
    assert env["SOMETHING_ELSE"] == "kept"
