"""The comm connection without I/O: bytes in, events out; messages in, bytes out.

Theory of operation
-------------------
:class:`CommConnection` is to the coordinator protocol what h11's ``Connection`` is to
HTTP/1.1. The Trio layer feeds it whatever ``receive_some`` returned
(:meth:`~CommConnection.receive_data`, ``b""`` for EOF) and drains
:meth:`~CommConnection.next_event`; to send, it asks :meth:`~CommConnection.encode` to
check and encode a request (pure: a large one may be encoded in a worker thread), then
:meth:`~CommConnection.commit` for its id and the buffers of the whole frame, which it
writes in order before any other frame (:meth:`~CommConnection.send_request` does both
and joins the frame, for callers that write small frames). Nothing here blocks, sleeps
or owns a socket.

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

from collections.abc import Callable
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
from .fields import CheckIncomplete, check_json
from .framing import DEFAULT_MAX_FRAME_SIZE, NEED_DATA, FrameDecoder, NeedData, frame_prefix
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
    "Encoded",
    "CHECKED_VALUE",
    "INLINE_CHECK_ITEMS",
    "LARGE_BODY",
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

#: Request type -> its field holding an arbitrary JSON value, checked with ``check_json``
#: before it is encoded: the supervisor stores the value as JSON and refuses one it
#: cannot store with no reply at all, so the refusal must happen here, with a reason.
#: The second item names the value in an error message (``XCom 'k'[3].a: ...``).
CHECKED_VALUE: Final[dict[str, tuple[str, Callable[[Any], str]]]] = {
    "SetXCom": ("value", lambda msg: f"XCom {msg.key!r}"),
}

#: A checked value with up to this many items is checked and encoded in the caller's
#: thread (well under a millisecond); a larger one is left to ``encode(inline=False)``.
INLINE_CHECK_ITEMS: Final = 10_000

#: Encoded bodies larger than this are encoded off the caller's thread, into a buffer
#: of their own that is written as is (never joined into one frame with its prefix).
LARGE_BODY: Final = 256 * 1024


@dataclass(slots=True)
class Encoded:
    """A request checked and encoded, waiting for :meth:`CommConnection.commit`.

    Not frozen: one is built per request on the hot path (a frozen dataclass's
    ``__init__`` costs three times as much). Nothing mutates it.
    """

    msg: Request
    event: Input
    #: The msgpack body map: ``bytes``, or for a large one a view of its own buffer.
    body: bytes | memoryview
    #: The msgpack trace carrier, or ``b""``.
    tail: bytes


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
        self._next_id = FIRST_REQUEST_ID
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

        :meth:`encode` then :meth:`commit`, with the frame joined into one buffer: for
        callers that write small frames whole. The caller must write the bytes whole,
        or not at all.

        Raises:
            LocalProtocolError: the message is invalid or may not be sent now; the
                connection state is unchanged and nothing must be written.
        """
        try:
            encoded = self.encode(msg, carrier=carrier)
        except CheckIncomplete:
            encoded = self.encode(msg, carrier=carrier, inline=False)
        request_id, parts = self.commit(encoded)
        return request_id, b"".join(parts)  # one bytes part is returned as it is

    def encode(
        self, msg: Request, *, carrier: dict[str, str] | None = None, inline: bool = True
    ) -> Encoded:
        """Check and encode ``msg`` without sending it or changing any state.

        The frame is ``[id, body]``, or ``[id, body, carrier]`` with a W3C trace
        carrier (§3.6); the body is encoded here, before the id exists, and
        :meth:`commit` puts the id in front of it. A request with a JSON value (the
        ``CHECKED_VALUE`` table) has it checked first (``check_json``: a cycle, an item
        with no JSON form, too deep or too large fails here, naming the place).

        With ``inline=False`` this may take long for a large value, and touches no
        state shared with the connection's thread (it uses a fresh packer), so it can
        run in a worker thread; call :meth:`commit` in the connection's thread after.

        Raises:
            LocalProtocolError: the message is invalid or may not be sent now.
            CheckIncomplete: ``inline`` and the value is large (over
                :data:`INLINE_CHECK_ITEMS` items, a string of a MiB, or an encoding over
                :data:`LARGE_BODY` bytes): call again with ``inline=False``, off the
                thread that must stay responsive.
        """
        checked = CHECKED_VALUE.get(msg.TYPE or "") if isinstance(msg, Request) else None
        # encode_body first: it refuses anything that is not a Request. A checked value is
        # checked below, once; its message's other fields are checked here.
        body = encode_body(msg) if checked is None else msg.to_map_unchecked(checked[0])
        if msg.TYPE == "DagFileParsingResult":
            event = Input.SEND_PARSE_RESULT
        elif msg.TERMINAL:
            event = Input.SEND_TERMINAL
        elif msg.TYPE in PARSE_CHANNEL:
            event = Input.SEND_REQUEST
        else:
            event = Input.SEND_TASK_REQUEST
        if carrier is not None and (
            not isinstance(carrier, dict)
            or not all(type(k) is str and type(v) is str for k, v in carrier.items())
        ):
            # §12 row 3: a non-string carrier is fatal for the supervisor.
            raise LocalProtocolError("the trace carrier must map strings to strings")
        # Check the transition before encoding anything, so a refusal costs nothing.
        self._conv.check(event, msg.TYPE or type(msg).__name__)
        size = 0
        if checked is not None:
            field, name = checked
            size = check_json(body[field], name(msg), INLINE_CHECK_ITEMS if inline else None)
            if inline and size > LARGE_BODY:
                raise CheckIncomplete
        if size > LARGE_BODY:
            data: bytes | memoryview = codec.pack_view(body)
        else:
            data = (self._packer.packb if inline else codec.packb)(body)
        tail = b"" if carrier is None else codec.packb(carrier)
        return Encoded(msg, event, data, tail)

    def commit(self, encoded: Encoded) -> tuple[int, tuple[bytes | memoryview, ...]]:
        """Allocate the id of an :meth:`encode`-d request; return it and the frame's buffers.

        The buffers are to be written in order, all of them or none, before any other
        frame. A small frame is one buffer; a large body is its own buffer, after a
        prefix of a few bytes, and is never copied into a joined frame.

        Raises:
            LocalProtocolError: the request may no longer be sent (the conversation
                moved on while it was encoded), or the frame is too large for the wire;
                the connection state is unchanged and nothing must be written.
        """
        msg, event = encoded.msg, encoded.event
        self._conv.check(event, msg.TYPE or type(msg).__name__)
        request_id = self._next_id
        # [id, body(, carrier)]: a msgpack array header, the id, then what was encoded.
        body, tail = encoded.body, encoded.tail
        array = 0x93 if tail else 0x92
        if request_id < 128:
            head = bytes((array, request_id))
        else:
            head = bytes((array,)) + self._packer.packb(request_id)
        prefix = frame_prefix(len(head) + len(body) + len(tail))
        parts: tuple[bytes | memoryview, ...]
        if len(body) > LARGE_BODY:
            parts = (prefix + head, body, tail) if tail else (prefix + head, body)
        else:
            parts = (b"".join((prefix, head, body, tail)),)
        self._next_id += 1
        self._conv.process(event)
        self._pending[request_id] = msg
        if event is Input.SEND_TERMINAL or event is Input.SEND_PARSE_RESULT:
            self._terminal_id = request_id
        return request_id, parts

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
