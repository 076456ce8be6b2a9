"""The log pipeline: record format (checked against the real 1.3.2 supervisor), level
filtering, buffering, batching, drops, fallback, drain and close."""

from __future__ import annotations

import contextlib
import datetime
import enum
import io
import json
import logging
import re
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import trio
import trio.testing
from helpers import CallCounter

from trio_coord.config import LOWEST_MAX_LOG_RECORD, Config
from trio_coord.runtime.logs import (
    DEFAULT_CAPACITY,
    DEFAULT_MAX_BUFFERED_BYTES,
    DEFAULT_MAX_RECORD,
    DEFAULT_WORKER_WAIT,
    LINGER,
    LevelFilter,
    LogPipeline,
    level_name,
    parse_level,
)
from trio_coord.runtime.logs.fallback import Fallback
from trio_coord.runtime.logs.stdio import MAX_PENDING, MaskingWriter, masked_stdio
from trio_coord.runtime.masking import MAX_DEPTH, Masker

# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------

LEVEL = "AIRFLOW__LOGGING__LOGGING_LEVEL"
NAMESPACES = "AIRFLOW__LOGGING__NAMESPACE_LEVELS"


class RealSupervisor:
    """Feeds lines to the 1.3.2 supervisor's log-line parser, exactly as its socket reader does.

    Two targets receive what the parser logs: one captures the keyword arguments it passes
    (the fields as the supervisor understood them), the other is the task-log writer the
    supervisor really uses (``logging_processors(json_output=True)`` over a BytesLogger), so
    a field that upsets any processor in that chain fails the test too.
    """

    def __init__(self) -> None:
        from airflow.sdk.execution_time.supervisor import process_log_messages_from_subprocess
        from airflow.sdk.log import logging_processors

        self.captured: list[tuple[str, dict[str, Any]]] = []

        def capture(_logger: object, method_name: str, event_dict: Any) -> Any:
            self.captured.append((method_name, dict(event_dict)))
            raise structlog.DropEvent

        self.task_log = io.BytesIO()
        capturing = structlog.wrap_logger(
            None, processors=[capture], wrapper_class=structlog.make_filtering_bound_logger(0)
        )
        writer = structlog.wrap_logger(
            structlog.BytesLogger(self.task_log),
            processors=logging_processors(json_output=True),
            logger_name="task",
        ).bind()
        self._parser = process_log_messages_from_subprocess((capturing, writer))
        next(self._parser)

    def feed(self, data: bytes) -> list[tuple[str, dict[str, Any]]]:
        """Parse every line in ``data``; return what was logged for them (crashes propagate)."""
        before = len(self.captured)
        for line in data.split(b"\n")[:-1]:  # the supervisor splits on b"\n" only
            self._parser.send(line + b"\n")
        return self.captured[before:]

    def task_log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.task_log.getvalue().splitlines()]


@pytest.fixture(scope="module")
def supervisor() -> RealSupervisor:
    return RealSupervisor()


def new_pipeline(
    *,
    env: dict[str, str] | None = None,
    masker: Masker | None = None,
    fallback: io.BytesIO | None = None,
    **kwargs: Any,
) -> LogPipeline:
    return LogPipeline(
        level_filter=LevelFilter.from_env(env or {LEVEL: "NOTSET"}),
        masker=masker or Masker(),
        fallback=fallback if fallback is not None else io.BytesIO(),
        **kwargs,
    )


def make_record(
    name: str = "task.test",
    level: int = logging.INFO,
    msg: object = "hello",
    *args: object,
    exc_info: Any = None,
    extra: dict[str, object] | None = None,
    stack_info: str | None = None,
) -> logging.LogRecord:
    if isinstance(exc_info, BaseException):  # what Logger._log does for exc_info=exc
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    return logging.getLogger(name).makeRecord(
        name, level, __file__, 1, msg, args, exc_info, extra=extra, sinfo=stack_info
    )


def emit(pipeline: LogPipeline, *args: Any, **kwargs: Any) -> None:
    pipeline.handler.handle(make_record(*args, **kwargs))


def decode_lines(data: bytes) -> list[dict[str, Any]]:
    assert data == b"" or data.endswith(b"\n")
    return [json.loads(line) for line in data.split(b"\n")[:-1]]


def events(data: bytes) -> list[str]:
    return [line["event"] for line in decode_lines(data)]


async def read_all(stream: trio.abc.ReceiveStream, into: bytearray) -> None:
    while chunk := await stream.receive_some():
        into += chunk


@contextlib.asynccontextmanager
async def pumping(pipeline: LogPipeline) -> AsyncIterator[tuple[trio.abc.SendStream, bytearray]]:
    """Run the pump into a memory stream; yields the stream and the bytes read from it.

    On exit the pump has returned (close the pipeline inside) and every byte is read.
    """
    send, receive = trio.testing.memory_stream_one_way_pair()
    got = bytearray()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_all, receive, got)
        async with trio.open_nursery() as pump_nursery:
            await pump_nursery.start(pipeline.pump, send)
            yield send, got
        await send.aclose()


