"""Our bytes against msgspec, the library the 1.3.2 supervisor reads and writes frames with.

Outbound, our frames go through the supervisor's own reader
(``length_prefixed_frame_reader`` and its typed ``_RequestFrame`` decoder) and through
plain ``msgspec.msgpack.decode``. Inbound, frames are written by the supervisor's own
``send_msg`` (python-mode dump, ``_ResponseFrame``) and read by our codec and
:class:`CommConnection`. This is the cross-implementation check of h11's
``test_against_stdlib_http.py``: a codec tested only against itself proves little.
"""

from __future__ import annotations

import datetime
import socket
import uuid
from typing import Any

import msgspec
import pydantic
import pytest
from airflow.sdk.api.datamodels import _generated as api
from airflow.sdk.execution_time import comms as real
from airflow.sdk.execution_time.supervisor import WatchedSubprocess, length_prefixed_frame_reader
from hypothesis import given
from hypothesis import strategies as st

from trio_coord.errors import NotFound, SupervisorError
from trio_coord.protocol import codec, messages
from trio_coord.protocol.connection import CommConnection, Reply, Startup
from trio_coord.protocol.framing import NEED_DATA

UTC = datetime.UTC
SCHEMA_VERSION = "2026-06-16"
TI_ID = uuid.UUID("0190d8a2-7b1c-7e3f-8a5b-1c2d3e4f5a6b")

#: (instant, its msgpack bytes) for the three timestamp widths (protocol.md Appendix B).
TIMESTAMPS = [
    pytest.param(datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "d6ff65937d25", id="32-bit"),
    pytest.param(
        datetime.datetime(2024, 1, 2, 3, 4, 5, 1, tzinfo=UTC), "d7ff00000fa065937d25", id="64-bit"
    ),
    pytest.param(
        datetime.datetime(1960, 1, 1, tzinfo=UTC),
        "c70cff00000000ffffffffed300880",
        id="96-bit-past",
    ),
    pytest.param(
        datetime.datetime(2600, 1, 1, tzinfo=UTC),
        "c70cff0000000000000004a0fe7280",
        id="96-bit-future",
    ),
]


# -- the supervisor's two ends, driven directly -----------------------------------------


class _SupervisorStub:
    """Just what ``WatchedSubprocess.send_msg`` touches: a socket and a schema version."""

    def __init__(self, schema_version: str | None) -> None:
        self._subprocess_schema_version = schema_version
        self.stdin = self
        self.written = bytearray()

    def sendall(self, data: bytes) -> None:
        self.written += data

    def _serialize_response(self, msg: pydantic.BaseModel, **dump_opts: Any) -> dict[str, Any]:
        return WatchedSubprocess._serialize_response(self, msg, **dump_opts)  # type: ignore[arg-type]


def supervisor_sends(
    body: pydantic.BaseModel | None,
    request_id: int,
    *,
    error: real.ErrorResponse | None = None,
    schema_version: str | None = SCHEMA_VERSION,
    **dump_opts: bool,
) -> bytes:
    """The bytes the real ``send_msg`` writes for one response frame."""
    stub = _SupervisorStub(schema_version)
    WatchedSubprocess.send_msg(stub, body, request_id, error, **dump_opts)  # type: ignore[arg-type]
    return bytes(stub.written)


def supervisor_reads(data: bytes) -> list[real._RequestFrame]:
    """Every request frame the real ``length_prefixed_frame_reader`` decodes from ``data``."""
    frames: list[real._RequestFrame] = []

    def handler() -> Any:
        while True:
            frames.append((yield))

    ours, theirs = socket.socketpair()
    with ours, theirs:
        read, _on_close = length_prefixed_frame_reader(handler(), on_close=lambda _sock: None)
        ours.sendall(data)
        ours.shutdown(socket.SHUT_WR)
        while read(theirs):
            pass
    return frames


