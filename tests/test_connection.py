"""CommConnection: request ids, the first frame, reply matching, error placements, the terminal rule.

Inbound bytes come from FrameFactory (encoded with msgspec, like the real supervisor); outbound
bytes are read back with msgspec too, so both directions are checked against the other side's
decoder rather than our own.
"""

from __future__ import annotations

import datetime
from typing import Any

import msgspec
import pytest
from helpers import FrameFactory

from trio_coord.errors import (
    AlreadyExists,
    LocalProtocolError,
    NotFound,
    PermissionDenied,
    RemoteProtocolError,
    SupervisorError,
)
from trio_coord.protocol import (
    NEED_DATA,
    Closed,
    CommConnection,
    ParseRequest,
    Reply,
    Startup,
    State,
    StrayReply,
)
from trio_coord.protocol.connection import ERROR_CLASSES, FIRST_REQUEST_ID, Event
from trio_coord.protocol.messages import (
    DagFileParsingResult,
    DeleteVariable,
    ErrorResponse,
    GetConnection,
    GetVariable,
    OKResponse,
    PutVariable,
    Request,
    SucceedTask,
    TaskState,
    VariableResult,
)

f = FrameFactory()
NOW = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
GET_VAR = GetVariable(key="k")
SUCCEED = SucceedTask(end_date=NOW)
VAR_BODY = f.body("VariableResult", key="k", value="v")


def drain(conn: CommConnection) -> list[Event]:
    """Every event the connection has ready."""
    out: list[Event] = []
    while (event := conn.next_event()) is not NEED_DATA:
        assert not isinstance(event, type(NEED_DATA))
        out.append(event)
        if isinstance(event, Closed):
            break
    return out


def feed(conn: CommConnection, data: bytes) -> list[Event]:
    conn.receive_data(data)
    return drain(conn)


def feed_one(conn: CommConnection, data: bytes) -> Event:
    (event,) = feed(conn, data)
    return event


def running() -> CommConnection:
    """A connection that has received StartupDetails."""
    conn = CommConnection()
    assert isinstance(feed_one(conn, f.startup()), Startup)
    return conn


def parsing() -> CommConnection:
    """A connection that has received a DagFileParseRequest."""
    conn = CommConnection()
    assert isinstance(feed_one(conn, f.parse_request()), ParseRequest)
    return conn


def sent(data: bytes) -> list[Any]:
    """A request frame as the supervisor's msgspec decoder reads it."""
    assert int.from_bytes(data[:4], "big") == len(data) - 4
    frame = msgspec.msgpack.decode(data[4:])
    assert isinstance(frame, list)
    return frame


def reply_to(conn: CommConnection, msg: Request, *frames: Any, **kwargs: Any) -> Reply:
    """Send ``msg`` and feed back one reply frame built from ``frames``; return the Reply."""
    request_id, _ = conn.send_request(msg)
    event = feed_one(conn, f.reply(request_id, *frames, **kwargs))
    assert isinstance(event, Reply) and event.request_id == request_id
    return event


# -- request ids ------------------------------------------------------------------------------


def test_ids_start_at_one_and_never_repeat() -> None:
    """Ids are 1, 2, 3, ... whatever was answered or forgotten in between, and each frame carries its id."""
    conn = running()
    seen = []
    for n in range(40):
        request_id, data = conn.send_request(GET_VAR)
        assert sent(data)[0] == request_id
        seen.append(request_id)
        if n % 3 == 0:
            conn.forget(request_id)
        elif n % 3 == 1:
            assert isinstance(feed_one(conn, f.reply(request_id, VAR_BODY)), Reply)
    assert seen == list(range(FIRST_REQUEST_ID, FIRST_REQUEST_ID + 40))
    assert FIRST_REQUEST_ID == 1


def test_request_frame_is_two_elements_the_supervisor_reads() -> None:
    """A request goes out as [id, body] with the body's type tag, readable by msgspec."""
    conn = running()
    request_id, data = conn.send_request(GET_VAR)
    assert sent(data) == [request_id, {"key": "k", "type": "GetVariable"}]