class CountingStream(trio.abc.SendStream):
    """Records every send_all call; can fail one (after writing half of it) or hold them.

    With ``gated=True`` each send_all sets :attr:`entered` and then blocks until
    :attr:`gate` is set, so a test can freeze the pump in the middle of a write.
    """

    def __init__(self, *, fail_on_call: int | None = None, gated: bool = False) -> None:
        self.calls: list[bytes] = []
        self.received = bytearray()
        self.entered = trio.Event()
        self.gate: trio.Event | None = trio.Event() if gated else None
        self._fail_on_call = fail_on_call

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        data = bytes(data)
        self.calls.append(data)
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self._fail_on_call is not None and len(self.calls) >= self._fail_on_call:
            self.received += data[: len(data) // 2]
            raise trio.BrokenResourceError("peer went away")
        self.received += data

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


def boom() -> Exception:
    try:
        raise ValueError("boom")
    except ValueError as exc:
        return exc


# --------------------------------------------------------------------------------------
# Record format, judged by the real supervisor
# --------------------------------------------------------------------------------------

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


class Colour(enum.Enum):
    RED = "red"


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no")


class Opaque:
    def __str__(self) -> str:
        return "<opaque thing>"


def _cycle() -> list[object]:
    loop: list[object] = [1]
    loop.append(loop)
    return loop


HOSTILE_EXTRAS: dict[str, object] = {
    "self": "me",
    "method_name": "m",
    "target": "t",
    "level": "CRITICAL",
    "event": "not the message",
    "timestamp": 12,
    "logger": ["not", "a", "name"],
    "exception": "fake",
    "error_detail": {"x": 1},
    "positional_args": [1, 2, 3],
    "logger_name": "hijack",
    "stack": "fake stack",
    "opaque": Opaque(),
    "unprintable": Unprintable(),
    "raw": b"\xff\xfebytes\x00",
    "nested": {"a": {"b": [1, 2.5, None, True, {3: "int key", (4, 5): "tuple key"}]}},
    "nan": float("nan"),
    "inf": float("-inf"),
    "huge_int": 10**5000,
    "a_set": {"only"},
    "a_tuple": (1, "two"),
    "colour": Colour.RED,
    "when": datetime.datetime(2024, 1, 2, tzinfo=datetime.UTC),
    "huge": "x" * 2_000_000,
    "unicode": "héllo ✓ 日本 \u2028 \U0001f600",
    "surrogate": "bad \udcff half",
    "control": "tab\tnew\nline\r\x00",
    "cycle": _cycle(),
}


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (1, "debug"),
        (logging.DEBUG, "debug"),
        (15, "debug"),
        (logging.INFO, "info"),
        (25, "info"),
        (logging.WARNING, "warning"),
        (logging.ERROR, "error"),
        (45, "error"),
        (logging.CRITICAL, "critical"),
        (99, "critical"),
    ],
)
def test_levels_map_by_range_to_names_the_supervisor_keeps(
    supervisor: RealSupervisor, level: int, expected: str
) -> None:
    """Every numeric level is sent as a lower-case name the supervisor maps back to a level."""
    line = new_pipeline().render(make_record(level=level))
    assert json.loads(line)["level"] == expected
    [(method, _fields)] = supervisor.feed(line)
    assert method == expected


@pytest.mark.parametrize(
    "msg",
    [
        "plain",
        "",
        "100% sure %d",
        'quotes " and \\ backslashes',
        "multi\nline\r\nmessage",
        "non-ASCII: é ✓ 日本 \U0001f600",
        "lone surrogate \ud800 here",
        "z" * 1_000_000,
    ],
)
def test_messages_arrive_intact_through_the_real_parser(
    supervisor: RealSupervisor, msg: str
) -> None:
    """Any message text becomes one line whose event the supervisor logs unchanged."""
    line = new_pipeline().render(make_record(msg=msg))
    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    [(_, fields)] = supervisor.feed(line)
    assert fields["event"] == msg.replace("\ud800", "\ufffd")
    assert fields["logger"] == "task.test"


def test_standard_fields_are_what_the_supervisor_expects(supervisor: RealSupervisor) -> None:
    """timestamp is RFC 3339 UTC with microseconds and Z; event is the %-formatted message."""
    record = make_record("a.b.c", logging.WARNING, "answer is %d and %s", 42, "more")
    line = json.loads(new_pipeline().render(record))
    assert list(line) == ["timestamp", "level", "event", "logger"]
    assert TIMESTAMP.match(line["timestamp"])
    assert line["event"] == "answer is 42 and more"
    [(method, fields)] = supervisor.feed(new_pipeline().render(record))
    sent = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
    assert abs(fields["timestamp"] - sent) < datetime.timedelta(microseconds=2)
    assert (method, fields["logger"]) == ("warning", "a.b.c")


def test_message_formatting_errors_still_produce_a_record(supervisor: RealSupervisor) -> None:
    """A message whose %-args do not fit is sent with both parts rather than lost."""
    line = new_pipeline().render(make_record("x", logging.INFO, "needs %d", "not a number"))
    [(_, fields)] = supervisor.feed(line)
    assert "needs %d" in fields["event"] and "not a number" in fields["event"]


def test_hostile_extras_are_accepted_without_crashing_the_supervisor(
    supervisor: RealSupervisor,
) -> None:
    """Reserved, colliding and unserialisable extras are renamed or stringified, never fatal."""
    line = new_pipeline().render(make_record("hostile", extra=HOSTILE_EXTRAS))
    assert line.count(b"\n") == 1
    line.decode("utf-8")  # strict: no lone surrogates left
    [(method, fields)] = supervisor.feed(line)
    assert method == "info"
    assert fields["event"] == "hello" and fields["logger"] == "hostile"
    for key in ("self", "method_name", "target", "error_detail", "positional_args"):
        assert key not in fields
    assert "logger_name" not in fields and "stack" not in fields
    assert fields["_self"] == "me" and fields["_method_name"] == "m" and fields["_target"] == "t"
    assert fields["_level"] == "CRITICAL" and fields["_event"] == "not the message"
    assert fields["_timestamp"] == 12 and fields["_logger"] == ["not", "a", "name"]
    assert fields["_exception"] == "fake" and fields["_error_detail"] == {"x": 1}
    assert fields["_positional_args"] == [1, 2, 3] and fields["_logger_name"] == "hijack"
    assert fields["opaque"] == "<opaque thing>"
    assert fields["unprintable"].startswith("<unprintable Unprintable")
    assert fields["raw"] == "\ufffd\ufffdbytes\x00"
    assert fields["nested"] == {
        "a": {"b": [1, 2.5, None, True, {"3": "int key", "(4, 5)": "tuple key"}]}
    }
    assert (fields["nan"], fields["inf"]) == ("nan", "-inf")
    assert fields["huge_int"].startswith("0x")
    assert fields["a_set"] == ["only"] and fields["a_tuple"] == [1, "two"]
    assert fields["colour"] == "Colour.RED"
    assert fields["when"] == "2024-01-02 00:00:00+00:00"
    assert len(fields["huge"]) == 2_000_000
    assert fields["unicode"] == HOSTILE_EXTRAS["unicode"]
    assert fields["surrogate"] == "bad \ufffd half"
    assert fields["control"] == "tab\tnew\nline\r\x00"
    assert fields["cycle"][0] == 1  # flattened once too deep, but present
    # The real task-log writer rendered it too, with the original event.
    assert supervisor.task_log_lines()[-1]["event"] == "hello"