def startup_details() -> real.StartupDetails:
    run = api.DagRun(
        dag_id="etl",
        run_id="manual__1",
        logical_date=None,
        data_interval_start=None,
        data_interval_end=None,
        run_after=datetime.datetime(2024, 1, 2, 3, 4, 5, 1, tzinfo=UTC),
        start_date=datetime.datetime(1960, 1, 1, tzinfo=UTC),
        end_date=None,
        run_type=api.DagRunType.MANUAL,
        state=api.DagRunState.RUNNING,
        consumed_asset_events=[],
        partition_key=None,
    )
    return real.StartupDetails(
        ti=api.TaskInstance(
            id=TI_ID,
            task_id="t",
            dag_id="etl",
            run_id="manual__1",
            try_number=1,
            dag_version_id=uuid.UUID(int=1),
        ),
        dag_rel_path="etl.py",
        bundle_info=api.BundleInfo(name="b"),
        start_date=datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        ti_context=api.TIRunContext(dag_run=run, max_tries=0),
        sentry_integration="",
    )


def started() -> CommConnection:
    """A connection that has received the supervisor's real StartupDetails frame."""
    conn = CommConnection()
    conn.receive_data(supervisor_sends(startup_details(), 0))
    assert isinstance(conn.next_event(), Startup)
    return conn


def reply_to(conn: CommConnection, frame: bytes) -> Reply:
    conn.receive_data(frame)
    event = conn.next_event()
    assert isinstance(event, Reply)
    return event


