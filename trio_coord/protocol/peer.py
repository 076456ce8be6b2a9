"""The supervisor's half of a frame, for the stand-in supervisors trio-coord ships.

Theory of operation
-------------------
:class:`~trio_coord.protocol.connection.CommConnection` is the runtime's side of the comm
channel. ``trio-coord run`` (and any test double) plays the *other* side, and must read
what a runtime writes and write what a runtime reads, with the same strictness as the
1.3.2 supervisor, because its job is to show a developer what that supervisor would do
with their task. The supervisor distinguishes two kinds of bad request (protocol.md §12):

* a frame it cannot take apart at all - not an array of at least two, an id that is not
  an integer, a carrier that is not a string-to-string map, or msgpack it cannot decode
  (rows 1-3): fatal for the supervisor. :func:`decode_request_frame` raises
  :class:`RemoteProtocolError` ("remote" from the supervisor's point of view: the runtime
  broke the protocol);
* a frame whose *body* does not validate - nil, not a map, an unknown ``type``, a missing
  or mistyped field (rows 7-8): logged and dropped, **no reply**. The frame decodes to a
  :class:`RequestFrame` with ``body`` None and ``problem`` saying why, so the caller can
  mirror the silence and still report it.

Replies go out as the supervisor writes them: always three elements, nil placeholders
explicit (§3.2), the first frame with id 0 (§4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import RemoteProtocolError, describe
from . import codec
from .framing import encode_frame
from .messages import REQUESTS, DagFileParseRequest, ErrorResponse, Inbound, Request, StartupDetails

__all__ = ["RequestFrame", "decode_request_frame", "encode_reply_frame", "encode_first_frame"]


@dataclass(frozen=True, slots=True)
class RequestFrame:
    """One request as the supervisor reads it.

    Exactly one of ``body`` (the decoded request) and ``problem`` (why the supervisor
    would drop it without a reply) is set.
    """

    request_id: int
    body: Request | None
    problem: str | None = None
    carrier: dict[str, str] | None = None
    #: The body's ``type`` tag when it had a string one, even if the body was dropped.
    tag: str | None = None


def decode_request_frame(payload: bytes) -> RequestFrame:
    """Decode one request frame payload (without its length prefix).

    Raises:
        RemoteProtocolError: the frame is one the real supervisor cannot survive
            (§12 rows 1-3); the comm stream should not be trusted after it.
    """
    frame = codec.unpackb(payload)
    if type(frame) is not list or len(frame) < 2:
        raise RemoteProtocolError(
            "a request frame must be an array [id, body] or [id, body, carrier]"
        )
    request_id, body = frame[0], frame[1]
    if type(request_id) is not int or not -(2**63) <= request_id < 2**64:
        raise RemoteProtocolError(
            f"request id must be a 64-bit integer, got {type(request_id).__name__}"
        )
    carrier = frame[2] if len(frame) > 2 else None
    if carrier is not None and (
        type(carrier) is not dict or not all(type(v) is str for v in carrier.values())
    ):
        raise RemoteProtocolError("the trace carrier (third element) must map strings to strings")
    return _with_body(request_id, body, carrier)


def _with_body(request_id: int, body: Any, carrier: dict[str, str] | None) -> RequestFrame:
    if type(body) is not dict:
        kind = "nil" if body is None else type(body).__name__
        return RequestFrame(request_id, None, f"the body is {kind}, not a map", carrier)
    tag = body.get("type")
    cls = REQUESTS.get(tag) if type(tag) is str else None
    if cls is None:
        return RequestFrame(
            request_id,
            None,
            f"unknown request type {describe(tag)}",
            carrier,
            tag if type(tag) is str else None,
        )
    try:
        msg: Request = cls.from_map(body, tag)
    except RemoteProtocolError as exc:
        return RequestFrame(request_id, None, str(exc), carrier, tag)
    return RequestFrame(request_id, msg, None, carrier, tag)


def encode_reply_frame(
    request_id: int, body: Inbound | None = None, error: ErrorResponse | None = None
) -> bytes:
    """The whole frame ``[id, body, error]`` answering one request.

    Raises:
        LocalProtocolError: a body or error that does not validate.
    """
    return encode_frame(
        codec.packb(
            [
                request_id,
                None if body is None else body.to_map(),
                None if error is None else error.to_map(),
            ]
        )
    )


def encode_first_frame(first: StartupDetails | DagFileParseRequest) -> bytes:
    """The supervisor's unsolicited first frame, ``[0, body, nil]`` (§4)."""
    return encode_reply_frame(0, first)
