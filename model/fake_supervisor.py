"""A fake supervisor that speaks like the real one: msgspec on the comm channel, JSON lines
read from the logs channel.

Theory of operation
-------------------
The real 1.3.2 supervisor dumps pydantic models in python mode and encodes them with
msgspec (protocol.md §3.4): every field present (``None`` as nil), aware date-times as
the timestamp extension, responses always as 3-element arrays. :class:`Wire` builds
exactly those bytes, and the bodies the model asks for (:meth:`Wire.answer_frame`);
nothing here is built with the msgpack library the runtime decodes with, so an
agreement between the two proves something.

:class:`FakeSupervisor` sits on the supervisor's ends of two Trio streams. Two reader
tasks collect what the runtime writes: request frames (decoded with msgspec, checked
with :func:`model.protocol_model.check_request`) and log lines (judged with
:func:`model.protocol_model.judge_log_line`). The machine decides everything else and
calls :meth:`send`, :meth:`close_comm`, :meth:`close_logs`. It never answers on its own.
"""

from __future__ import annotations

import datetime
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
import trio

from .protocol_model import (
    SUCCESS_BODY,
    Answer,
    AnswerKind,
    FirstFrame,
    LogVerdict,
    check_request,
    judge_log_line,
)

__all__ = ["BROKEN_STARTUP", "Wire", "FakeSupervisor", "SeenRequest", "SeenLog", "frame"]

_UTC = datetime.UTC
_ENCODER: Final = msgspec.msgpack.Encoder()


def frame(payload: bytes) -> bytes:
    """Prefix ``payload`` with its 4-byte big-endian length (§3.1)."""
    return struct.pack(">I", len(payload)) + payload


def encode(obj: Any) -> bytes:
    """msgspec, as the supervisor encodes: aware datetimes become timestamp extensions."""
    return _ENCODER.encode(obj)