def test_bound_fields_with_reserved_names_are_renamed_too(supervisor: RealSupervisor) -> None:
    """bind() goes through the same renaming as extras, so context can never crash the parser."""
    pipeline = new_pipeline()
    pipeline.bind(self="s", exc_info="e", stack_info="si", msg="m", ti_id="abc")
    [(_, fields)] = supervisor.feed(pipeline.render(make_record()))
    assert fields["_self"] == "s" and fields["_exc_info"] == "e"
    assert fields["_stack_info"] == "si" and fields["_msg"] == "m"
    assert fields["ti_id"] == "abc" and "stack" not in fields


def test_bound_fields_appear_on_every_later_record_and_extras_override_them(
    supervisor: RealSupervisor,
) -> None:
    """Context bound once is on each record; a later bind or a per-call extra of the same name wins."""
    pipeline = new_pipeline()
    before = json.loads(pipeline.render(make_record()))
    pipeline.bind(ti_id="t1", dag_id="d", try_number=1, map_index=-1)
    pipeline.bind(ti_id="t2")
    plain = json.loads(pipeline.render(make_record()))
    overridden = json.loads(pipeline.render(make_record(extra={"dag_id": "other"})))
    assert "ti_id" not in before
    assert plain["ti_id"] == "t2" and plain["try_number"] == 1 and plain["map_index"] == -1
    assert overridden["dag_id"] == "other" and overridden["ti_id"] == "t2"
    supervisor.feed(pipeline.render(make_record(extra={"dag_id": "other"})))


def test_stack_info_is_sent_as_a_plain_string_field(supervisor: RealSupervisor) -> None:
    """stack_info=True travels as ``stack`` text, never as a key the supervisor acts on."""
    line = new_pipeline().render(make_record(stack_info="Stack (most recent call last):\n..."))
    [(_, fields)] = supervisor.feed(line)
    assert fields["stack"].startswith("Stack (most recent call last)")


def _raise_chain() -> BaseException:
    try:
        try:
            try:
                raise KeyError("inner")
            except KeyError as inner:
                raise ValueError("middle") from inner
        except ValueError:
            raise RuntimeError("outer")  # noqa: B904 - implicit __context__ on purpose
    except RuntimeError as exc:
        return exc


def test_exception_chain_is_sent_outermost_first_in_the_native_shape(
    supervisor: RealSupervisor,
) -> None:
    """exc_info becomes error_detail: one entry per chained exception, with cause flags and frames."""
    exc = _raise_chain()
    line = new_pipeline().render(make_record(level=logging.ERROR, exc_info=exc))
    [(method, fields)] = supervisor.feed(line)
    assert method == "error" and "exception" not in fields
    chain = fields["error_detail"]
    assert [e["exc_type"] for e in chain] == ["RuntimeError", "ValueError", "KeyError"]
    assert [e["exc_value"] for e in chain] == ["outer", "middle", "'inner'"]
    # RuntimeError was raised while handling ValueError (context); ValueError `from` KeyError.
    assert [e["is_cause"] for e in chain] == [False, False, True]
    for entry in chain:
        assert set(entry) == {
            "exc_type",
            "exc_value",
            "exc_notes",
            "syntax_error",
            "is_cause",
            "frames",
            "is_group",
            "exceptions",
        }
        assert entry["frames"] and all(
            set(frame) == {"filename", "lineno", "name"} for frame in entry["frames"]
        )
    assert chain[0]["frames"][-1]["name"] == "_raise_chain"
    assert chain[0]["frames"][-1]["filename"] == __file__


def test_exception_groups_notes_syntax_errors_and_suppressed_context(
    supervisor: RealSupervisor,
) -> None:
    """Groups list their members' chains; notes and SyntaxError details are kept; `from None` hides context."""

    def inner_group() -> BaseException:
        try:
            try:
                compile("def (", "<bundle>", "exec")
            except SyntaxError as syntax:
                syntax.add_note("while loading the bundle")
                raise ExceptionGroup("outer", [syntax, ExceptionGroup("inner", [boom()])]) from None
        except ExceptionGroup as group:
            return group
        raise AssertionError("unreachable")

    line = new_pipeline().render(make_record(level=logging.ERROR, exc_info=inner_group()))
    [(_, fields)] = supervisor.feed(line)
    [group] = fields["error_detail"]  # the SyntaxError context is suppressed by `from None`
    assert group["is_group"] is True and group["exc_type"] == "ExceptionGroup"
    syntax_chain, inner_chain = group["exceptions"]
    assert syntax_chain[0]["exc_type"] == "SyntaxError"
    assert syntax_chain[0]["exc_notes"] == ["while loading the bundle"]
    assert syntax_chain[0]["syntax_error"]["filename"] == "<bundle>"
    assert inner_chain[0]["is_group"] is True
    assert inner_chain[0]["exceptions"][0][0]["exc_value"] == "boom"


def test_exception_chains_with_loops_terminate(supervisor: RealSupervisor) -> None:
    """An exception that is its own (indirect) context is listed once, not forever."""
    first, second = ValueError("a"), ValueError("b")
    first.__context__, second.__context__ = second, first
    line = new_pipeline().render(make_record(level=logging.ERROR, exc_info=first))
    [(_, fields)] = supervisor.feed(line)
    assert [e["exc_value"] for e in fields["error_detail"]] == ["a", "b"]


def test_very_deep_tracebacks_keep_both_ends(supervisor: RealSupervisor) -> None:
    """A recursion traceback is cut in the middle, so the line stays reasonable."""

    def recurse(n: int) -> None:
        if n == 0:
            raise RecursionError("deep")
        recurse(n - 1)

    try:
        recurse(300)
    except RecursionError as exc:
        line = new_pipeline().render(make_record(exc_info=exc))
    [(_, fields)] = supervisor.feed(line)
    frames = fields["error_detail"][0]["frames"]
    assert len(frames) == 101
    assert frames[0]["name"] == "test_very_deep_tracebacks_keep_both_ends"
    assert "frames omitted" in frames[50]["name"]
    assert frames[-1]["name"] == "recurse"


def test_exc_info_without_an_exception_is_tolerated(supervisor: RealSupervisor) -> None:
    """exc_info=(None, None, None) (logging.exception outside except) adds no exception field."""
    line = new_pipeline().render(make_record(exc_info=(None, None, None)))
    [(_, fields)] = supervisor.feed(line)
    assert "error_detail" not in fields


