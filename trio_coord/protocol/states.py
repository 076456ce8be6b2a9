"""The conversation rules of the comm channel, as one table (protocol.md §2.6, §4, §6.1).

Theory of operation
-------------------
A runtime's comm connection lives through a short, fixed story:

1. It connects and waits. The supervisor speaks first, with frame id 0: either
   ``StartupDetails`` (run a task) or ``DagFileParseRequest`` (parse a file). The
   runtime MUST NOT send before that frame (§2.6 step 4): an early request would be
   answered after ``StartupDetails`` and make ids ambiguous.
2. Running a task, the runtime sends any number of ordinary requests and receives
   their replies, then sends **exactly one** terminal request (§6.1) as its last.
   Parsing a file, it may send ordinary requests too (parse-time variable reads,
   dag-parsing.md §2.1), then exactly one ``DagFileParsingResult``, which plays the
   same role.
3. After the terminal request, only replies may arrive: late ones to earlier requests,
   then the one to the terminal request itself. After that, the conversation is done;
   the supervisor has nothing more to say (it handles requests in order, §3.8), so any
   further frame is a protocol error.
4. EOF may come at any point; it ends the conversation.

Everything the table below does not list is a protocol violation. Who is to blame
depends on the input: a ``SEND_*`` input that is not allowed raises
:class:`LocalProtocolError` and *does not change the state* (nothing was sent, so the
conversation is intact); a ``RECV_*`` input that is not allowed raises
:class:`RemoteProtocolError` and moves to ``ERROR`` for good.

The docs' state diagram (``docs/protocol.md``) and the state tests are generated from
:data:`TRANSITIONS`; there is no second copy of these rules.
"""

from __future__ import annotations

import enum
from typing import Final

from ..errors import LocalProtocolError, RemoteProtocolError

__all__ = ["State", "Input", "TRANSITIONS", "PARSE_CHANNEL", "ConversationState"]


class _FastHash(enum.Enum):
    """Members are singletons compared by identity, so hash by identity too.

    ``Enum.__hash__`` is Python code hashing the member's name; every frame does
    two or three table lookups keyed on (State, Input), so this is on the hot path.
    """

    __hash__ = object.__hash__


class State(_FastHash):
    #: Connected; waiting for the supervisor's first frame (id 0). Nothing may be sent.
    AWAIT_FIRST = "AWAIT_FIRST"
    #: StartupDetails received: requests and replies flow.
    RUNNING = "RUNNING"
    #: DagFileParseRequest received: requests may flow, then one DagFileParsingResult.
    PARSING = "PARSING"
    #: The terminal request is sent: nothing more may be sent, replies may arrive.
    TERMINAL_SENT = "TERMINAL_SENT"
    #: The terminal request was answered: the conversation is over.
    DONE = "DONE"
    #: The supervisor closed the comm socket.
    CLOSED = "CLOSED"
    #: The supervisor broke the protocol; the connection is unusable.
    ERROR = "ERROR"


class Input(_FastHash):
    #: First frame is StartupDetails.
    RECV_STARTUP = "RECV_STARTUP"
    #: First frame is DagFileParseRequest.
    RECV_PARSE_REQUEST = "RECV_PARSE_REQUEST"
    #: Any other frame from the supervisor (a reply, or a bad first frame).
    RECV_REPLY = "RECV_REPLY"
    #: The reply to the terminal request (or to DagFileParsingResult).
    RECV_TERMINAL_REPLY = "RECV_TERMINAL_REPLY"
    #: The supervisor closed its end.
    RECV_EOF = "RECV_EOF"
    #: We send an ordinary request that the parse channel also accepts (PARSE_CHANNEL).
    SEND_REQUEST = "SEND_REQUEST"
    #: We send an ordinary request that only a running task may send.
    SEND_TASK_REQUEST = "SEND_TASK_REQUEST"
    #: We send one of the six terminal requests (§6.1).
    SEND_TERMINAL = "SEND_TERMINAL"
    #: We send the DagFileParsingResult that answers a parse request.
    SEND_PARSE_RESULT = "SEND_PARSE_RESULT"

    @property
    def is_local(self) -> bool:
        """True for what we send, False for what the supervisor sends."""
        return self.name.startswith("SEND_")


S, I = State, Input  # noqa: E741 - the table reads better with one-letter names

