"""The comm connection without I/O: bytes in, events out; messages in, bytes out.

Theory of operation
-------------------
:class:`CommConnection` is to the coordinator protocol what h11's ``Connection`` is to
HTTP/1.1. The Trio layer feeds it whatever ``receive_some`` returned
(:meth:`~CommConnection.receive_data`, ``b""`` for EOF) and drains
:meth:`~CommConnection.next_event`; to send, it asks
:meth:`~CommConnection.send_request` for the bytes of one whole frame and writes them
in a single ``send_all``. Nothing here blocks, sleeps or owns a socket.

It owns the four pieces of conversation state (protocol.md §3.5, §3.7, §6.1):

* **request ids**: allocated from 1 upwards (0 belongs to ``StartupDetails``), never
  reused;
* **the pending table**: id -> request, so a reply is matched to what it answers and
  checked against what that request may get back (``Request.RESULT``);
* **the two error placements**: an ``ErrorResponse`` as the *body* (an expected
  negative answer, e.g. not found) and an ``ErrorResponse`` in the *error element*
  (the supervisor's handler raised). Both reach the caller through
  :meth:`Reply.result`, as typed exceptions;
* **the conversation state** (``states.py``): nothing before the first frame, exactly
  one terminal request, then nothing.

A frame that cannot be framed or decoded at all breaks the connection
(:class:`RemoteProtocolError`, state ``ERROR``): the byte stream can no longer be
trusted. A well-formed reply whose *body* is wrong only fails the request it answers
(:attr:`Reply.problem`): the stream is intact, and the task can still report failure.
A reply whose id is not pending (a request we stopped waiting for) is a
:class:`StrayReply`, which the runtime logs and drops (§12 row 33).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Final

from ..errors import (
    AlreadyExists,
    LocalProtocolError,
    NotFound,
    PermissionDenied,
    RemoteProtocolError,
    SupervisorError,
    describe,
)
from . import codec
from .framing import DEFAULT_MAX_FRAME_SIZE, NEED_DATA, FrameDecoder, NeedData, encode_frame
from .messages import (
    DagFileParseRequest,
    ErrorResponse,
    Inbound,
    Request,
    StartupDetails,
    decode_body,
    encode_body,
)
from .states import PARSE_CHANNEL, ConversationState, Input, State

__all__ = [
    "CommConnection",
    "Startup",
    "ParseRequest",
    "Reply",
    "StrayReply",
    "Closed",
    "Event",
    "ERROR_CLASSES",
    "FIRST_REQUEST_ID",
]

#: Ids we allocate start here; 0 is the supervisor's StartupDetails frame (§3.5).
FIRST_REQUEST_ID: Final = 1

#: ErrorType -> the exception :meth:`Reply.result` raises; anything else is SupervisorError.
ERROR_CLASSES: Final[dict[str, type[SupervisorError]]] = {
    "CONNECTION_NOT_FOUND": NotFound,
    "VARIABLE_NOT_FOUND": NotFound,
    "XCOM_NOT_FOUND": NotFound,
    "ASSET_NOT_FOUND": NotFound,
    "TASK_STORE_NOT_FOUND": NotFound,
    "ASSET_STORE_NOT_FOUND": NotFound,
    "PERMISSION_DENIED": PermissionDenied,
    "DAGRUN_ALREADY_EXISTS": AlreadyExists,
}


# -- events -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Startup:
    """The supervisor's first frame asks us to run one task try."""

    details: StartupDetails


@dataclass(frozen=True, slots=True)
class ParseRequest:
    """The supervisor's first frame asks us to parse a DAG file."""

    request: DagFileParseRequest