# --------------------------------------------------------------------------------------
# Level filtering
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "logger", "threshold"),
    [
        ({}, "any", logging.INFO),
        ({LEVEL: "debug"}, "any", logging.DEBUG),
        ({LEVEL: " Warn "}, "any", logging.WARNING),
        ({LEVEL: "FATAL"}, "any", logging.CRITICAL),
        ({LEVEL: "notset"}, "any", logging.NOTSET),
        ({LEVEL: "trace"}, "any", logging.INFO),
        ({LEVEL: "10"}, "any", logging.INFO),
        ({NAMESPACES: "a=DEBUG"}, "a", logging.DEBUG),
        ({NAMESPACES: "a=DEBUG"}, "a.b.c", logging.DEBUG),
        ({NAMESPACES: "a=DEBUG"}, "ab", logging.INFO),
        ({NAMESPACES: "a=DEBUG"}, "b.a", logging.INFO),
        ({NAMESPACES: "a=error a.b=debug"}, "a.b.c", logging.DEBUG),
        ({NAMESPACES: "a.b=debug,a=error"}, "a.x", logging.ERROR),
        ({NAMESPACES: " a=warning ,, \n b=Critical "}, "b", 50),
        ({NAMESPACES: "a=bogus b c= =INFO"}, "a", logging.INFO),
        (
            {
                LEVEL: "ERROR",
                NAMESPACES: "noisy=CRITICAL,trio_coord=DEBUG",
            },
            "trio_coord.comm",
            logging.DEBUG,
        ),
    ],
)
def test_threshold_table(env: dict[str, str], logger: str, threshold: int) -> None:
    """The global level and the longest dotted-prefix namespace entry decide a logger's threshold."""
    level_filter = LevelFilter.from_env(env)
    assert level_filter.threshold(logger) == threshold
    assert level_filter.allows(logger, threshold)
    assert not level_filter.allows(logger, threshold - 1) or threshold == 0


def test_malformed_configuration_is_listed_and_reported_once() -> None:
    """Invalid entries are skipped, and the pipeline sends one error record naming each."""
    env = {
        LEVEL: "loud",
        NAMESPACES: "ok=DEBUG nolevel a=bogus =INFO",
    }
    level_filter = LevelFilter.from_env(env)
    assert level_filter.threshold("ok.x") == logging.DEBUG
    assert len(level_filter.problems) == 4
    fallback = io.BytesIO()
    pipeline = LogPipeline(level_filter=level_filter, masker=Masker(), fallback=fallback)
    pipeline.close()
    lines = decode_lines(fallback.getvalue())
    assert [line["level"] for line in lines] == ["error"] * 4
    assert {line["logger"] for line in lines} == {"trio_coord.logs"}
    assert "'nolevel'" in lines[1]["event"] and "'=INFO'" in lines[3]["event"]


def test_parse_level_is_case_insensitive_and_strict() -> None:
    """Level names are matched ignoring case and blanks; anything else is rejected."""
    assert parse_level(" CRITICAL ") == parse_level("fatal") == logging.CRITICAL
    assert parse_level("Warn") == parse_level("WARNING") == logging.WARNING
    assert parse_level("") is None and parse_level("20") is None and parse_level("trace") is None
    assert level_name(0) == "debug"


def test_filtered_records_are_not_formatted() -> None:
    """A record below its logger's threshold is rejected before any formatting work."""
    fallback = io.BytesIO()
    pipeline = new_pipeline(env={NAMESPACES: "chatty=ERROR"}, fallback=fallback)

    class Explodes:
        def __str__(self) -> str:
            raise AssertionError("formatted a filtered record")

    emit(pipeline, "chatty.sub", logging.WARNING, Explodes())
    emit(pipeline, "other", logging.DEBUG, Explodes())
    emit(pipeline, "chatty", logging.ERROR, "kept")
    pipeline.close()
    assert events(fallback.getvalue()) == ["kept"]


def test_install_lowers_the_logger_level_to_the_most_permissive_threshold() -> None:
    """install() lets records reach the handler that the filter would accept, and no others."""
    pipeline = new_pipeline(
        env={
            LEVEL: "ERROR",
            NAMESPACES: "detail=DEBUG",
        }
    )
    logger = logging.getLogger("test_logs.install_target")
    logger.propagate = False
    try:
        pipeline.install(logger)
        pipeline.install(logger)
        assert logger.level == logging.DEBUG
        assert logger.handlers.count(pipeline.handler) == 1
    finally:
        pipeline.uninstall(logger)
    assert pipeline.handler not in logger.handlers


# --------------------------------------------------------------------------------------
# Buffering, pump, batching
# --------------------------------------------------------------------------------------


async def test_records_before_the_pump_are_buffered_and_flushed_in_order_in_one_batch() -> None:
    """Records emitted before the socket exists are kept and written first, with one send_all."""
    pipeline = new_pipeline()
    for i in range(50):
        emit(pipeline, msg=f"early {i}")
    stream = CountingStream()
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.pump, stream)
        emit(pipeline, msg="late")
        await pipeline.drain()
        pipeline.close()
    assert len(stream.calls) == 2
    assert events(stream.calls[0]) == [f"early {i}" for i in range(50)]
    assert events(bytes(stream.received)) == [f"early {i}" for i in range(50)] + ["late"]


async def test_pump_returns_after_close_once_everything_is_written() -> None:
    """close() lets the pump flush what it holds and return; records after close go to the fallback."""
    fallback = io.BytesIO()
    pipeline = new_pipeline(fallback=fallback)
    async with pumping(pipeline) as (_, got):
        emit(pipeline, msg="one")
        emit(pipeline, msg="two")
        pipeline.close()
        emit(pipeline, msg="after close")
        pipeline.close()  # idempotent
    # The pump has returned: everything it had is in `got`.
    assert events(bytes(got)) == ["one", "two"]
    assert events(fallback.getvalue()) == ["after close"]