#: (state, input) -> next state. Anything not here is a protocol violation.
TRANSITIONS: Final[dict[tuple[State, Input], State]] = {
    # Start-up: the supervisor speaks first (§2.6 step 4, §4).
    (S.AWAIT_FIRST, I.RECV_STARTUP): S.RUNNING,
    (S.AWAIT_FIRST, I.RECV_PARSE_REQUEST): S.PARSING,
    (S.AWAIT_FIRST, I.RECV_EOF): S.CLOSED,
    # Running a task: requests and replies, then one terminal request (§6.1).
    (S.RUNNING, I.SEND_REQUEST): S.RUNNING,
    (S.RUNNING, I.SEND_TASK_REQUEST): S.RUNNING,
    (S.RUNNING, I.RECV_REPLY): S.RUNNING,
    (S.RUNNING, I.SEND_TERMINAL): S.TERMINAL_SENT,
    (S.RUNNING, I.RECV_EOF): S.CLOSED,
    # Parsing a file: only the parse channel's requests (PARSE_CHANNEL), then one
    # result, which ends the conversation (dag-parsing.md §2.1).
    (S.PARSING, I.SEND_REQUEST): S.PARSING,
    (S.PARSING, I.RECV_REPLY): S.PARSING,
    (S.PARSING, I.SEND_PARSE_RESULT): S.TERMINAL_SENT,
    (S.PARSING, I.RECV_EOF): S.CLOSED,
    # After the terminal request: late replies, then the terminal reply.
    (S.TERMINAL_SENT, I.RECV_REPLY): S.TERMINAL_SENT,
    (S.TERMINAL_SENT, I.RECV_TERMINAL_REPLY): S.DONE,
    (S.TERMINAL_SENT, I.RECV_EOF): S.CLOSED,
    # Done: only the close remains.
    (S.DONE, I.RECV_EOF): S.CLOSED,
    (S.CLOSED, I.RECV_EOF): S.CLOSED,
}

#: The requests the DAG processor's parse channel decodes besides the result (its
#: ``ToManager`` union, dag-parsing.md §2.1). Any other request would make the manager
#: fail to decode the frame, so it is refused before it is written.
PARSE_CHANNEL: Final[frozenset[str]] = frozenset(
    {
        "GetConnection",
        "GetVariable",
        "GetVariableKeys",
        "PutVariable",
        "DeleteVariable",
        "GetTaskStates",
        "GetTICount",
        "GetPrevSuccessfulDagRun",
        "GetPreviousDagRun",
        "GetPreviousTI",
        "GetXCom",
        "GetXComCount",
        "GetXComSequenceItem",
        "GetXComSequenceSlice",
        "MaskSecret",
    }
)

#: Why a (state, local input) pair is refused: the messages users see.
_LOCAL_REASONS: Final[dict[State, str]] = {
    S.AWAIT_FIRST: "nothing may be sent before the supervisor's first frame (protocol.md §2.6)",
    S.RUNNING: "that message is only sent when answering a DagFileParseRequest",
    S.PARSING: (
        "while parsing a DAG file only the parse channel's requests"
        " (connections, variables, XCom and task-state reads, MaskSecret)"
        " and one DagFileParsingResult may be sent"
    ),
    S.TERMINAL_SENT: "the terminal message was already sent; nothing may follow it (§6.1)",
    S.DONE: "the conversation is over; nothing may be sent (§6.1)",
    S.CLOSED: "the supervisor closed the comm channel",
    S.ERROR: "the comm channel is broken by an earlier protocol error",
}


class ConversationState:
    """The current state, moved only through :data:`TRANSITIONS`."""

    __slots__ = ("_error", "state")

    def __init__(self) -> None:
        self.state = State.AWAIT_FIRST
        self._error: RemoteProtocolError | None = None

    @property
    def error(self) -> RemoteProtocolError | None:
        """The violation that moved the conversation to ERROR, if any."""
        return self._error

    def process(self, event: Input, what: str = "") -> State:
        """Apply one input; return the new state or raise the error the table implies."""
        if self._error is not None:
            if event.is_local:
                raise LocalProtocolError(_LOCAL_REASONS[State.ERROR]) from self._error
            raise self._error
        nxt = TRANSITIONS.get((self.state, event))
        if nxt is None:
            if event.is_local:
                raise LocalProtocolError(
                    f"cannot send {what or event.name}: " + _LOCAL_REASONS[self.state]
                )
            self.fail(
                RemoteProtocolError(f"unexpected {what or event.name} in state {self.state.name}")
            )
        else:
            self.state = nxt
        return self.state

    def check(self, event: Input, what: str = "") -> None:
        """Raise what :meth:`process` would raise for a local input, without moving."""
        if (self.state, event) not in TRANSITIONS or self._error is not None:
            self.process(event, what)

    def fail(self, error: RemoteProtocolError) -> None:
        """Move to ERROR for good and raise ``error``."""
        self.state = State.ERROR
        self._error = error
        raise error