def _set(path: tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(body: dict[str, Any]) -> None:
        for key in path[:-1]:
            body = body[key]
        body[path[-1]] = value

    return apply


def _drop(path: tuple[str, ...]) -> Callable[[dict[str, Any]], None]:
    def apply(body: dict[str, Any]) -> None:
        for key in path[:-1]:
            body = body[key]
        del body[path[-1]]

    return apply


#: Ways a ``StartupDetails`` body is broken so that the real 1.3.2 model refuses it (§4.1):
#: name -> (the field an error record must name, the edit). Each is a field the real
#: runner reads before it runs anything.
BROKEN_STARTUP: Final[dict[str, tuple[str, Callable[[dict[str, Any]], None]]]] = {
    "empty dag_id": ("dag_id", _set(("ti", "dag_id"), "")),
    "ti.id not a UUID": ("ti.id", _set(("ti", "id"), "not-a-uuid")),
    "naive dag_run.start_date": (
        "dag_run.start_date",
        _set(("ti_context", "dag_run", "start_date"), "2026-06-16T12:00:00"),
    ),
    "try_number a string": ("ti.try_number", _set(("ti", "try_number"), "1")),
    "ti.task_id missing": ("task_id", _drop(("ti", "task_id"))),
}


@dataclass(frozen=True)
class Wire:
    """The try the fake supervisor runs, and the frames it writes for it."""

    dag_id: str = "model_dag"
    task_id: str = "scripted"
    run_id: str = "model-run"
    ti_id: str = "0190a2e4-0000-7000-8000-00000000a001"
    try_number: int = 1
    #: ``ti.map_index``: -1 for an unmapped task (§4.1).
    map_index: int = -1
    should_retry: bool = False
    xcom_keys_to_clear: tuple[str, ...] = ()
    #: A resumed try (§9.7): ``ti_context.next_method`` / ``next_kwargs``.
    next_method: str | None = None
    next_kwargs: dict[str, Any] | None = None
    task_reschedule_count: int = 0
    #: ``ti.context_carrier``: the W3C carrier of the span the try belongs to (§3.6), or None.
    context_carrier: dict[str, str] | None = None
    now: datetime.datetime = datetime.datetime(2026, 6, 16, 12, 0, 0, tzinfo=_UTC)

    # -- the first frame (§4.1) ---------------------------------------------------------

    def startup_body(
        self, *, task_id: str | None = None, dag_id: str | None = None
    ) -> dict[str, Any]:
        """A ``StartupDetails`` body with every key, in the observed order."""
        dag_id = self.dag_id if dag_id is None else dag_id
        run = {
            "dag_id": dag_id,
            "run_id": self.run_id,
            "logical_date": self.now,
            "data_interval_start": self.now,
            "data_interval_end": self.now,
            "run_after": self.now,
            "start_date": self.now,
            "end_date": None,
            "clear_number": 0,
            "run_type": "manual",
            "state": "running",
            "conf": {},
            "triggering_user_name": None,
            "consumed_asset_events": [],
            "partition_key": None,
            "partition_date": None,
            "note": None,
            "team_name": None,
        }
        return {
            "ti": {
                "id": self.ti_id,
                "task_id": self.task_id if task_id is None else task_id,
                "dag_id": dag_id,
                "run_id": self.run_id,
                "try_number": self.try_number,
                "dag_version_id": "0190a2e4-0000-7000-8000-00000000b001",
                "map_index": self.map_index,
                "hostname": None,
                "context_carrier": self.context_carrier,
                "queue": "trio-coord",
            },
            "dag_rel_path": "model_bundle.py",
            "bundle_info": {"name": "model", "version": None},
            "start_date": self.now,
            "ti_context": {
                "dag_run": run,
                "task_reschedule_count": self.task_reschedule_count,
                "max_tries": 1,
                "variables": [],
                "connections": [],
                "next_method": self.next_method,
                "next_kwargs": self.next_kwargs,
                "xcom_keys_to_clear": list(self.xcom_keys_to_clear),
                "should_retry": self.should_retry,
                "start_date": None,
            },
            "sentry_integration": "",
            "type": "StartupDetails",
        }

    def first_frame(self, kind: FirstFrame, broken: str = "empty dag_id") -> bytes | None:
        """The bytes of the supervisor's first frame of ``kind`` (None for EOF).

        ``broken`` names the ``BROKEN_STARTUP`` edit an ``INVALID_STARTUP`` frame has.
        """
        if kind is FirstFrame.EOF:
            return None
        if kind is FirstFrame.STARTUP:
            body: Any = self.startup_body()
        elif kind is FirstFrame.UNKNOWN_TASK:
            body = self.startup_body(task_id="no_such_task")
        elif kind is FirstFrame.INVALID_STARTUP:
            body = self.startup_body()
            BROKEN_STARTUP[broken][1](body)
        elif kind is FirstFrame.OTHER_TYPE:
            body = {"ok": True, "type": "OKResponse"}
        else:
            return frame(encode([0, None, _error_map("GENERIC_ERROR")]))
        return frame(encode([0, body, None]))

    # -- replies (§3.7, §5) -------------------------------------------------------------

    def result_body(self, request_type: str, request: dict[str, Any]) -> dict[str, Any] | None:
        """The success body the catalogue names for ``request_type`` (None: empty reply)."""
        kind = SUCCESS_BODY[request_type]
        if kind is None:
            return None
        if kind == "VariableResult":
            return {
                "key": request.get("key"),
                "value": f"value-of-{request.get('key')}",
                "type": kind,
            }
        if kind == "ConnectionResult":
            return {
                "conn_id": request.get("conn_id"),
                "conn_type": "http",
                "host": "example.invalid",
                "schema": None,
                "login": "user",
                "password": "model-password-1",
                "port": 443,
                "extra": '{"a": 1}',
                "type": kind,
            }
        if kind == "XComResult":
            return {"key": request.get("key"), "value": {"pulled": [1, "two", None]}, "type": kind}
        if kind == "OKResponse":
            return {"ok": True, "type": kind}
        built = self._other_result(kind, request)
        if built is not None:
            return {**built, "type": kind}
        raise KeyError(f"the fake supervisor does not build {kind} bodies")

    def _dag_run(self) -> dict[str, Any]:
        run = self.startup_body()["ti_context"]["dag_run"]
        return dict(run)

    def _asset(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request.get("name") or "model_asset"
        uri = request.get("uri") or f"s3://bucket/{name}"
        return {"name": name, "uri": uri, "group": "asset", "extra": {}}

    def _other_result(self, kind: str, request: dict[str, Any]) -> dict[str, Any] | None:
        """The success bodies of the catalogue's other results (§5.1-§5.6), each with the
        keys the spec marks required and plausible values."""
        now = self.now
        bodies: dict[str, Any] = {
            "VariableKeysResult": lambda: {"keys": ["a", "b"], "total_entries": 2},
            "XComCountResponse": lambda: {"len": 3},
            "XComSequenceIndexResult": lambda: {"root": {"item": 1}},
            "XComSequenceSliceResult": lambda: {"root": [1, "two", None]},
            "TaskStateStoreResult": lambda: {"value": {"stored": 1}},
            "AssetStateStoreResult": lambda: {"value": [1, 2]},
            "AssetResult": lambda: self._asset(request),
            "AssetsByAliasResult": lambda: {"assets": [self._asset({})]},
            "AssetEventsResult": lambda: {"asset_events": []},
            "InactiveAssetsResult": lambda: {"inactive_assets": []},
            "DagResult": lambda: {
                "dag_id": request.get("dag_id"),
                "is_paused": False,
                "bundle_name": "model",
                "bundle_version": None,
                "relative_fileloc": "model_bundle.py",
                "owners": "airflow",
                "tags": ["t"],
                "next_dagrun": now,
            },
            "DagRunResult": self._dag_run,
            "DagRunStateResult": lambda: {"state": "running"},
            "DRCount": lambda: {"count": 2},
            "PreviousDagRunResult": lambda: {"dag_run": self._dag_run()},
            "PrevSuccessfulDagRunResult": lambda: {
                "data_interval_start": now,
                "data_interval_end": now,
                "start_date": now,
                "end_date": None,
            },
            "PreviousTIResult": lambda: {"task_instance": None},
            "TaskRescheduleStartDate": lambda: {"start_date": now},
            "TICount": lambda: {"count": 4},
            "TaskStatesResult": lambda: {"task_states": {self.run_id: {"t": "success"}}},
            "TaskBreadcrumbsResult": lambda: {"breadcrumbs": [{"task_id": "t", "state": None}]},
            "HITLDetailRequestResult": lambda: {
                k: request[k]
                for k in (
                    "ti_id", "options", "subject", "body", "defaults", "multiple", "params",
                    "assigned_users",
                )
                if k in request
            },
        }  # fmt: skip
        make = bodies.get(kind)
        return None if make is None else make()

    def answer_frame(
        self, request_id: int, request_type: str, request: dict[str, Any], answer: Answer
    ) -> bytes:
        """The frame answering ``request_id`` as ``answer`` says, always 3 elements (§3.2)."""
        if answer.kind is AnswerKind.RESULT:
            msg: list[Any] = [request_id, self.result_body(request_type, request), None]
        elif answer.kind is AnswerKind.EMPTY:
            msg = [request_id, None, None]
        elif answer.kind is AnswerKind.ERROR_BODY:
            msg = [request_id, _error_map(answer.error, request), None]
        elif answer.kind is AnswerKind.ERROR_ELEMENT:
            msg = [request_id, None, _error_map(answer.error, request)]
        else:  # WRONG_BODY: a well-formed frame, but not what this request gets back
            wrong = "OKResponse" if SUCCESS_BODY[request_type] != "OKResponse" else "XComResult"
            body = {"ok": True, "type": wrong} if wrong == "OKResponse" else {"type": wrong}
            msg = [request_id, body, None]
        return frame(encode(msg))


def _error_map(error: str, request: dict[str, Any] | None = None) -> dict[str, Any]:
    request = request or {}
    if error == "API_SERVER_ERROR":
        detail: Any = {"status_code": 500, "message": "Server returned error", "detail": None}
    elif error == "VARIABLE_NOT_FOUND":
        detail = {"key": request.get("key")}
    elif error == "CONNECTION_NOT_FOUND":
        detail = {"conn_id": request.get("conn_id")}
    elif error == "PERMISSION_DENIED":
        detail = {"key": request.get("key", request.get("conn_id")), "status_code": 403}
    else:
        detail = None
    return {"error": error, "detail": detail, "type": "ErrorResponse"}


@dataclass
class SeenRequest:
    """One frame the runtime wrote on comm, as the supervisor decoded it."""

    request_id: Any
    request_type: Any
    body: Any
    problems: list[str]
    #: The fake supervisor answered it itself, the moment it read it (``auto_answer``).
    auto_answered: bool = False
    #: The third element (§3.6 trace carrier); None when absent or nil.
    carrier: Any = None


@dataclass
class SeenLog:
    """One line the runtime wrote on the logs channel."""

    line: bytes
    verdict: LogVerdict
    record: dict[str, Any] | None


@dataclass
class FakeSupervisor:
    """The supervisor's ends of the comm and logs streams, driven by a machine."""

    comm: trio.abc.Stream
    logs: trio.abc.Stream
    requests: list[SeenRequest] = field(default_factory=list)
    logs_seen: list[SeenLog] = field(default_factory=list)
    #: Bytes after the last complete frame / line, and whether the runtime closed its end.
    comm_eof: bool = False
    logs_eof: bool = False
    comm_closed: bool = False
    logs_closed: bool = False
    #: Frame-level garbage from the runtime (should stay empty).
    comm_errors: list[str] = field(default_factory=list)
    #: Consulted for every request as it is read: the bytes to answer it with at once, as
    #: a fast real supervisor would (before the runtime's next step), or None to leave the
    #: answer to the machine.
    auto_answer: Callable[[SeenRequest], bytes | None] | None = None
    _comm_buf: bytearray = field(default_factory=bytearray)
    _logs_buf: bytearray = field(default_factory=bytearray)

    async def read_comm(self) -> None:
        """Collect request frames until the runtime closes comm (run as a background task)."""
        while True:
            try:
                data = await self.comm.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                self.comm_eof = True
                if self._comm_buf:
                    self.comm_errors.append(f"{len(self._comm_buf)} bytes of a cut frame")
                return
            self._comm_buf += data
            while len(self._comm_buf) >= 4:
                (size,) = struct.unpack(">I", self._comm_buf[:4])
                if size == 0:
                    self.comm_errors.append("a zero-length frame (§12 row 4)")
                if len(self._comm_buf) < 4 + size:
                    break
                payload = bytes(self._comm_buf[4 : 4 + size])
                del self._comm_buf[: 4 + size]
                seen = self._take_request(payload)
                reply = self.auto_answer(seen) if self.auto_answer and seen else None
                if seen is not None and reply is not None:
                    seen.auto_answered = await self.send(reply)

    def _take_request(self, payload: bytes) -> SeenRequest | None:
        try:
            msg = msgspec.msgpack.decode(payload)
        except msgspec.DecodeError as exc:
            self.comm_errors.append(f"undecodable request: {exc}")
            return None
        problems = check_request(msg)
        rid = msg[0] if type(msg) is list and msg else None
        body = msg[1] if type(msg) is list and len(msg) > 1 else None
        kind = body.get("type") if type(body) is dict else None
        carrier = msg[2] if type(msg) is list and len(msg) > 2 else None
        seen = SeenRequest(rid, kind, body, problems, carrier=carrier)
        self.requests.append(seen)
        return seen

    async def read_logs(self) -> None:
        """Collect log lines until the runtime closes logs (run as a background task)."""
        while True:
            try:
                data = await self.logs.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                self.logs_eof = True
                if self._logs_buf.strip():
                    self._take_line(bytes(self._logs_buf))  # §8.1: a final fragment counts
                self._logs_buf.clear()
                return
            self._logs_buf += data
            while True:
                cut = self._logs_buf.find(b"\n")
                if cut < 0:
                    break
                line = bytes(self._logs_buf[:cut])
                del self._logs_buf[: cut + 1]
                self._take_line(line)

    def _take_line(self, line: bytes) -> None:
        verdict, record = judge_log_line(line.rstrip())
        self.logs_seen.append(SeenLog(line, verdict, record))

    async def send(self, data: bytes) -> bool:
        """Write bytes on comm; False if the runtime already closed its end."""
        if self.comm_closed:
            return False
        try:
            await self.comm.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        return True

    async def close_comm(self) -> None:
        """Close the supervisor's comm end: the runtime reads EOF (§12 row 32)."""
        self.comm_closed = True
        await trio.aclose_forcefully(self.comm)

    async def close_logs(self) -> None:
        """Close the supervisor's logs end (§12 row 31)."""
        self.logs_closed = True
        await trio.aclose_forcefully(self.logs)