async def test_hundred_thousand_records_from_a_worker_thread_arrive_complete_and_in_order() -> None:
    """A task logging 100k records from a thread loses none and reorders none, even with a small buffer."""
    pipeline = new_pipeline(capacity=256, worker_wait=30.0)
    send, receive = trio.testing.memory_stream_one_way_pair()
    got = bytearray()
    count = 100_000

    def task() -> None:
        for i in range(count):
            emit(pipeline, "task.test", logging.INFO, "record %d", i)

    with trio.fail_after(120):  # hang guard only
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_all, receive, got)
            async with trio.open_nursery() as pump_nursery:
                await pump_nursery.start(pipeline.pump, send)
                await trio.to_thread.run_sync(task)
                await pipeline.drain()
                pipeline.close()
            await send.aclose()
    lines = bytes(got).split(b"\n")
    assert lines.pop() == b""
    assert len(lines) == count and pipeline.dropped == 0
    assert lines[0].startswith(b'{"timestamp":"') and b'"event":"record 0"' in lines[0]
    numbers = [int(json.loads(line)["event"].split()[1]) for line in lines]
    assert numbers == list(range(count))


async def test_real_loopback_socket_carries_every_record_from_several_threads() -> None:
    """Over a real TCP socket, records from concurrent threads all arrive, each thread's in order."""
    pipeline = new_pipeline(worker_wait=30.0)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    got = bytearray()
    threads, per_thread = 4, 5_000

    async def accept_and_read() -> None:
        server = await listeners[0].accept()
        await read_all(server, got)

    def task(t: int) -> None:
        for i in range(per_thread):
            emit(pipeline, f"thread.{t}", logging.INFO, "%d", i)

    with trio.fail_after(120):  # hang guard only
        async with trio.open_nursery() as nursery:
            nursery.start_soon(accept_and_read)
            client = await trio.open_tcp_stream("127.0.0.1", port)
            await nursery.start(pipeline.pump, client)
            async with trio.open_nursery() as workers:
                for t in range(threads):
                    workers.start_soon(trio.to_thread.run_sync, task, t)
            await pipeline.drain()
            pipeline.close()
            await client.aclose()
    await listeners[0].aclose()
    per_logger: dict[str, list[int]] = {}
    for line in decode_lines(bytes(got)):
        per_logger.setdefault(line["logger"], []).append(int(line["event"]))
    assert per_logger == {f"thread.{t}": list(range(per_thread)) for t in range(threads)}


async def test_socket_bytes_parse_line_by_line_in_the_real_parser(
    supervisor: RealSupervisor,
) -> None:
    """What the pump writes, split wherever the stream splits it, is accepted line by line."""
    pipeline = new_pipeline(max_record=4 * 1024 * 1024)  # the hostile extras stay whole
    pipeline.bind(ti_id="0195a7f2-0000-7000-8000-000000000000", try_number=1)
    async with pumping(pipeline) as (_, got):
        for i in range(200):
            extra = HOSTILE_EXTRAS if i % 50 == 0 else {"i": i}
            emit(pipeline, "mixed", 10 + (i % 5) * 10, "n=%d", i, extra=extra)
            if i % 7 == 0:
                emit(pipeline, "mixed", logging.ERROR, "failed", exc_info=_raise_chain())
                await trio.lowlevel.checkpoint()
        pipeline.close()
    parsed = supervisor.feed(bytes(got))
    assert len(parsed) == 200 + 29
    assert all(fields["ti_id"].startswith("0195a7f2") for _, fields in parsed)


async def test_the_pump_wakes_only_when_the_buffer_was_empty() -> None:
    """Cross-thread wake-ups happen on empty-to-non-empty transitions, not once per record."""
    pipeline = new_pipeline()
    stream = CountingStream()
    wakes = CallCounter(pipeline, "_wake_pump")
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.pump, stream)
        await trio.testing.wait_all_tasks_blocked()
        for i in range(100):  # no checkpoint in between: the pump cannot run
            emit(pipeline, msg=str(i))
        await pipeline.drain()
        wakes_while_logging = wakes.calls
        pipeline.close()
    assert wakes_while_logging == 1
    assert len(stream.calls) == 1 and len(events(stream.calls[0])) == 100


# --------------------------------------------------------------------------------------
# Bounded buffer and drops
# --------------------------------------------------------------------------------------


async def test_overflow_on_the_trio_thread_drops_without_waiting_and_reports_once() -> None:
    """A full buffer drops (and counts) Trio-thread records at once; one warning follows the survivors."""
    pipeline = new_pipeline(capacity=10, worker_wait=3600.0)
    waited = False

    def never_wait(size: int) -> bool:
        nonlocal waited
        waited = True
        return False

    pipeline._wait_for_room_locked = never_wait  # type: ignore[method-assign]
    stream = CountingStream()
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.pump, stream)
        for i in range(25):  # the pump cannot run in between
            emit(pipeline, msg=f"r{i}")
        assert pipeline.dropped == 15 and not waited
        await pipeline.drain()
        emit(pipeline, msg="after")
        await pipeline.drain()
        pipeline.close()
    lines = decode_lines(bytes(stream.received))
    assert [line["event"] for line in lines] == [
        *(f"r{i}" for i in range(10)),
        "15 log records dropped",
        "after",
    ]
    warning = lines[10]
    assert warning["level"] == "warning" and warning["dropped"] == 15
    assert warning["logger"] == "trio_coord.logs"
    assert pipeline.dropped == 15


def test_overflow_before_connect_keeps_the_oldest_records_and_reports_the_rest() -> None:
    """Before the socket exists a full buffer keeps what it has; the drop count follows it out."""
    fallback = io.BytesIO()
    pipeline = new_pipeline(capacity=3, fallback=fallback)
    for i in range(5):
        emit(pipeline, msg=f"r{i}")
    pipeline.close()
    assert events(fallback.getvalue()) == ["r0", "r1", "r2", "2 log records dropped"]
    assert pipeline.dropped == 2


def test_a_single_huge_record_is_accepted_into_an_empty_buffer() -> None:
    """The byte bound never makes a record undeliverable: an empty buffer takes any one record."""
    fallback = io.BytesIO()
    pipeline = new_pipeline(fallback=fallback, max_buffered_bytes=1000)
    emit(pipeline, msg="y" * 5000)
    emit(pipeline, msg="z" * 5000)
    pipeline.close()
    assert [len(e) for e in events(fallback.getvalue())] == [5000, len("1 log records dropped")]
    assert pipeline.dropped == 1