def test_carrier_is_the_third_element() -> None:
    """A str->str trace carrier goes out as the third element (§3.6)."""
    conn = running()
    carrier = {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01", "tracestate": ""}
    request_id, data = conn.send_request(GET_VAR, carrier=carrier)
    assert sent(data) == [request_id, {"key": "k", "type": "GetVariable"}, carrier]


@pytest.mark.parametrize(
    "carrier",
    [{"traceparent": 1}, {1: "x"}, {"a": None}, {"a": b"x"}, [("a", "b")], "traceparent"],
    ids=repr,
)
def test_carrier_must_map_str_to_str(carrier: Any) -> None:
    """A carrier that is not str->str is refused locally (it is fatal for the supervisor, §12 row 3) and uses no id."""
    conn = running()
    with pytest.raises(LocalProtocolError, match="carrier"):
        conn.send_request(GET_VAR, carrier=carrier)
    assert conn.pending == ()
    assert conn.send_request(GET_VAR)[0] == FIRST_REQUEST_ID


def test_invalid_message_is_refused_and_uses_no_id() -> None:
    """A request the supervisor would drop (naive datetime) raises LocalProtocolError and changes nothing."""
    conn = running()
    with pytest.raises(LocalProtocolError, match="naive"):
        conn.send_request(SucceedTask(end_date=datetime.datetime(2024, 1, 2)))
    assert conn.state is State.RUNNING and conn.pending == ()
    assert conn.send_request(GET_VAR)[0] == FIRST_REQUEST_ID


@pytest.mark.parametrize(
    "thing", [None, "GetVariable", {"type": "GetVariable", "key": "k"}, VAR_BODY]
)
def test_non_request_is_a_local_error(thing: Any) -> None:
    """Passing something that is not a request message raises LocalProtocolError, not AttributeError."""
    conn = running()
    with pytest.raises(LocalProtocolError):
        conn.send_request(thing)
    assert conn.state is State.RUNNING and conn.pending == ()


def test_inbound_message_is_not_a_request() -> None:
    """A message class the supervisor sends cannot be sent to it."""
    conn = running()
    with pytest.raises(LocalProtocolError):
        conn.send_request(VariableResult(key="k", value="v"))  # type: ignore[arg-type]


# -- the first frame ----------------------------------------------------------------------------


def test_nothing_is_sent_before_the_first_frame() -> None:
    """Any send before the supervisor's first frame is refused and leaves the connection waiting."""
    conn = CommConnection()
    for msg in (GET_VAR, SUCCEED):
        with pytest.raises(LocalProtocolError, match="first frame"):
            conn.send_request(msg)
    assert conn.state is State.AWAIT_FIRST and conn.pending == ()
    assert isinstance(feed_one(conn, f.startup()), Startup)
    assert conn.send_request(GET_VAR)[0] == FIRST_REQUEST_ID


def test_startup_details_starts_the_run() -> None:
    """[0, StartupDetails, nil] becomes a Startup event carrying the decoded details; state RUNNING."""
    conn = CommConnection()
    event = feed_one(conn, f.startup())
    assert isinstance(event, Startup)
    assert event.details.ti.id == f.ti_id and event.details.start_date == f.now
    assert conn.state is State.RUNNING


def test_parse_request_starts_a_parse() -> None:
    """[0, DagFileParseRequest, nil] becomes a ParseRequest event; state PARSING."""
    conn = CommConnection()
    event = feed_one(conn, f.parse_request())
    assert isinstance(event, ParseRequest) and event.request.file == "/bundle/etl.py"
    assert conn.state is State.PARSING


GOOD_FIRST = {
    "two elements": f.reply(0, f.startup_details_body(), arity=2),
    "four elements": f.reply(0, f.startup_details_body(), extra=["ignored"]),
    "unknown keys": f.startup(future_field={"x": 1}),
    "rfc 3339 date-times": f.startup(start_date="2024-01-02T03:04:05+00:00"),
}


@pytest.mark.parametrize("data", GOOD_FIRST.values(), ids=GOOD_FIRST.keys())
def test_first_frame_variants_accepted(data: bytes) -> None:
    """A first frame of 2 or 4 elements, with unknown keys or string date-times, still starts the run."""
    conn = CommConnection()
    assert isinstance(feed_one(conn, data), Startup)


BAD_FIRST = {
    "id 1": (f.startup(request_id=1), "has id 1"),
    "id -1": (f.startup(request_id=-1), "has id -1"),
    "id as str": (f.startup(request_id="0"), "frame id must be an integer"),
    "id as bool": (f.startup(request_id=False), "frame id must be an integer"),
    "id as float": (f.startup(request_id=0.0), "frame id must be an integer"),
    "id nil": (f.startup(request_id=None), "frame id must be an integer"),
    "error element": (f.startup(error=f.error_body()), "carries an error element"),
    "error element only": (f.reply(0, None, f.error_body()), "carries an error element"),
    "nil body": (f.reply(0), "expected a map"),
    "body a list": (f.reply(0, [1]), "expected a map"),
    "ErrorResponse body": (
        f.reply(0, f.error_body()),
        "expected StartupDetails or DagFileParseRequest",
    ),
    "a reply body": (f.reply(0, VAR_BODY), "is a VariableResult"),
    "unknown type": (f.reply(0, f.body("Hello")), "unknown message type 'Hello'"),
    "no type": (f.reply(0, {"ti": {}}), "unknown message type None"),
    "missing ti": (
        f.reply(0, {k: v for k, v in f.startup_details_body().items() if k != "ti"}),
        "'ti'",
    ),
    "empty ti.id": (f.startup(ti=f.task_instance(id="")), r"ti\.id: '' is not a UUID"),
    "try_number 0": (f.startup(ti=f.task_instance(try_number=0)), "try_number"),
    "naive-looking garbage date": (f.startup(start_date="yesterday"), "RFC 3339"),
    "map, not array": (f.frame(f.encode({"id": 0})), "must be an array"),
    "one element": (f.frame(f.encode([0])), "must be an array"),
    "nil frame": (f.frame(f.encode(None)), "must be an array"),
    "garbage msgpack": (f.frame(f.GARBAGE), "undecodable msgpack"),
    "trailing bytes": (f.frame(f.trailing_bytes_payload([0, None, None])), "trailing bytes"),
    "duplicate keys": (f.frame(f.raw_array(f.encode(0), f.duplicate_keys_payload())), "duplicate"),
    "zero-length frame": (f.zero_length(), "zero-length"),
}


@pytest.mark.parametrize(("data", "match"), BAD_FIRST.values(), ids=BAD_FIRST.keys())
def test_bad_first_frame(data: bytes, match: str) -> None:
    """A first frame that is not [0, StartupDetails|DagFileParseRequest, nil] is a RemoteProtocolError, for good."""
    conn = CommConnection()
    conn.receive_data(data)
    with pytest.raises(RemoteProtocolError, match=match) as first:
        conn.next_event()
    assert conn.state is State.ERROR
    conn.receive_data(f.startup())
    with pytest.raises(RemoteProtocolError) as again:
        conn.next_event()
    assert again.value is first.value
    with pytest.raises(LocalProtocolError):
        conn.send_request(GET_VAR)


# -- replies ----------------------------------------------------------------------------------


def test_replies_are_matched_by_id_in_any_order() -> None:
    """Each reply reaches the request with its id, whatever order the replies come in."""
    conn = running()
    keys = ["a", "b", "c"]
    ids = {conn.send_request(GetVariable(key=k))[0]: k for k in keys}
    assert conn.pending == tuple(ids)
    data = b"".join(
        f.reply(i, f.body("VariableResult", key=ids[i], value=ids[i] * 2)) for i in reversed(ids)
    )
    events = feed(conn, data)
    assert [e.request_id for e in events if isinstance(e, Reply)] == list(reversed(ids))
    for event in events:
        assert isinstance(event, Reply)
        body = event.result()
        assert isinstance(body, VariableResult)
        assert isinstance(event.request, GetVariable)
        assert body.key == event.request.key == ids[event.request_id]
        assert body.value == body.key * 2
    assert conn.pending == ()


@pytest.mark.parametrize(
    "kwargs", [{"arity": 2}, {"arity": 3}, {"extra": [None, "x", {"y": 1}]}], ids=str
)
def test_reply_arity(kwargs: dict[str, Any]) -> None:
    """Replies of 2 elements (no error element) and of more than 3 (extras ignored) are accepted."""
    conn = running()
    event = reply_to(conn, GET_VAR, VAR_BODY, **kwargs)
    assert event.problem is None and event.error is None
    assert isinstance(event.result(), VariableResult)


def test_empty_reply_where_none_is_expected() -> None:
    """[id, nil, nil] answers a request without a result: success, result() is None."""
    conn = running()
    event = reply_to(conn, PutVariable(key="k", value="v", description=None))
    assert event.problem is None and event.error is None
    assert event.result() is None


ERROR_CASES = [
    ("CONNECTION_NOT_FOUND", NotFound),
    ("VARIABLE_NOT_FOUND", NotFound),
    ("XCOM_NOT_FOUND", NotFound),
    ("ASSET_NOT_FOUND", NotFound),
    ("TASK_STORE_NOT_FOUND", NotFound),
    ("ASSET_STORE_NOT_FOUND", NotFound),
    ("PERMISSION_DENIED", PermissionDenied),
    ("DAGRUN_ALREADY_EXISTS", AlreadyExists),
    ("GENERIC_ERROR", SupervisorError),
    ("API_SERVER_ERROR", SupervisorError),
]


def test_error_cases_cover_the_error_table() -> None:
    """Every ErrorType with its own exception class is in the placement tests below."""
    assert {e for e, cls in ERROR_CASES if cls is not SupervisorError} == set(ERROR_CLASSES)


@pytest.mark.parametrize("in_body", [True, False], ids=["body", "error element"])
@pytest.mark.parametrize(("error", "cls"), ERROR_CASES)
def test_error_placements(error: str, cls: type[SupervisorError], in_body: bool) -> None:
    """An ErrorResponse as the body or as the error element raises the typed exception from result()."""
    conn = running()
    detail = {"status_code": 403, "key": "k"}
    frames = (f.error_body(error, detail), None) if in_body else (None, f.error_body(error, detail))
    event = reply_to(conn, GET_VAR, *frames)
    assert event.problem is None and event.error_in_body is in_body
    assert isinstance(event.error, ErrorResponse)
    with pytest.raises(cls) as info:
        event.result()
    assert type(info.value) is cls
    assert info.value.error == error and info.value.detail == detail
    assert info.value.in_body is in_body and info.value.status_code == 403
    assert conn.state is State.RUNNING


def test_observed_error_element() -> None:
    """The 404 error element observed from GetDagRun (Appendix B) surfaces as SupervisorError with its status."""
    conn = running()
    detail = {
        "status_code": 404,
        "message": "Server returned error",
        "detail": {"detail": {"reason": "not_found", "message": "DagRun not found"}},
    }
    event = reply_to(conn, GET_VAR, None, f.error_body("API_SERVER_ERROR", detail))
    with pytest.raises(SupervisorError) as info:
        event.result()
    assert info.value.status_code == 404 and not info.value.in_body


def test_error_element_wins_over_a_body() -> None:
    """When a reply carries both a body and an error element, the error is what result() reports."""
    conn = running()
    event = reply_to(conn, GET_VAR, VAR_BODY, f.error_body("VARIABLE_NOT_FOUND"))
    with pytest.raises(NotFound):
        event.result()


BAD_REPLIES = {
    "empty body where a result is expected": (
        (None,),
        "empty body where VariableResult was expected",
    ),
    "wrong body type": ((f.body("OKResponse", ok=True),), "got a OKResponse"),
    "unknown body type": ((f.body("Nonsense"),), "unknown message type 'Nonsense'"),
    "body missing a required key": ((f.body("VariableResult", value="v"),), "'key' is missing"),
    "body field of the wrong type": ((f.body("VariableResult", key=1),), "expected str"),
    "body not a map": (([1, 2],), "expected a map"),
    "error element not a map": ((None, "boom"), "error element: expected a map"),
    "error element with an error type that is not text": (
        (None, f.error_body(7)),
        r"error element\.error: expected one of",
    ),
}


@pytest.mark.parametrize("placement", ["body", "error element"])
def test_unknown_error_type_from_a_newer_supervisor_is_a_supervisor_error(placement: str) -> None:
    """An ErrorType this version does not know is still an error reply: SupervisorError, not a protocol error."""
    conn = running()
    request_id, _ = conn.send_request(GET_VAR)
    elements = (f.error_body("NEW_ERROR"), None)
    if placement == "error element":
        elements = elements[::-1]
    event = feed_one(conn, f.frame(f.raw_array(*(f.encode(e) for e in (request_id, *elements)))))
    assert isinstance(event, Reply) and event.problem is None
    with pytest.raises(SupervisorError) as info:
        event.result()
    assert type(info.value) is SupervisorError and info.value.error == "NEW_ERROR"


@pytest.mark.parametrize(("frames", "match"), BAD_REPLIES.values(), ids=BAD_REPLIES.keys())
def test_bad_reply_fails_only_its_request(frames: tuple[Any, ...], match: str) -> None:
    """A well-framed reply that does not fit its request sets Reply.problem; the connection stays usable."""
    conn = running()
    event = reply_to(conn, GET_VAR, *frames)
    assert isinstance(event.problem, RemoteProtocolError)
    assert event.body is None and event.error is None
    with pytest.raises(RemoteProtocolError, match=match):
        event.result()
    assert conn.state is State.RUNNING
    assert reply_to(conn, GET_VAR, VAR_BODY).problem is None


def test_reply_type_is_checked_per_request() -> None:
    """An OKResponse is the answer DeleteVariable expects, though GetVariable would refuse it."""
    conn = running()
    event = reply_to(conn, DeleteVariable(key="k"), f.body("OKResponse", ok=True))
    assert isinstance(event.result(), OKResponse)


def test_stray_reply() -> None:
    """A reply whose id is not pending is a StrayReply and changes nothing."""
    conn = running()
    request_id, _ = conn.send_request(GET_VAR)
    assert feed_one(conn, f.reply(request_id + 5, VAR_BODY)) == StrayReply(request_id + 5)
    assert feed_one(conn, f.reply(0, VAR_BODY)) == StrayReply(0)
    assert conn.state is State.RUNNING and conn.pending == (request_id,)
    assert isinstance(feed_one(conn, f.reply(request_id, VAR_BODY)), Reply)


def test_second_reply_to_the_same_id_is_stray() -> None:
    """An id is answered once; a repeat reply is a StrayReply."""
    conn = running()
    event = reply_to(conn, GET_VAR, VAR_BODY)
    assert feed_one(conn, f.reply(event.request_id, VAR_BODY)) == StrayReply(event.request_id)


def test_forget_makes_a_later_reply_stray() -> None:
    """After forget(id) the reply to id is a StrayReply and id is no longer pending."""
    conn = running()
    a, _ = conn.send_request(GET_VAR)
    b, _ = conn.send_request(GetConnection(conn_id="c"))
    conn.forget(a)
    conn.forget(12345)  # unknown ids are ignored
    assert conn.pending == (b,)
    assert feed_one(conn, f.reply(a, VAR_BODY)) == StrayReply(a)


def test_several_frames_in_one_chunk() -> None:
    """Frames that arrive together come out as events in order."""
    conn = CommConnection()
    conn.receive_data(f.startup())
    assert isinstance(conn.next_event(), Startup)
    a, _ = conn.send_request(GET_VAR)
    events = feed(conn, f.reply(a, VAR_BODY) + f.reply(99) + f.reply(a))
    assert [type(e) for e in events] == [Reply, StrayReply, StrayReply]


# -- the terminal rule ---------------------------------------------------------------------------


def test_terminal_request_then_nothing() -> None:
    """After the one terminal request nothing else may be sent, and a refusal changes nothing."""
    conn = running()
    early, _ = conn.send_request(GET_VAR)
    terminal, data = conn.send_request(SUCCEED)
    assert sent(data)[1]["type"] == "SucceedTask"
    assert conn.state is State.TERMINAL_SENT
    for msg in (GET_VAR, SUCCEED, TaskState(state="failed")):
        with pytest.raises(LocalProtocolError, match="terminal"):
            conn.send_request(msg)
    assert conn.state is State.TERMINAL_SENT and conn.pending == (early, terminal)


def test_late_reply_then_terminal_reply() -> None:
    """After the terminal request late replies still arrive; the terminal reply moves to DONE."""
    conn = running()
    early, _ = conn.send_request(GET_VAR)
    terminal, _ = conn.send_request(SUCCEED)
    late = feed_one(conn, f.reply(early, VAR_BODY))
    assert isinstance(late, Reply) and late.result() is not None
    assert conn.state is State.TERMINAL_SENT
    last = feed_one(conn, f.reply(terminal))
    assert isinstance(last, Reply) and last.request is SUCCEED and last.result() is None
    assert conn.state is State.DONE
    with pytest.raises(LocalProtocolError, match="over"):
        conn.send_request(GET_VAR)


def test_terminal_reply_with_an_error_element_still_ends() -> None:
    """A terminal request answered with an error element (API call failed, §6.1) still moves to DONE."""
    conn = running()
    terminal, _ = conn.send_request(SUCCEED)
    event = feed_one(
        conn, f.reply(terminal, None, f.error_body("API_SERVER_ERROR", {"status_code": 422}))
    )
    assert isinstance(event, Reply)
    with pytest.raises(SupervisorError):
        event.result()
    assert conn.state is State.DONE


@pytest.mark.parametrize("again", ["stray id", "terminal id", "id 0", "garbage"])
def test_frame_after_done(again: str) -> None:
    """Once the terminal reply is in, any further frame is a RemoteProtocolError and the connection is broken."""
    conn = running()
    terminal, _ = conn.send_request(SUCCEED)
    feed_one(conn, f.reply(terminal))
    data = {
        "stray id": f.reply(77),
        "terminal id": f.reply(terminal),
        "id 0": f.startup(),
        "garbage": f.frame(f.GARBAGE),
    }[again]
    conn.receive_data(data)
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    assert conn.state is State.ERROR


def test_eof_after_done_is_clean() -> None:
    """EOF after the terminal reply is the normal end: Closed with nothing pending."""
    conn = running()
    terminal, _ = conn.send_request(SUCCEED)
    feed_one(conn, f.reply(terminal))
    assert feed_one(conn, b"") == Closed(())
    assert conn.state is State.CLOSED


def test_forgotten_terminal_reply_is_stray() -> None:
    """If we stopped waiting for the terminal reply, it arrives as a StrayReply and the state stays TERMINAL_SENT."""
    conn = running()
    terminal, _ = conn.send_request(SUCCEED)
    conn.forget(terminal)
    assert feed_one(conn, f.reply(terminal)) == StrayReply(terminal)
    assert conn.state is State.TERMINAL_SENT


# -- the parse workload -------------------------------------------------------------------------


def _parse_result() -> DagFileParsingResult:
    return DagFileParsingResult(fileloc="/bundle/etl.py", serialized_dags=[])


def test_parse_may_read_variables_then_send_one_result() -> None:
    """While parsing, ordinary requests flow; one DagFileParsingResult ends it; its ack moves to DONE."""
    conn = parsing()
    assert reply_to(conn, GET_VAR, VAR_BODY).problem is None
    assert conn.state is State.PARSING
    with pytest.raises(LocalProtocolError, match="DagFileParsingResult"):
        conn.send_request(SUCCEED)
    result_id, data = conn.send_request(_parse_result())
    assert sent(data)[1]["type"] == "DagFileParsingResult"
    assert conn.state is State.TERMINAL_SENT
    with pytest.raises(LocalProtocolError):
        conn.send_request(_parse_result())
    assert isinstance(feed_one(conn, f.reply(result_id)), Reply)
    assert conn.state is State.DONE


def test_parse_result_is_refused_while_running() -> None:
    """A DagFileParsingResult cannot be sent while running a task."""
    conn = running()
    with pytest.raises(LocalProtocolError, match="DagFileParseRequest"):
        conn.send_request(_parse_result())
    assert conn.state is State.RUNNING


# -- EOF and broken streams --------------------------------------------------------------------


def test_eof_lists_pending_ids() -> None:
    """EOF becomes Closed naming every request still waiting, in send order."""
    conn = running()
    ids = [conn.send_request(GET_VAR)[0] for _ in range(3)]
    feed_one(conn, f.reply(ids[1], VAR_BODY))
    assert feed_one(conn, b"") == Closed((ids[0], ids[2]))
    assert conn.state is State.CLOSED
    with pytest.raises(LocalProtocolError, match="closed"):
        conn.send_request(GET_VAR)


def test_eof_before_the_first_frame() -> None:
    """EOF before anything arrived is Closed with nothing pending."""
    conn = CommConnection()
    assert feed_one(conn, b"") == Closed(())
    assert conn.state is State.CLOSED


def test_eof_inside_a_frame_is_a_remote_error() -> None:
    """EOF in the middle of a reply frame is a RemoteProtocolError, not a clean close."""
    conn = running()
    request_id, _ = conn.send_request(GET_VAR)
    conn.receive_data(f.truncated(f.reply(request_id, VAR_BODY), -3))
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="closed inside"):
        conn.next_event()
    assert conn.state is State.ERROR