def length_prefixed(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


# == runtime -> supervisor ================================================================


def test_get_variable_frame_is_the_appendix_b_example() -> None:
    """GetVariable "myvar" on id 1 is 30 bytes, [1, {key, type}], readable by plain msgspec."""
    request_id, data = started().send_request(messages.GetVariable(key="myvar"))
    assert request_id == 1
    assert data[:4] == bytes.fromhex("0000001e")
    assert data[4:6] == bytes.fromhex("9201")  # a 2-element array, id 1
    assert msgspec.msgpack.decode(data[4:]) == [1, {"key": "myvar", "type": "GetVariable"}]


def test_frames_pass_the_supervisors_reader_back_to_back() -> None:
    """Several of our frames in one byte stream come out of the real reader in order."""
    conn = started()
    sent = [
        messages.GetConnection(conn_id="db"),
        messages.SetXCom(key="k", value={"a": [1, None]}, dag_id="d", run_id="r", task_id="t"),
        messages.SucceedTask(end_date=datetime.datetime(2024, 1, 2, tzinfo=UTC)),
    ]
    frames = [conn.send_request(m) for m in sent]
    received = supervisor_reads(b"".join(data for _id, data in frames))
    assert [(f.id, f.body, f.context_carrier) for f in received] == [
        (request_id, messages.encode_body(m), None)
        for (request_id, _data), m in zip(frames, sent, strict=True)
    ]


def test_trace_carrier_is_the_third_element() -> None:
    """A W3C carrier reaches the supervisor's typed decoder as context_carrier."""
    carrier = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    _id, data = started().send_request(messages.GetVariable(key="k"), carrier=carrier)
    (frame,) = supervisor_reads(data)
    assert frame.context_carrier == carrier
    assert len(msgspec.msgpack.decode(data[4:])) == 3


@pytest.mark.parametrize(("instant", "encoded"), TIMESTAMPS)
def test_datetimes_go_out_in_every_timestamp_width(
    instant: datetime.datetime, encoded: str
) -> None:
    """Our codec writes each instant exactly as msgspec does, and msgspec reads it back."""
    assert codec.packb(instant).hex() == encoded == msgspec.msgpack.encode(instant).hex()
    _id, data = started().send_request(
        messages.RescheduleTask(reschedule_date=instant, end_date=instant)
    )
    assert bytes.fromhex(encoded) in data
    (frame,) = supervisor_reads(data)
    assert frame.body is not None
    assert frame.body["reschedule_date"] == instant
    assert frame.body["reschedule_date"].tzinfo is not None


def test_offset_datetimes_arrive_as_the_same_instant() -> None:
    """A datetime with a non-UTC offset is sent as its instant; the offset is not carried."""
    local = datetime.datetime(
        2024, 6, 1, 12, tzinfo=datetime.timezone(datetime.timedelta(hours=-5))
    )
    _id, data = started().send_request(messages.TaskState(state="failed", end_date=local))
    (frame,) = supervisor_reads(data)
    assert frame.body is not None
    assert frame.body["end_date"] == local
    assert frame.body["end_date"].utcoffset() == datetime.timedelta(0)


def test_uuids_go_out_as_canonical_strings() -> None:
    """A ti_id given as UUID or upper-case text leaves as the canonical string pydantic parses."""
    conn = started()
    for given_id in (TI_ID, str(TI_ID).upper()):
        _id, data = conn.send_request(messages.GetTaskStateStore(ti_id=given_id, key="k"))  # type: ignore[arg-type]
        (frame,) = supervisor_reads(data)
        assert frame.body is not None
        assert frame.body["ti_id"] == str(TI_ID)
        assert pydantic.TypeAdapter(real.ToSupervisor).validate_python(frame.body).ti_id == TI_ID


def test_none_fields_go_out_as_explicit_nil() -> None:
    """Null fields are present as nil, not omitted (PutVariable needs both keys, §5.1)."""
    _id, data = started().send_request(messages.PutVariable(key="k", value=None, description=None))
    assert msgspec.msgpack.decode(data[4:])[1] == {
        "key": "k",
        "value": None,
        "description": None,
        "type": "PutVariable",
    }


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def same_json(a: Any, b: Any) -> bool:
    """Equality that also tells True from 1 and 1.0 from 1, as msgpack does."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@given(value=_JSON)
def test_any_json_value_we_send_is_what_msgspec_reads(value: Any) -> None:
    """Every JSON value our encoder accepts is decoded by msgspec to an equal value."""
    msg = messages.SetXCom(key="k", value=value, dag_id="d", run_id="r", task_id="t")
    _id, data = started().send_request(msg)
    (frame,) = supervisor_reads(data)
    assert frame.body is not None
    assert same_json(frame.body["value"], value)


# == supervisor -> runtime ================================================================


def test_startup_details_frame_decodes_byte_by_byte() -> None:
    """The real first frame, fed one byte at a time, becomes one Startup with the same values."""
    data = supervisor_sends(startup_details(), 0)
    assert data[4:7] == bytes.fromhex("930087")  # [0, {7 keys}, nil] (§3.2)
    conn = CommConnection()
    for i in range(len(data) - 1):
        conn.receive_data(data[i : i + 1])
        assert conn.next_event() is NEED_DATA
    conn.receive_data(data[-1:])
    event = conn.next_event()
    assert isinstance(event, Startup)
    details = event.details
    assert details.ti.id == str(TI_ID)
    assert details.ti.dag_version_id == str(uuid.UUID(int=1))
    assert details.ti_context.dag_run.run_after == datetime.datetime(
        2024, 1, 2, 3, 4, 5, 1, tzinfo=UTC
    )
    assert details.ti_context.dag_run.start_date == datetime.datetime(1960, 1, 1, tzinfo=UTC)
    assert details.ti_context.dag_run.logical_date is None
    assert details.ti.map_index == -1
    assert details.ti.hostname is None


@pytest.mark.parametrize(("instant", "encoded"), TIMESTAMPS)
def test_datetimes_come_in_from_every_timestamp_width(
    instant: datetime.datetime, encoded: str
) -> None:
    """A supervisor timestamp of each width decodes to the same aware UTC datetime."""
    conn = started()
    request_id, _data = conn.send_request(messages.GetTaskRescheduleStartDate(ti_id=str(TI_ID)))
    frame = supervisor_sends(real.TaskRescheduleStartDate(start_date=instant), request_id)
    assert bytes.fromhex(encoded) in frame
    body = reply_to(conn, frame).result()
    assert isinstance(body, messages.TaskRescheduleStartDate)
    assert body.start_date == instant
    assert body.start_date is not None and body.start_date.tzinfo == UTC


def test_empty_reply_is_the_observed_three_nils() -> None:
    """send_msg(None) writes [id, nil, nil] (93 05 c0 c0), which completes a request with no body."""
    conn = started()
    ids = [
        conn.send_request(messages.SetRenderedMapIndex(rendered_map_index=f"m{i}"))[0]
        for i in range(5)
    ]
    frame = supervisor_sends(None, ids[-1])
    assert frame == bytes.fromhex("000000049305c0c0")
    reply = reply_to(conn, frame)
    assert (reply.request_id, reply.body, reply.error, reply.problem) == (5, None, None, None)


@pytest.mark.parametrize(
    "elements",
    [
        pytest.param(lambda body: [1, body], id="2-element"),
        pytest.param(lambda body: [1, body, None], id="3-element"),
        pytest.param(lambda body: [1, body, None, "future"], id="4-element"),
    ],
)
def test_reply_arrays_of_two_or_more_elements_are_accepted(elements: Any) -> None:
    """A reply without the error element, or with extra trailing ones, is read as [id, body, nil]."""
    conn = started()
    conn.send_request(messages.GetVariable(key="k"))
    body = real.VariableResult.from_variable_response(api.VariableResponse(key="k", value=None))
    frame = length_prefixed(msgspec.msgpack.encode(elements(body.model_dump(exclude_unset=True))))
    result = reply_to(conn, frame).result()
    assert result == messages.VariableResult(key="k", value=None)


def test_error_element_becomes_a_supervisor_error() -> None:
    """An ErrorResponse in the error element (the handler raised) surfaces as SupervisorError."""
    conn = started()
    request_id, _data = conn.send_request(messages.GetDagRun(dag_id="d", run_id="r"))
    error = real.ErrorResponse(
        error=real.ErrorType.API_SERVER_ERROR,
        detail={"status_code": 404, "message": "Server returned error", "detail": {"detail": None}},
    )
    frame = supervisor_sends(None, request_id, error=error)
    assert msgspec.msgpack.decode(frame[4:])[1] is None
    reply = reply_to(conn, frame)
    assert reply.error is not None and not reply.error_in_body
    assert reply.error.detail == {
        "status_code": 404,
        "message": "Server returned error",
        "detail": {"detail": None},
    }
    with pytest.raises(SupervisorError):
        reply.result()


def test_error_body_becomes_not_found() -> None:
    """An ErrorResponse as the body (an expected negative answer) surfaces as NotFound."""
    conn = started()
    request_id, _data = conn.send_request(messages.GetConnection(conn_id="missing"))
    body = real.ErrorResponse(
        error=real.ErrorType.CONNECTION_NOT_FOUND, detail={"conn_id": "missing"}
    )
    reply = reply_to(conn, supervisor_sends(body, request_id))
    assert reply.error_in_body
    with pytest.raises(NotFound):
        reply.result()


def test_uuids_and_nils_come_in_as_strings_and_none() -> None:
    """A UUID from the supervisor is its canonical string; nil list items and values stay None."""
    conn = started()
    request_id, _data = conn.send_request(
        messages.CreateHITLDetailPayload(ti_id=str(TI_ID), options=["a"], subject="s")
    )
    hitl = api.HITLDetailRequest(
        ti_id=TI_ID, options=["a", "b"], subject="s", params={"x": [None, 1]}
    )
    frame = supervisor_sends(
        real.HITLDetailRequestResult.from_api_response(hitl), request_id, exclude_unset=True
    )
    body = reply_to(conn, frame).result()
    assert isinstance(body, messages.HITLDetailRequestResult)
    assert body.ti_id == str(TI_ID)
    assert body.params == {"x": [None, 1]}
    assert body.body is None


@given(value=_JSON)
def test_any_json_value_msgspec_writes_is_what_we_read(value: Any) -> None:
    """Every JSON value the supervisor can put in an XComResult decodes to an equal value."""
    conn = started()
    request_id, _data = conn.send_request(
        messages.GetXCom(key="k", dag_id="d", run_id="r", task_id="t")
    )
    body = real.XComResult.from_xcom_response(api.XComResponse(key="k", value=value))
    frame = supervisor_sends(body, request_id, exclude_unset=True)
    result = reply_to(conn, frame).result()
    assert isinstance(result, messages.XComResult)
    assert same_json(result.value, value)


def test_json_mode_datetimes_are_accepted_too() -> None:
    """A supervisor that downgrades to JSON mode sends RFC 3339 strings; they decode to the same instant."""
    conn = started()
    request_id, _data = conn.send_request(messages.GetTaskRescheduleStartDate(ti_id=str(TI_ID)))
    instant = datetime.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    body = real.TaskRescheduleStartDate(start_date=instant).model_dump(mode="json")
    assert isinstance(body["start_date"], str)
    frame = length_prefixed(msgspec.msgpack.encode([request_id, body, None]))
    result = reply_to(conn, frame).result()
    assert isinstance(result, messages.TaskRescheduleStartDate)
    assert result.start_date == instant