@dataclass(slots=True)
class Reply:
    """The answer to one of our pending requests.

    Not frozen, unlike the other events: one is built per reply on the hot path, and a
    frozen dataclass's ``__init__`` costs three times as much. Nothing mutates it.

    Exactly one of ``problem`` (the reply was malformed for this request), ``error``
    (the supervisor answered with an ``ErrorResponse``) or neither (success) is set.
    """

    request_id: int
    request: Request
    body: Inbound | None
    error: ErrorResponse | None = None
    error_in_body: bool = False
    problem: RemoteProtocolError | None = None

    def result(self) -> Inbound | None:
        """The reply body on success.

        Raises:
            NotFound, PermissionDenied, AlreadyExists, SupervisorError: the supervisor
                answered with an error, in either placement.
            RemoteProtocolError: the reply did not fit the request.
        """
        if self.problem is not None:
            raise self.problem
        if self.error is not None:
            cls = ERROR_CLASSES.get(self.error.error, SupervisorError)
            raise cls(self.error.error, self.error.detail, in_body=self.error_in_body)
        return self.body


@dataclass(frozen=True, slots=True)
class StrayReply:
    """A reply whose id is not pending: late, for a request we gave up on."""

    request_id: int


@dataclass(frozen=True, slots=True)
class Closed:
    """The supervisor closed the comm channel (clean EOF between frames)."""

    pending: tuple[int, ...]


Event = Startup | ParseRequest | Reply | StrayReply | Closed


# -- the connection -----------------------------------------------------------------------


