"""The Trio runtime against a scripted supervisor over memory streams, in virtual time.

The supervisor side here encodes with msgspec, as the real one does, and never
shares code with the runtime. Every timeout is checked at its exact virtual time
(``autojump_clock``), so nothing here sleeps for real.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import re
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest
import trio
import trio.testing

import trio_coord
from trio_coord.config import Address, Config
from trio_coord.errors import ConnectTimeout, RequestTimeout
from trio_coord.protocol import connection, fields
from trio_coord.runtime import dial as dial_module
from trio_coord.runtime.entry import build_masker_and_pipeline
from trio_coord.runtime.serve import Run

UTC = datetime.UTC
TI_ID = "019a0000-0000-7000-8000-0000000000aa"


def startup(task_id: str = "t", *, should_retry: bool = False, **ctx: Any) -> dict[str, Any]:
    now = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    return {
        "ti": {
            "id": TI_ID,
            "task_id": task_id,
            "dag_id": "d",
            "run_id": "r",
            "try_number": 1,
            "dag_version_id": "019a0000-0000-7000-8000-0000000000bb",
            "map_index": -1,
            "hostname": None,
            "context_carrier": None,
            "queue": "trio-coord",
        },
        "dag_rel_path": "d.py",
        "bundle_info": {"name": "b", "version": None},
        "start_date": now,
        "ti_context": {
            "dag_run": {
                "dag_id": "d",
                "run_id": "r",
                "logical_date": now,
                "data_interval_start": None,
                "data_interval_end": None,
                "run_after": now,
                "start_date": now,
                "end_date": None,
                "clear_number": 0,
                "run_type": "manual",
                "state": "running",
                "conf": None,
                "triggering_user_name": None,
                "consumed_asset_events": [],
                "partition_key": None,
                "partition_date": None,
                "note": None,
                "team_name": None,
            },
            "task_reschedule_count": 0,
            "max_tries": 1,
            "variables": [],
            "connections": [],
            "next_method": None,
            "next_kwargs": None,
            "xcom_keys_to_clear": [],
            "should_retry": should_retry,
            "start_date": None,
            **ctx,
        },
        "sentry_integration": "",
        "type": "StartupDetails",
    }


def frame(obj: Any) -> bytes:
    payload = msgspec.msgpack.encode(obj)
    return len(payload).to_bytes(4, "big") + payload


class Supervisor:
    """The scripted peer: reads request frames, answers through ``handler``."""

    def __init__(self, comm: trio.abc.Stream, logs: trio.abc.Stream) -> None:
        self.comm = comm
        self.logs = logs
        self.buf = b""
        self.requests: list[tuple[int, dict[str, Any], float]] = []
        self.log_bytes = b""

    async def send(self, obj: Any) -> None:
        await self.comm.send_all(frame(obj))

    async def recv(self) -> tuple[int, dict[str, Any]] | None:
        while True:
            if len(self.buf) >= 4:
                size = int.from_bytes(self.buf[:4], "big")
                if len(self.buf) >= 4 + size:
                    raw, self.buf = self.buf[4 : 4 + size], self.buf[4 + size :]
                    rid, body, *_ = msgspec.msgpack.decode(raw)
                    self.requests.append((rid, body, trio.current_time()))
                    return rid, body
            data = await self.comm.receive_some()
            if not data:
                return None
            self.buf += data

    async def drain_logs(self) -> None:
        while data := await self.logs.receive_some():
            self.log_bytes += data

    @property
    def log_records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_bytes.splitlines() if line.strip()]

    @property
    def types(self) -> list[str]:
        return [body["type"] for _, body, _ in self.requests]


Handler = Callable[[Supervisor, int, dict[str, Any]], Awaitable[bool]]


async def ok_handler(sup: Supervisor, rid: int, body: dict[str, Any]) -> bool:
    """Answer like a healthy supervisor; return False to stop after the terminal reply."""
    t = body["type"]
    if t == "GetVariable":
        await sup.send(
            [rid, {"key": body["key"], "value": "v-" + body["key"], "type": "VariableResult"}, None]
        )
    else:
        await sup.send([rid, None, None])
    return t not in {"SucceedTask", "TaskState", "RetryTask"}


async def converse(
    bundle: trio_coord.Bundle,
    first: Any,
    handler: Handler = ok_handler,
    config: Config | None = None,
    *,
    after_start: Callable[[Run, Supervisor], Awaitable[None]] | None = None,
    environ: dict[str, str] | None = None,
) -> tuple[int, Supervisor, Run]:
    rt_comm, sup_comm = trio.testing.memory_stream_pair()
    rt_logs, sup_logs = trio.testing.memory_stream_pair()
    sup = Supervisor(sup_comm, sup_logs)
    environ = environ or {}
    config = config or Config()
    # Built exactly as the runtime builds them (entry.run_coordinator, serve_streams).
    masker, pipeline = build_masker_and_pipeline(config, environ)
    pipeline.install()
    run = Run(bundle, config, pipeline, masker, environ=environ)
    result: list[int] = []
    finished = trio.Event()
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sup.drain_logs)

            async def runtime() -> None:
                result.append(await run.serve(rt_comm, rt_logs))
                finished.set()

            nursery.start_soon(runtime)
            if first is not None:
                await sup.send(first)
            if after_start is not None:
                nursery.start_soon(after_start, run, sup)
            while True:
                got = await sup.recv()
                if got is None or not await handler(sup, *got):
                    break
            # Let the runtime finish on its own; the test asserts how.
            with trio.fail_after(3600):
                await finished.wait()
            await sup.comm.aclose()
            nursery.cancel_scope.cancel()
    finally:
        pipeline.uninstall()
    return result[0], sup, run


def one_task(fn: Callable[..., Any], *, task_id: str = "t") -> trio_coord.Bundle:
    bundle = trio_coord.Bundle("b")
    bundle.dag("d").task(task_id=task_id)(fn)
    return bundle


# -- outcomes ------------------------------------------------------------------------------


async def test_success_pushes_xcom_then_succeeds(autojump_clock: trio.testing.MockClock) -> None:
    """A returned value is pushed as return_value before SucceedTask; exit code 0."""

    async def t(client: Any) -> Any:
        return {"v": await client.get_variable("k")}

    code, sup, _ = await converse(one_task(t), [0, startup(), None])
    assert code == 0
    assert sup.types == ["GetVariable", "SetXCom", "SucceedTask"]
    setx = sup.requests[1][1]
    assert setx["key"] == "return_value" and setx["value"] == {"v": "v-k"}
    assert setx["map_index"] is None
    succeed = sup.requests[2][1]
    assert succeed["task_outlets"] == [] and succeed["outlet_events"] == []
    assert (
        isinstance(succeed["end_date"], datetime.datetime)
        and succeed["end_date"].tzinfo is not None
    )
    assert [r[0] for r in sup.requests] == [1, 2, 3]


async def test_unknown_task_fails_the_try(autojump_clock: trio.testing.MockClock) -> None:
    """A task not in the bundle sends TaskState(failed), nothing else, and logs what the bundle holds."""
    code, sup, _ = await converse(one_task(lambda: None), [0, startup("other"), None])
    assert code == 0
    assert sup.types == ["TaskState"]
    assert sup.requests[0][1]["state"] == "failed"
    (line,) = [r["event"] for r in sup.log_records if "is not in bundle" in r["event"]]
    assert "task 'other' of dag 'd' is not in bundle 'b' version '0.1.0'" in line
    assert "which holds tasks of 'd': t;" in line


@pytest.mark.parametrize(
    ("retry", "expected"), [(False, ("TaskState", "failed")), (True, ("RetryTask", "up_for_retry"))]
)
async def test_exception_fails_or_retries(
    autojump_clock: trio.testing.MockClock, retry: bool, expected: tuple[str, str]
) -> None:
    """An exception ends as TaskState(failed), or RetryTask when should_retry is set."""

    def t() -> None:
        raise KeyError("missing")

    code, sup, _ = await converse(one_task(t), [0, startup(should_retry=retry), None])
    assert code == 0
    ((_, body, _),) = sup.requests
    assert (body["type"], body["state"]) == expected
    errors = [r for r in sup.log_records if r["level"] == "error"]
    assert any("KeyError" in r["event"] for r in errors)
    assert any(r.get("exception") for r in errors)


async def test_fail_task_never_retries(autojump_clock: trio.testing.MockClock) -> None:
    """FailTask ends as failed even when should_retry is set."""

    async def t() -> None:
        raise trio_coord.FailTask("bad input")

    code, sup, _ = await converse(one_task(t), [0, startup(should_retry=True), None])
    assert (code, sup.types, sup.requests[0][1]["state"]) == (0, ["TaskState"], "failed")


async def test_unserialisable_return_value_fails_the_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A return value that is not JSON fails the try with a clear reason instead of being dropped."""

    async def t() -> Any:
        return {"when": datetime.datetime.now()}

    code, sup, _ = await converse(one_task(t), [0, startup(), None])
    assert code == 0 and sup.types == ["TaskState"]
    assert any("not JSON-serialisable" in r["event"] for r in sup.log_records)