def test_broken_frame_is_sticky_even_with_good_frames_behind_it() -> None:
    """After an undecodable frame, later good frames are not delivered: every call raises the first error."""
    conn = running()
    request_id, _ = conn.send_request(GET_VAR)
    conn.receive_data(f.frame(f.GARBAGE) + f.reply(request_id, VAR_BODY) + f.reply(999))
    with pytest.raises(RemoteProtocolError) as first:
        conn.next_event()
    for _ in range(3):
        with pytest.raises(RemoteProtocolError) as again:
            conn.next_event()
        assert again.value is first.value
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError) as at_eof:
        conn.next_event()
    assert at_eof.value is first.value
    assert conn.pending == (request_id,)


def test_oversize_reply_uses_the_connection_limit() -> None:
    """The connection's max_frame_size is the decoder's: one byte more is a RemoteProtocolError."""
    conn = CommConnection(max_frame_size=100)
    assert conn.max_frame_size == 100
    conn.receive_data(f.oversize_prefix(100))
    with pytest.raises(RemoteProtocolError, match="more than the limit of 100"):
        conn.next_event()


DEEP = f.deep_nesting_payload(990)  # deep enough to break repr(), within msgpack's own limit

HOSTILE = {
    "deep frame": f.frame(DEEP),
    "deep id": f.frame(f.raw_array(DEEP, f.encode(None), f.encode(None))),
    "deep error element on the first frame": f.frame(
        f.raw_array(f.encode(0), f.encode(f.startup_details_body()), DEEP)
    ),
    "huge string frame": f.frame(f.encode("x" * 1_000_000)),
}


@pytest.mark.parametrize("data", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_frames_give_short_remote_errors(data: bytes) -> None:
    """Deeply nested or huge values in a bad frame give a RemoteProtocolError with a short message."""
    conn = CommConnection()
    conn.receive_data(data)
    with pytest.raises(RemoteProtocolError) as info:
        conn.next_event()
    assert len(str(info.value)) < 300


def test_deep_type_tag_gives_a_remote_error() -> None:
    """A first frame whose type tag is a deeply nested list is a RemoteProtocolError, not RecursionError."""
    conn = CommConnection()
    conn.receive_data(f.frame(f.raw_array(f.encode(0), f.raw_map((f.encode("type"), DEEP)))))
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


def test_deep_enum_value_fails_only_its_request() -> None:
    """An ErrorResponse whose error field is a deeply nested list fails only its request."""
    conn = running()
    request_id, _ = conn.send_request(GET_VAR)
    body = f.raw_map((f.encode("error"), DEEP), (f.encode("type"), f.encode("ErrorResponse")))
    event = feed_one(conn, f.frame(f.raw_array(f.encode(request_id), body, f.encode(None))))
    assert isinstance(event, Reply) and isinstance(event.problem, RemoteProtocolError)