async def test_worker_threads_wait_a_bounded_time_then_drop_when_the_socket_is_stuck() -> None:
    """With the pump stuck in send_all, a worker waits briefly for room, then drops without waiting again."""
    pipeline = new_pipeline(capacity=4, worker_wait=0.05)
    stream = CountingStream(gated=True)
    waits = 0
    real_wait = pipeline._wait_for_room_locked

    def counting_wait(size: int) -> bool:
        nonlocal waits
        waits += 1
        return real_wait(size)

    pipeline._wait_for_room_locked = counting_wait  # type: ignore[method-assign]

    def task() -> None:
        for i in range(20):
            emit(pipeline, msg=f"w{i}")

    with trio.fail_after(60):  # hang guard only
        async with trio.open_nursery() as nursery:
            await nursery.start(pipeline.pump, stream)
            emit(pipeline, msg="first")
            await stream.entered.wait()  # the pump is stuck sending "first"
            await trio.to_thread.run_sync(task)
            assert waits == 1  # stalled after the first timeout: later records drop at once
            assert pipeline.dropped == 16
            assert stream.gate is not None
            stream.gate.set()
            await pipeline.drain()
            pipeline.close()
    assert events(bytes(stream.received)) == [
        "first",
        "w0",
        "w1",
        "w2",
        "w3",
        "16 log records dropped",
    ]


# --------------------------------------------------------------------------------------
# Disconnect and fallback
# --------------------------------------------------------------------------------------


async def test_a_failed_send_resends_the_whole_batch_to_the_fallback() -> None:
    """When send_all breaks mid-batch, the full batch and every later record go to the fallback."""
    fallback = io.BytesIO()
    pipeline = new_pipeline(fallback=fallback)
    for i in range(5):
        emit(pipeline, msg=f"b{i}")
    stream = CountingStream(fail_on_call=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.pump, stream)  # must not raise
        await pipeline.drain()
        emit(pipeline, msg="later")
        await pipeline.drain()
        pipeline.close()
    assert len(stream.calls) == 1  # nothing is written to the socket after a failed send
    assert not bytes(stream.received).endswith(b"\n")  # the cut half-line
    lines = decode_lines(fallback.getvalue())
    assert lines[0]["level"] == "warning" and "stderr" in lines[0]["event"]
    assert [line["event"] for line in lines[1:]] == [f"b{i}" for i in range(5)] + ["later"]


async def test_a_closed_stream_falls_back_without_raising(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A stream closed under the pump is treated like a disconnect; the fallback is written on the pump's own thread, in virtual time."""
    written_on: list[int] = []

    class Recording(io.BytesIO):
        def write(self, data: Any) -> int:
            written_on.append(threading.get_ident())
            return super().write(data)

    fallback = Recording()
    pipeline = new_pipeline(fallback=fallback)
    send, _receive = trio.testing.memory_stream_one_way_pair()
    await send.aclose()
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.pump, send)
        emit(pipeline, msg="x")
        with trio.fail_after(1):  # virtual: passes only if nothing waits on a real thread
            await pipeline.drain()
        pipeline.close()
    assert events(fallback.getvalue())[-1] == "x"
    # No worker thread: the virtual clock (and a model driving it) sees all of the work.
    assert set(written_on) == {threading.get_ident()}


async def test_supervisor_closing_the_real_socket_loses_nothing() -> None:
    """Every record reaches either the socket reader or the fallback when the peer hangs up."""
    fallback = io.BytesIO()
    pipeline = new_pipeline(fallback=fallback)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    got = bytearray()
    with trio.fail_after(60):  # hang guard only
        async with trio.open_nursery() as nursery:
            client = await trio.open_tcp_stream("127.0.0.1", port)
            server = await listeners[0].accept()
            await nursery.start(pipeline.pump, client)
            emit(pipeline, msg="0")
            await pipeline.drain()
            got += await server.receive_some()
            server.socket.setsockopt(
                trio.socket.SOL_SOCKET, trio.socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            await server.aclose()  # RST: the next writes fail
            for i in range(1, 2000):
                emit(pipeline, msg=str(i))
                if i % 100 == 0:
                    await pipeline.drain()
            await pipeline.drain()
            pipeline.close()
            await client.aclose()
    await listeners[0].aclose()
    delivered = {int(e) for e in events(bytes(got))}
    delivered |= {int(e) for e in events(fallback.getvalue()) if e.isdigit()}
    assert delivered == set(range(2000))
    assert pipeline.dropped == 0


async def test_a_cancelled_pump_hands_its_records_to_the_fallback() -> None:
    """Cancelling the pump mid-send writes the in-flight batch and the buffer to the fallback, then later records too."""
    fallback = io.BytesIO()
    pipeline = new_pipeline(fallback=fallback)
    stream = CountingStream(gated=True)  # never opened: send_all blocks
    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.pump, stream)
        emit(pipeline, msg="in flight")
        await stream.entered.wait()
        emit(pipeline, msg="buffered")
        nursery.cancel_scope.cancel()
    emit(pipeline, msg="after")
    assert events(fallback.getvalue()) == ["in flight", "buffered", "after"]
    with trio.move_on_after(10):
        await pipeline.drain()  # nothing is left pending
        return
    pytest.fail("drain() waited for records that had already gone to the fallback")


def test_fallback_defaults_to_stderr_and_a_broken_fallback_counts_drops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a fallback argument records go to sys.stderr; if even that fails they are counted."""
    stderr = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    monkeypatch.setattr(sys, "stderr", stderr)
    pipeline = LogPipeline(level_filter=LevelFilter(), masker=Masker())
    emit(pipeline, msg="to stderr")
    pipeline.close()
    assert isinstance(stderr.buffer, io.BytesIO)
    assert events(stderr.buffer.getvalue()) == ["to stderr"]

    class Broken(io.BytesIO):
        def write(self, data: Any) -> int:
            raise OSError("EPIPE")

    broken = LogPipeline(level_filter=LevelFilter(), masker=Masker(), fallback=Broken())
    emit(broken, msg="lost")
    broken.close()
    assert broken.dropped == 1


def test_text_only_stderr_still_receives_records(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sys.stderr without a binary buffer (replaced by a StringIO) gets the lines as text."""
    text = io.StringIO()
    monkeypatch.setattr(sys, "stderr", text)
    pipeline = LogPipeline(level_filter=LevelFilter(), masker=Masker())
    emit(pipeline, msg="text")
    pipeline.close()
    assert events(text.getvalue().encode()) == ["text"]