async def test_xcom_keys_cleared_before_body(autojump_clock: trio.testing.MockClock) -> None:
    """xcom_keys_to_clear are deleted in order before the task body makes its first request."""

    async def t(client: Any) -> None:
        await client.get_variable("k")

    _, sup, _ = await converse(one_task(t), [0, startup(xcom_keys_to_clear=["a", "b"]), None])
    assert sup.types == ["DeleteXCom", "DeleteXCom", "GetVariable", "SucceedTask"]
    assert [sup.requests[i][1]["key"] for i in (0, 1)] == ["a", "b"]


# -- the first frame -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "first",
    [
        [0, {"type": "VariableResult", "key": "k", "value": None}, None],
        [0, startup(), {"error": "GENERIC_ERROR", "detail": None, "type": "ErrorResponse"}],
        [7, startup(), None],
        [0, {**startup(), "ti": {**startup()["ti"], "try_number": 0}}, None],
        {"not": "an array"},
    ],
)
async def test_bad_first_frame_fails_closed(
    autojump_clock: trio.testing.MockClock, first: Any
) -> None:
    """A first frame that is not a valid StartupDetails on id 0: nothing sent, an error logged, exit 1."""
    code, sup, _ = await converse(one_task(lambda: None), first)
    assert code == 1
    assert sup.requests == []
    assert any(r["level"] == "error" and "cannot start" in r["event"] for r in sup.log_records)