class CommConnection:
    """Sans-IO state of the runtime's side of one comm channel."""

    def __init__(self, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self._decoder = FrameDecoder(max_frame_size)
        self._packer = codec.Packer()
        self._conv = ConversationState()
        self._ids = itertools.count(FIRST_REQUEST_ID)
        self._pending: dict[int, Request] = {}
        self._terminal_id: int | None = None

    @property
    def state(self) -> State:
        """Where the conversation is (see ``states.py``)."""
        return self._conv.state

    @property
    def pending(self) -> tuple[int, ...]:
        """Ids of requests sent and not yet answered (or forgotten)."""
        return tuple(self._pending)

    @property
    def max_frame_size(self) -> int:
        """The inbound frame limit in bytes."""
        return self._decoder.max_frame_size

    # -- sending --------------------------------------------------------------------------

    def send_request(
        self, msg: Request, *, carrier: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """Validate ``msg``, allocate its id and return ``(id, frame bytes)``.

        The frame is ``[id, body]``, or ``[id, body, carrier]`` with a W3C trace
        carrier (§3.6). The caller must write the bytes whole, or not at all.

        Raises:
            LocalProtocolError: the message is invalid or may not be sent now; the
                connection state is unchanged and nothing must be written.
        """
        body = encode_body(msg)  # first: it refuses anything that is not a Request
        if msg.TYPE == "DagFileParsingResult":
            event = Input.SEND_PARSE_RESULT
        elif msg.TERMINAL:
            event = Input.SEND_TERMINAL
        elif msg.TYPE in PARSE_CHANNEL:
            event = Input.SEND_REQUEST
        else:
            event = Input.SEND_TASK_REQUEST
        frame: list[Any] = [0, body]
        if carrier is not None:
            if not isinstance(carrier, dict) or not all(
                type(k) is str and type(v) is str for k, v in carrier.items()
            ):
                # §12 row 3: a non-string carrier is fatal for the supervisor.
                raise LocalProtocolError("the trace carrier must map strings to strings")
            frame.append(carrier)
        # Check the transition before allocating anything, so a refusal changes nothing.
        self._conv.check(event, msg.TYPE or type(msg).__name__)
        request_id = next(self._ids)
        frame[0] = request_id
        data = encode_frame(self._packer.packb(frame))
        self._conv.process(event)
        self._pending[request_id] = msg
        if event is Input.SEND_TERMINAL or event is Input.SEND_PARSE_RESULT:
            self._terminal_id = request_id
        return request_id, data

    def forget(self, request_id: int) -> None:
        """Stop waiting for a reply (the caller timed out or was cancelled).

        A reply that arrives later is reported as :class:`StrayReply`.
        """
        self._pending.pop(request_id, None)

    # -- receiving ------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes read from the comm socket; ``b""`` means the supervisor closed it."""
        self._decoder.receive_data(data)

    def next_event(self) -> Event | NeedData:
        """Return the next event, or ``NEED_DATA``.

        Raises:
            RemoteProtocolError: the supervisor broke the protocol; the connection is
                now in state ERROR and every later call raises the same error.
        """
        if self._conv.error is not None:
            # Frames behind a broken one are never delivered: the stream is not trusted.
            raise self._conv.error
        try:
            payload = self._decoder.next_frame()
        except RemoteProtocolError as exc:
            self._conv.fail(exc)
            raise  # pragma: no cover - fail() raises
        if isinstance(payload, NeedData):
            return NEED_DATA
        if payload is None:
            self._conv.process(Input.RECV_EOF)
            return Closed(tuple(self._pending))
        try:
            return self._frame_event(payload)
        except RemoteProtocolError as exc:
            if self._conv.state is not State.ERROR:
                self._conv.fail(exc)
            raise

    def _frame_event(self, payload: bytes) -> Event:
        frame = codec.unpackb(payload)
        if type(frame) is not list or len(frame) < 2:
            raise RemoteProtocolError(
                f"a supervisor frame must be an array [id, body, error], got {describe(frame)}"
            )
        request_id, body, error = frame[0], frame[1], frame[2] if len(frame) > 2 else None
        if type(request_id) is not int:
            raise RemoteProtocolError(f"frame id must be an integer, got {describe(request_id)}")
        if self._conv.state is State.AWAIT_FIRST:
            return self._first_frame(request_id, body, error)
        request = self._pending.pop(request_id, None)
        if request is None:
            if self._conv.state is State.DONE:
                self._conv.process(
                    Input.RECV_REPLY, f"frame id {request_id} after the terminal reply"
                )
            return StrayReply(request_id)
        if request_id == self._terminal_id:
            self._conv.process(Input.RECV_TERMINAL_REPLY)
        else:
            self._conv.process(Input.RECV_REPLY)
        return _reply(request_id, request, body, error)

    def _first_frame(self, frame_id: int, body: Any, error: Any) -> Event:
        where = "the first frame"
        if error is not None:
            raise RemoteProtocolError(f"{where} carries an error element: {describe(error)}")
        if frame_id != 0:
            raise RemoteProtocolError(f"{where} has id {frame_id}; the supervisor always uses 0")
        msg = decode_body(body, path=where)
        if isinstance(msg, StartupDetails):
            self._conv.process(Input.RECV_STARTUP)
            return Startup(msg)
        if isinstance(msg, DagFileParseRequest):
            self._conv.process(Input.RECV_PARSE_REQUEST)
            return ParseRequest(msg)
        raise RemoteProtocolError(
            f"{where} is a {msg.TYPE}; expected StartupDetails or DagFileParseRequest"
        )


def _reply(request_id: int, request: Request, body: Any, error: Any) -> Reply:
    try:
        if error is not None:
            err = ErrorResponse.from_map(error, f"{_name(request_id, request)}: error element")
            return Reply(request_id, request, None, err, error_in_body=False)
        if body is None:
            if request.RESULT:
                expected = " or ".join(c.__name__ for c in request.RESULT)
                raise RemoteProtocolError(
                    f"{_name(request_id, request)}: empty body where {expected} was expected"
                )
            return Reply(request_id, request, None)
        try:
            msg = decode_body(body)
        except RemoteProtocolError:
            # Decoding is pure: do it again with the request's name in the error message,
            # so that the common case builds no string at all.
            msg = decode_body(body, path=_name(request_id, request))
        if isinstance(msg, ErrorResponse):
            return Reply(request_id, request, None, msg, error_in_body=True)
        if request.RESULT and not isinstance(msg, request.RESULT):
            raise RemoteProtocolError(f"{_name(request_id, request)}: got a {msg.TYPE}")
        return Reply(request_id, request, msg)
    except RemoteProtocolError as exc:
        return Reply(request_id, request, None, problem=exc)


def _name(request_id: int, request: Request) -> str:
    return f"reply to {request.TYPE} (id {request_id})"