# --------------------------------------------------------------------------------------
# drain() and close()
# --------------------------------------------------------------------------------------


async def test_drain_waits_until_earlier_records_are_written() -> None:
    """drain() returns only once the socket has taken every record emitted before it."""
    pipeline = new_pipeline()
    stream = CountingStream(gated=True)
    drained = trio.Event()

    async def drain_then_flag() -> None:
        await pipeline.drain()
        drained.set()

    async with trio.open_nursery() as nursery:
        await nursery.start(pipeline.pump, stream)
        emit(pipeline, msg="a")
        emit(pipeline, msg="b")
        nursery.start_soon(drain_then_flag)
        await stream.entered.wait()
        await trio.testing.wait_all_tasks_blocked()
        assert not drained.is_set() and stream.received == b""
        assert stream.gate is not None
        stream.gate.set()
        await drained.wait()
        assert events(bytes(stream.received)) == ["a", "b"]
        pipeline.close()


async def test_drain_with_nothing_pending_returns_at_once() -> None:
    """drain() with no records emitted does not wait for the pump, even before it starts."""
    pipeline = new_pipeline()
    await pipeline.drain()


async def test_drain_is_bounded_only_by_the_callers_cancel_scope(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Without a pump drain() waits, and the caller's timeout is what ends it."""
    pipeline = new_pipeline()
    emit(pipeline, msg="pending")
    with trio.move_on_after(5) as scope:
        await pipeline.drain()
    assert scope.cancelled_caught and trio.current_time() == 5


async def test_close_without_a_pump_flushes_the_buffer_and_wakes_drain(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """If the socket never connected, close() writes the buffer to the fallback and drain() returns."""
    fallback = io.BytesIO()
    pipeline = new_pipeline(fallback=fallback)
    emit(pipeline, msg="never connected")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pipeline.drain)
        await trio.testing.wait_all_tasks_blocked()
        await trio.to_thread.run_sync(pipeline.close)  # from another thread, for good measure
    assert events(fallback.getvalue()) == ["never connected"]
    await pipeline.pump(CountingStream())  # after close it returns at once


async def test_pump_runs_only_once() -> None:
    """A second pump would be a second writer to the socket; it is refused."""
    pipeline = new_pipeline()
    pipeline.close()
    await pipeline.pump(CountingStream())
    with pytest.raises(RuntimeError):
        await pipeline.pump(CountingStream())


def test_unrenderable_records_are_replaced_by_an_error_record() -> None:
    """If rendering itself fails, an error record says so instead of the handler raising."""
    fallback = io.BytesIO()
    pipeline = new_pipeline(fallback=fallback)

    def broken(record: logging.LogRecord) -> bytes:
        raise RuntimeError("renderer bug")

    real_render = pipeline._renderer.render
    pipeline._renderer.render = broken  # type: ignore[method-assign]
    emit(pipeline, "user.code", msg="x")
    pipeline._renderer.render = real_render  # type: ignore[method-assign]
    pipeline.close()
    [line] = decode_lines(fallback.getvalue())
    assert line["level"] == "error" and "'user.code'" in line["event"]
    assert "renderer bug" in line["event"]


def test_default_capacity_is_documented_and_sane() -> None:
    """The default buffer holds a 100k-record burst from the Trio thread; bytes stay bounded too."""
    assert 100_000 <= DEFAULT_CAPACITY <= 1_000_000
    assert DEFAULT_MAX_BUFFERED_BYTES <= 64 * 1024 * 1024


def test_handler_works_through_the_logging_module_from_many_threads() -> None:
    """Installed on a logger, the handler takes records from several threads concurrently."""
    fallback = io.BytesIO()
    pipeline = new_pipeline(fallback=fallback)
    logger = logging.getLogger("test_logs.threads")
    logger.propagate = False
    pipeline.install(logger)

    def task(n: int) -> None:
        for i in range(200):
            logger.info("t%d-%d", n, i)

    try:
        workers = [threading.Thread(target=task, args=(n,)) for n in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        pipeline.uninstall(logger)
    pipeline.close()
    got = events(fallback.getvalue())
    assert len(got) == 800
    for n in range(4):
        assert [e for e in got if e.startswith(f"t{n}-")] == [f"t{n}-{i}" for i in range(200)]


# --------------------------------------------------------------------------------------
# Record size limit, key-named fields on every path, the synchronous fallback
# --------------------------------------------------------------------------------------


async def test_a_record_over_the_limit_is_cut_with_a_marker_and_counted(
    supervisor: RealSupervisor,
) -> None:
    """A line over max_record is replaced by one within it, masked before the cut, with a marker; the count goes out at close."""
    masker = Masker()
    masker.add("secret-at-the-cut")
    pipeline = new_pipeline(masker=masker, max_record=8192)
    async with pumping(pipeline) as (_, got):
        # Secrets back to back past the cut: at one of these offsets the cut falls at
        # least five characters into one.
        for offset in (0, 6, 12):
            message = "y" * (6500 + offset) + "secret-at-the-cut" * 1000
            emit(pipeline, msg=message, extra={"big": "q" * 50_000})
        emit(pipeline, msg="small")
        pipeline.close()
    lines = bytes(got).split(b"\n")[:-1]
    assert all(len(line) + 1 <= 8192 for line in lines)
    assert b"secre" not in bytes(got)  # not even a piece of a secret survives the cut
    parsed = [fields for _, fields in supervisor.feed(bytes(got))]
    *cuts, small, summary = parsed
    for cut in cuts:
        size = cut["truncated_from"]
        assert cut["event"].endswith(f"this log record was {size} bytes, over the 8192-byte limit]")
        assert cut["event"].startswith("yyy") and "big" not in cut
    assert len(cuts) == 3 and small["event"] == "small"
    assert summary["truncated"] == 3 and pipeline.truncated == 3


def test_the_record_limit_comes_from_the_environment() -> None:
    """TRIO_COORD_MAX_LOG_RECORD sets the limit the runtime's pipeline applies; nonsense is a usage error."""
    from trio_coord.config import Address
    from trio_coord.errors import UsageError
    from trio_coord.runtime.entry import build_masker_and_pipeline

    here = Address("127.0.0.1", 1)
    config = Config.from_env(here, here, {"TRIO_COORD_MAX_LOG_RECORD": "5000"})
    _, pipeline = build_masker_and_pipeline(config, {})
    pipeline._fallback = Fallback(out := io.BytesIO(), lambda n: None)  # type: ignore[attr-defined]
    emit(pipeline, msg="w" * 6000)
    pipeline.close()
    assert all(len(line) < 5000 for line in out.getvalue().split(b"\n"))
    assert pipeline.truncated == 1
    assert Config.from_env(here, here, {}).max_log_record == DEFAULT_MAX_RECORD
    with pytest.raises(UsageError, match="TRIO_COORD_MAX_LOG_RECORD"):
        Config.from_env(here, here, {"TRIO_COORD_MAX_LOG_RECORD": "12"})


async def test_key_named_fields_are_masked_alike_on_the_socket_and_the_fallback() -> None:
    """A value under a sensitive key is hidden whether or not it was registered, and the fallback carries the same bytes as the socket."""
    fallback = io.BytesIO()
    pipeline = new_pipeline(fallback=fallback)
    extra = {"api_key": "never-registered", "auth": {"Password": ["p1", 7]}, "host": "h1"}
    async with pumping(pipeline) as (send, got):
        emit(pipeline, msg="same", extra=extra)
        await pipeline.drain()
        await send.aclose()  # the socket is gone: the next record takes the fallback
        emit(pipeline, msg="same", extra=extra)
        await pipeline.drain()
        pipeline.close()
    (on_socket,) = decode_lines(bytes(got))
    on_stderr = decode_lines(fallback.getvalue())[-1]
    for fields in (on_socket, on_stderr):
        assert fields["api_key"] == "***" and fields["auth"] == {"Password": ["***", 7]}
        assert fields["host"] == "h1"
    assert {k: v for k, v in on_socket.items() if k != "timestamp"} == {
        k: v for k, v in on_stderr.items() if k != "timestamp"
    }


# --------------------------------------------------------------------------------------
# The task's own stdout/stderr
# --------------------------------------------------------------------------------------


def test_stdout_lines_are_masked_before_they_are_written() -> None:
    """Complete lines are masked whole, even a secret written in pieces; bytes that are not UTF-8 survive."""
    masker = Masker()
    masker.add("hunter2-secret")
    target = io.BytesIO()
    writer = MaskingWriter(target, masker)
    writer.write(b"a hunter2-")
    assert target.getvalue() == b""  # held back until the line is complete
    writer.write(b"secret b\n\xff raw hunter2-secret\npartial")
    assert target.getvalue() == b"a *** b\n\xff raw ***\n"
    writer.flush()
    assert target.getvalue().endswith(b"partial")


def test_a_line_without_newline_is_bounded() -> None:
    """A task printing without newlines holds back at most MAX_PENDING bytes."""
    target = io.BytesIO()
    writer = MaskingWriter(target, Masker())
    writer.write(b"x" * (MAX_PENDING + 1))
    assert len(target.getvalue()) == MAX_PENDING + 1


def test_masked_stdio_replaces_and_restores_sys_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    """print() and sys.stderr.buffer go through the masker while installed; the real streams come back after."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    masker = Masker()
    masker.add("printed-secret")
    with masked_stdio(masker):
        print("to stdout printed-secret")
        sys.stderr.buffer.write(b"to stderr printed-secret\n")
    assert (sys.stdout, sys.stderr) == (out, err)
    out.flush()
    err.flush()
    assert out.buffer.getvalue() == b"to stdout ***\n"  # type: ignore[attr-defined]
    assert err.buffer.getvalue() == b"to stderr ***\n"  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------
# Figures the docs quote
# --------------------------------------------------------------------------------------


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def _levels(value: Any) -> tuple[int, Any]:
    levels = 0
    while isinstance(value, list):
        value, levels = value[0], levels + 1
    return levels, value


@pytest.mark.parametrize("depth", [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 10 * MAX_DEPTH])
def test_a_log_record_keeps_24_levels_of_nesting_and_flattens_the_rest(
    supervisor: RealSupervisor, depth: int
) -> None:
    """An extra nested up to 24 levels arrives as JSON structure; a deeper part arrives as its str(), and the record is accepted."""
    assert MAX_DEPTH == 24  # the figure docs/protocol.md and docs/logging.md quote
    line = new_pipeline().render(make_record("deep", extra={"deep": _nested(depth)}))
    [(method, fields)] = supervisor.feed(line)
    assert method == "info"
    levels, inner = _levels(fields["deep"])
    assert levels == min(depth, MAX_DEPTH)
    expected = "leaf" if depth <= MAX_DEPTH else str(_nested(depth - MAX_DEPTH))
    assert inner == expected


def test_docs_quote_the_figures_the_code_defines() -> None:
    """docs/logging.md and docs/security.md state the limits the code uses."""
    from trio_coord.runtime.masking import DEFAULT_MIN_LENGTH, DEFAULT_SENSITIVE_NAMES, MAX_DEPTH
    from trio_coord.runtime.serve import MAX_RETRY_REASON

    root = Path(__file__).resolve().parent.parent / "docs"
    logging_md = (root / "logging.md").read_text()
    security_md = (root / "security.md").read_text()
    assert f"**{DEFAULT_CAPACITY:,} records**".replace(",", " ") in logging_md
    assert f"(and {DEFAULT_MAX_BUFFERED_BYTES // 2**20} MiB)" in logging_md
    assert f"**{DEFAULT_MAX_RECORD // 2**20} MiB**" in logging_md
    assert f"in bytes,\n{LOWEST_MAX_LOG_RECORD} or more" in logging_md
    assert f"up to {DEFAULT_WORKER_WAIT} s" in logging_md
    assert f"waits\n{LINGER * 1000:g} ms (`LINGER`)" in logging_md
    assert (
        f"{MAX_PENDING // 1024} KiB" in logging_md and f"{MAX_PENDING // 1024} KiB" in security_md
    )
    assert f"deeper than {MAX_DEPTH} levels" in logging_md
    assert f"fewer than {DEFAULT_MIN_LENGTH} characters" in logging_md
    assert f"shorter than {DEFAULT_MIN_LENGTH} characters" in security_md
    assert f"cut to {MAX_RETRY_REASON} characters" in security_md
    assert all(f"`{name}`" in security_md for name in DEFAULT_SENSITIVE_NAMES)