async def test_no_first_frame_times_out(autojump_clock: trio.testing.MockClock) -> None:
    """Without a first frame the runtime gives up after exactly request_timeout seconds."""
    start = trio.current_time()
    code, _sup, _ = await converse(one_task(lambda: None), None, config=Config(request_timeout=30))
    assert code == 1
    assert trio.current_time() - start == pytest.approx(30, abs=2)


# -- timeouts --------------------------------------------------------------------------------


async def test_unanswered_request_times_out_and_fails_the_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A request the supervisor never answers raises RequestTimeout at exactly request_timeout."""
    seen: list[BaseException] = []

    async def t(client: Any) -> None:
        try:
            await client.get_variable("k")
        except RequestTimeout as exc:
            seen.append(exc)
            raise

    async def silent_on_get(sup: Supervisor, rid: int, body: dict[str, Any]) -> bool:
        if body["type"] == "GetVariable":
            return True
        return await ok_handler(sup, rid, body)

    code, sup, _ = await converse(
        one_task(t), [0, startup(), None], silent_on_get, Config(request_timeout=45)
    )
    assert code == 0 and len(seen) == 1
    (_, _, sent_at), (_, terminal, failed_at) = sup.requests
    assert terminal["type"] == "TaskState" and terminal["state"] == "failed"
    assert failed_at - sent_at == pytest.approx(45, abs=0.5)


@pytest.mark.parametrize(("task_raises", "exit_code"), [(False, 0), (True, 1)])
async def test_unanswered_terminal_is_bounded(
    autojump_clock: trio.testing.MockClock, task_raises: bool, exit_code: int
) -> None:
    """No reply to the terminal message: give up after terminal_timeout; exit 1 only for an undelivered failure."""

    async def t() -> None:
        if task_raises:
            raise RuntimeError("x")

    async def never_answer_terminal(sup: Supervisor, rid: int, body: dict[str, Any]) -> bool:
        return False  # read it, never answer, stop scripting

    start = trio.current_time()
    code, _sup, _ = await converse(
        one_task(t), [0, startup(), None], never_answer_terminal, Config(terminal_timeout=120)
    )
    assert code == exit_code
    assert trio.current_time() - start == pytest.approx(120, abs=3)


async def test_dial_timeout_is_exact(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dialling gives up with ConnectTimeout at exactly dial timeout and names the missing socket."""

    async def hang(host: str, port: int) -> trio.SocketStream:
        await trio.sleep_forever()
        raise AssertionError

    monkeypatch.setattr(dial_module.trio, "open_tcp_stream", hang)
    start = trio.current_time()
    with pytest.raises(ConnectTimeout, match=r"--comm=127\.0\.0\.1:1, --logs"):
        await dial_module.dial_both(Address("127.0.0.1", 1), Address("127.0.0.1", 2), timeout=7)
    assert trio.current_time() - start == pytest.approx(7)


# -- concurrency ------------------------------------------------------------------------------


async def test_concurrent_requests_are_pipelined_and_matched_by_id(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """64 concurrent callers share the channel; replies answered in reverse order reach the right caller."""
    results: dict[str, str] = {}

    async def t(client: Any) -> None:
        async def one(i: int) -> None:
            results[f"k{i}"] = await client.get_variable(f"k{i}")

        async with trio.open_nursery() as n:
            for i in range(64):
                n.start_soon(one, i)

    held: list[tuple[int, str]] = []

    async def batch_reverse(sup: Supervisor, rid: int, body: dict[str, Any]) -> bool:
        if body["type"] == "GetVariable":
            held.append((rid, body["key"]))
            if len(held) == 64:
                for r, k in reversed(held):
                    await sup.send(
                        [r, {"key": k, "value": "v-" + k, "type": "VariableResult"}, None]
                    )
            return True
        return await ok_handler(sup, rid, body)

    code, sup, _ = await converse(one_task(t), [0, startup(), None], batch_reverse)
    assert code == 0
    assert results == {f"k{i}": f"v-k{i}" for i in range(64)}
    ids = [rid for rid, _, _ in sup.requests]
    assert len(ids) == len(set(ids)) == 65


async def test_stray_and_late_replies_are_dropped(autojump_clock: trio.testing.MockClock) -> None:
    """A reply for an unknown id is dropped; the task carries on."""

    async def t(client: Any) -> Any:
        return await client.get_variable("k")

    async def stray_first(sup: Supervisor, rid: int, body: dict[str, Any]) -> bool:
        if body["type"] == "GetVariable":
            await sup.send([999, None, None])
        return await ok_handler(sup, rid, body)

    code, sup, _ = await converse(one_task(t), [0, startup(), None], stray_first)
    assert code == 0 and sup.types[-1] == "SucceedTask"


# -- the supervisor going away -------------------------------------------------------------------


async def test_eof_mid_task_cancels_task_and_exits_1(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """EOF on comm while the task sleeps cancels it at once and the runtime exits 1 without a terminal."""
    cancelled_at: list[float] = []

    async def t() -> None:
        try:
            await trio.sleep(1000)
        finally:
            cancelled_at.append(trio.current_time())

    async def close_soon(run: Run, sup: Supervisor) -> None:
        await trio.sleep(5)
        await sup.comm.send_eof()  # type: ignore[attr-defined]

    start = trio.current_time()
    code, sup, _ = await converse(one_task(t), [0, startup(), None], after_start=close_soon)
    assert code == 1
    assert sup.requests == []
    assert cancelled_at and cancelled_at[0] - start == pytest.approx(5, abs=0.5)
    assert any(
        "lost the supervisor" in r["event"] or "closed the comm" in r["event"]
        for r in sup.log_records
    )


async def test_garbage_frame_mid_task_fails_closed(autojump_clock: trio.testing.MockClock) -> None:
    """An undecodable frame mid-task breaks the channel: the task is cancelled, one clear error, exit 1."""

    async def t() -> None:
        await trio.sleep(1000)

    async def garbage(run: Run, sup: Supervisor) -> None:
        await trio.sleep(1)
        await sup.comm.send_all(b"\x00\x00\x00\x02\xc1\xc1")

    code, sup, _ = await converse(one_task(t), [0, startup(), None], after_start=garbage)
    assert code == 1
    assert any("undecodable msgpack" in r["event"] for r in sup.log_records)


async def test_terminate_cancels_task_with_reason(autojump_clock: trio.testing.MockClock) -> None:
    """terminate() (the SIGTERM path) cancels the task and reports failure with the reason; exit 0."""

    async def t() -> None:
        await trio.sleep(1000)

    async def sigterm(run: Run, sup: Supervisor) -> None:
        await trio.sleep(3)
        run.terminate("received SIGTERM")

    code, sup, run = await converse(
        one_task(t), [0, startup(should_retry=True), None], after_start=sigterm
    )
    assert code == 0
    ((_, body, _),) = sup.requests
    assert body["type"] == "RetryTask" and "SIGTERM" in body["retry_reason"]
    assert run.terminating


async def test_error_element_on_terminal_still_exits_0(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An error element in reply to SucceedTask is logged (the supervisor replays it) and the exit code stays 0."""

    async def t() -> None:
        return None

    async def api_error(sup: Supervisor, rid: int, body: dict[str, Any]) -> bool:
        await sup.send(
            [
                rid,
                None,
                {
                    "error": "API_SERVER_ERROR",
                    "detail": {"status_code": 500, "message": "boom"},
                    "type": "ErrorResponse",
                },
            ]
        )
        return False

    code, sup, _ = await converse(one_task(t), [0, startup(), None], api_error)
    assert code == 0
    assert any(
        r["level"] == "warning" and "API_SERVER_ERROR" in r["event"] for r in sup.log_records
    )


async def test_logs_before_terminal_all_arrive(autojump_clock: trio.testing.MockClock) -> None:
    """Every record the task logs before its terminal message reaches the logs stream, in order."""

    async def t(log: Any) -> None:
        for i in range(500):
            log.info("rec %d", i)

    _, sup, _ = await converse(one_task(t), [0, startup(), None])
    events = [r["event"] for r in sup.log_records if r["logger"] == "task"]
    assert events == [f"rec {i}" for i in range(500)]
    assert all(r["ti_id"] == TI_ID for r in sup.log_records if r["logger"] == "task")


def test_config_rejects_bad_addresses() -> None:
    """A bad --comm/--logs value is a UsageError naming the flag."""
    from trio_coord.config import parse_address
    from trio_coord.errors import UsageError

    for bad in ("localhost", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:70000", ":80", "h:x"):
        with pytest.raises(UsageError, match="--comm"):
            parse_address("--comm", bad)
    assert parse_address("--comm", "127.0.0.1:8080") == Address("127.0.0.1", 8080)
    assert math.isfinite(Config().request_timeout)


@pytest.mark.parametrize("fails", [False, True])
async def test_rendered_map_index_is_repeated_in_the_terminal_message(
    autojump_clock: trio.testing.MockClock, fails: bool
) -> None:
    """A label set by the task is sent at once and repeated in the terminal message, success or not."""

    async def t(client: Any) -> None:
        await client.set_rendered_map_index("region=eu")
        if fails:
            raise RuntimeError("after labelling")

    _, sup, _ = await converse(one_task(t), [0, startup(), None])
    assert sup.types == ["SetRenderedMapIndex", "TaskState" if fails else "SucceedTask"]
    assert sup.requests[0][1]["rendered_map_index"] == "region=eu"
    assert sup.requests[1][1]["rendered_map_index"] == "region=eu"


# -- inbound strictness and outbound bounds (protocol.md §12: bad input, clear error) -----


def _broken_startup(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    body = startup()
    target = body
    for step in path[:-1]:
        target = target[step]
    if value is _MISSING:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


_MISSING = object()

#: (broken field, value) -> the field path the one error record must name.
MALFORMED_STARTUP = {
    "ti.id not a UUID": (("ti", "id"), "task-1", "StartupDetails.ti.id"),
    "dag_version_id a number": (("ti", "dag_version_id"), 7, "StartupDetails.ti.dag_version_id"),
    "run_after without offset": (
        ("ti_context", "dag_run", "run_after"),
        "2026-01-02T03:04:05",
        "StartupDetails.ti_context.dag_run.run_after",
    ),
    "bundle_info missing": (("bundle_info",), _MISSING, "required key 'bundle_info'"),
    "try_number a string": (("ti", "try_number"), "1", "StartupDetails.ti.try_number"),
    "max_tries nil": (("ti_context", "max_tries"), None, "StartupDetails.ti_context.max_tries"),
    "dag_run state a number": (
        ("ti_context", "dag_run", "state"),
        3,
        "StartupDetails.ti_context.dag_run.state",
    ),
    "variables not a list": (("ti_context", "variables"), {"k": "v"}, "ti_context.variables"),
}


@pytest.mark.parametrize(
    ("path", "value", "named"), MALFORMED_STARTUP.values(), ids=MALFORMED_STARTUP.keys()
)
async def test_malformed_startup_details_never_runs_the_task(
    autojump_clock: trio.testing.MockClock, path: tuple[str, ...], value: Any, named: str
) -> None:
    """A first frame with one bad field: one error record naming it, nothing sent, exit 1, the task never called."""
    ran: list[bool] = []

    async def t() -> None:
        ran.append(True)

    code, sup, _ = await converse(one_task(t), [0, _broken_startup(path, value), None])
    assert (code, sup.requests, ran) == (1, [], [])
    errors = [r for r in sup.log_records if r["level"] == "error"]
    assert len(errors) == 1 and named in errors[0]["event"], errors
    assert "Traceback" not in sup.log_bytes.decode()


def _cycle() -> list[Any]:
    value: list[Any] = [1, {"x": []}]
    value[1]["x"].append(value)
    return value


#: Return values that cannot be sent: (value, multiple_outputs, what the log must say).
UNSENDABLE = {
    "list containing itself": (
        _cycle,
        False,
        r"XCom 'return_value'\[1\]\.x\[0\]: .*contains itself",
    ),
    "non-string key": (lambda: {"a": {2: "b"}}, False, r"'return_value'\.a\[2\]: map key 2"),
    "object": (lambda: [object()], False, r"'return_value'\[0\]: a object is not a JSON value"),
    "NaN": (lambda: {"f": math.nan}, False, r"'return_value'\.f: nan is not a JSON number"),
    "too deep": (lambda: _deep(300), False, r"nested deeper than 254"),
    "too large": (
        lambda: ["x" * 600, "y" * 600],
        False,
        r"\[1\]: the value encodes to more than 1000",
    ),
    "bad second output": (lambda: {"a": 1, "b": {3}}, True, r"XCom 'b': a set is not"),
}


def _deep(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(("make", "multiple", "says"), UNSENDABLE.values(), ids=UNSENDABLE.keys())
@pytest.mark.parametrize("should_retry", [False, True])
async def test_unsendable_return_value_fails_before_anything_is_sent(
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
    make: Callable[[], Any],
    multiple: bool,
    says: str,
    should_retry: bool,
) -> None:
    """A return value with no JSON form or over the size limit: no SetXCom at all, a failure terminal, the path in the log."""
    monkeypatch.setattr(fields, "MAX_JSON_BYTES", 1000)
    bundle = trio_coord.Bundle("b")
    bundle.dag("d").task(task_id="t", multiple_outputs=multiple)(lambda: make())
    code, sup, _ = await converse(bundle, [0, startup(should_retry=should_retry), None])
    assert code == 0
    assert sup.types == (["RetryTask"] if should_retry else ["TaskState"])
    assert any(r["level"] == "error" and re.search(says, r["event"]) for r in sup.log_records), (
        sup.log_records
    )
    assert "Traceback" not in sup.log_bytes.decode()


@pytest.mark.parametrize("route", ["return value", "client.set_xcom"])
async def test_sigterm_while_a_large_xcom_is_encoded_ends_the_try(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch, route: str
) -> None:
    """terminate() while a large XCom value is still checked and encoded off the Trio thread: no SetXCom, the cancellation terminal at once."""
    started = threading.Event()
    release = threading.Event()

    def slow_check(value: Any, path: str, max_items: int | None) -> int:
        if max_items is not None:
            raise fields.CheckIncomplete  # a large value: encoded in a worker thread
        started.set()
        release.wait(10)  # a value that takes long to walk; released when the test ends
        return 0

    monkeypatch.setattr(connection, "check_json", slow_check)

    async def returns() -> list[int]:
        return [1, 2, 3]

    async def pushes(client: Any) -> None:
        await client.set_xcom("k", [1, 2, 3])

    async def sigterm(run: Run, sup: Supervisor) -> None:
        await trio.to_thread.run_sync(started.wait, 60)
        run.terminate("received SIGTERM")

    task = returns if route == "return value" else pushes
    try:
        code, sup, _ = await converse(
            one_task(task), [0, startup(should_retry=True), None], after_start=sigterm
        )
    finally:
        release.set()
    assert code == 0
    ((_, body, _),) = sup.requests
    assert body["type"] == "RetryTask" and "SIGTERM" in body["retry_reason"]


# -- configuration from the environment, as serve builds it ---------------------------------


async def test_masking_settings_in_the_environment_reach_the_runtime(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES and the minimum length configure the masker the runtime uses."""

    async def t(client: Any, log: Any) -> None:
        log.info("pin %s", await client.get_variable("pin"))  # "v-pin": 5 characters
        log.info("host %s", await client.get_variable("host"))

    environ = {
        "AIRFLOW__CORE__SENSITIVE_VAR_CONN_NAMES": "pin",
        "AIRFLOW__LOGGING__MIN_LENGTH_MASKED_SECRET": "3",
    }
    _, sup, _ = await converse(one_task(t), [0, startup(), None], environ=environ)
    events = [r["event"] for r in sup.log_records]
    assert "pin ***" in events and "host v-host" in events


async def test_level_settings_in_the_environment_reach_the_runtime(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """AIRFLOW__LOGGING__LOGGING_LEVEL and NAMESPACE_LEVELS decide which records the runtime sends."""
    import logging

    async def t(log: Any) -> None:
        log.debug("task debug")
        logging.getLogger("other").info("other info")
        logging.getLogger("other").warning("other warning")

    environ = {
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "AIRFLOW__LOGGING__NAMESPACE_LEVELS": "task=DEBUG",
    }
    _, sup, _ = await converse(one_task(t), [0, startup(), None], environ=environ)
    events = [r["event"] for r in sup.log_records]
    assert "task debug" in events and "other warning" in events
    assert "other info" not in events


# -- no secret in terminal messages ---------------------------------------------------------


async def test_exception_text_is_not_sent_in_retry_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A failing task's exception text reaches the task log (masked) but not RetryTask.retry_reason."""

    async def t(client: Any) -> None:
        raise RuntimeError("boom with " + await client.get_variable("db_password"))

    _, sup, _ = await converse(one_task(t), [0, startup(should_retry=True), None])
    retry = sup.requests[-1][1]
    assert retry["type"] == "RetryTask" and retry["retry_reason"] is None
    assert any(r["event"] == "task failed: RuntimeError: boom with ***" for r in sup.log_records)
    assert b"v-db_password" not in sup.log_bytes


async def test_runtime_reasons_and_labels_are_masked_in_terminal_messages(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A cancellation reason and a map-index label holding a registered secret are sent masked."""

    async def t(client: Any) -> None:
        secret = await client.get_variable("api_token")
        await client.set_rendered_map_index(f"label {secret}")
        await trio.sleep(1000)

    async def sigterm(run: Run, sup: Supervisor) -> None:
        await trio.sleep(3)
        run.terminate("received SIGTERM while holding v-api_token")

    _, sup, _ = await converse(
        one_task(t), [0, startup(should_retry=True), None], after_start=sigterm
    )
    label, retry = sup.requests[1][1], sup.requests[2][1]
    assert label["rendered_map_index"] == "label ***"
    assert retry["type"] == "RetryTask"
    assert retry["retry_reason"] == "received SIGTERM while holding ***"
    assert retry["rendered_map_index"] == "label ***"


@pytest.mark.parametrize(
    ("extra", "sent"),
    [
        ('{"auth": {"token": "tok-nested-1"}, "region": "eu-west-1"}', ["tok-nested-1"]),
        ('["list-secret-1", "list-secret-2"]', ["list-secret-1", "list-secret-2"]),
    ],
)
async def test_secrets_inside_a_connection_extra_are_registered_and_sent(
    autojump_clock: trio.testing.MockClock, extra: str, sent: list[str]
) -> None:
    """Values under sensitive keys in extra (or every string of a non-object extra) go out in MaskSecret and are masked in logs."""

    async def t(client: Any, log: Any) -> None:
        conn = await client.get_connection("c")
        log.info("extra %s", conn.extra)

    async def handler(sup: Supervisor, rid: int, body: dict[str, Any]) -> bool:
        if body["type"] == "GetConnection":
            none = dict.fromkeys(("host", "schema", "login", "password", "port"))
            result = {"conn_id": "c", "conn_type": "http", **none, "extra": extra}
            await sup.send([rid, {**result, "type": "ConnectionResult"}, None])
            return True
        return await ok_handler(sup, rid, body)

    _, sup, _ = await converse(one_task(t), [0, startup(), None], handler)
    masks = [body for _, body, _ in sup.requests if body["type"] == "MaskSecret"]
    assert [(m["value"], m["name"]) for m in masks] == [(s, None) for s in sent]
    (line,) = [r["event"] for r in sup.log_records if r["event"].startswith("extra ")]
    assert not any(s in line for s in sent)
    assert ("eu-west-1" in line) == ("region" in extra)


# -- the last word of a try says what happened ---------------------------------------------------


def _runtime_events(sup: Supervisor) -> list[str]:
    return [r["event"] for r in sup.log_records if r["logger"] == "trio_coord.runtime"]


async def _sleeps() -> None:
    await trio.sleep(1000)


async def test_supervisor_gone_is_said_not_task_failed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """EOF mid-task: the last line says the supervisor closed the connection and nothing could be reported, never "task finished"."""

    async def close_soon(run: Run, sup: Supervisor) -> None:
        await trio.sleep(5)
        await sup.comm.send_eof()  # type: ignore[attr-defined]

    code, sup, _ = await converse(one_task(_sleeps), [0, startup(), None], after_start=close_soon)
    events = _runtime_events(sup)
    assert code == 1 and not [e for e in events if e.startswith("task finished")], events
    assert events[-1].startswith("the supervisor closed the connection (")
    assert events[-1].endswith(
        "; the task was cancelled and no final state could be reported (exit 1)"
    )


async def test_broken_comm_is_said_as_bad_data(autojump_clock: trio.testing.MockClock) -> None:
    """An undecodable frame mid-task: the last line blames the supervisor's data, and says nothing was reported."""

    async def garbage(run: Run, sup: Supervisor) -> None:
        await trio.sleep(1)
        await sup.comm.send_all(b"\x00\x00\x00\x02\xc1\xc1")

    code, sup, _ = await converse(one_task(_sleeps), [0, startup(), None], after_start=garbage)
    events = _runtime_events(sup)
    assert code == 1
    assert events[-1].startswith("the supervisor sent data that breaks the protocol (")
    assert "undecodable msgpack" in events[-1]
    assert events[-1].endswith("no final state could be reported (exit 1)")


async def test_signal_is_said_as_stopped(autojump_clock: trio.testing.MockClock) -> None:
    """terminate() (SIGTERM): the try is summarised as stopped by the signal, as a warning, then reported."""

    async def sigterm(run: Run, sup: Supervisor) -> None:
        await trio.sleep(3)
        run.terminate("received SIGTERM")

    code, sup, _ = await converse(one_task(_sleeps), [0, startup(), None], after_start=sigterm)
    assert code == 0 and sup.types == ["TaskState"]
    (summary,) = [r for r in sup.log_records if r["event"].startswith("task stopped")]
    assert summary["event"] == "task stopped: failed: received SIGTERM"
    assert summary["level"] == "warning"
    assert not [e for e in _runtime_events(sup) if e.startswith("task finished")]


async def test_task_failure_is_said_as_finished_failed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The task's own exception: the try is summarised as finished and failed, with the exception, and reported."""

    async def t() -> None:
        raise ValueError("bad input row")

    code, sup, _ = await converse(one_task(t), [0, startup(), None])
    assert code == 0 and sup.types == ["TaskState"]
    assert "task finished: failed: ValueError: bad input row" in _runtime_events(sup)


async def test_undelivered_failure_says_exit_1_and_why(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The supervisor closes instead of answering the terminal message: the last line names the message, the cause and exit 1."""

    async def t() -> None:
        raise ValueError("bad input row")

    async def vanish(sup: Supervisor, rid: int, body: dict[str, Any]) -> bool:
        await sup.comm.send_eof()  # type: ignore[attr-defined]
        return False

    code, sup, _ = await converse(one_task(t), [0, startup(), None], vanish)
    events = _runtime_events(sup)
    assert code == 1
    assert events[-1].startswith(
        "could not deliver TaskState: the supervisor closed the connection ("
    )
    assert events[-1].endswith(
        "; exiting 1, so the supervisor records the try as failed (or up for retry)"
    )


@pytest.mark.skipif(not os.path.exists("/proc/self/comm"), reason="needs Linux /proc")
async def test_in_process_try_leaves_the_host_process_name_alone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A try run inside another program (tests, the model) does not rename that program; only the runtime's entry point does."""

    def comm() -> str:
        with open(f"/proc/{os.getpid()}/comm") as f:
            return f.read()

    before = comm()

    async def t() -> None:
        return None

    code, _, _ = await converse(one_task(t), [0, startup(), None])
    assert code == 0 and comm() == before
