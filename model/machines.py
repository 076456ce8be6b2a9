"""Hypothesis state machines that judge the implementation by the model.

Theory of operation
-------------------
Each machine holds a model (``protocol_model``) and the real thing, applies every step to
both, and compares them after every step (the zarr-python ``testing/stateful.py``
pattern). Two machines:

* :class:`ConnectionVsModel` - the sans-IO :class:`~trio_coord.protocol.CommConnection`
  against :class:`~model.protocol_model.Conversation`: sends, answers in any order and
  any chunking, strays, forgets, garbage, EOF. No trio, no sockets: fast.
* :class:`RuntimeVsModel` - the whole runtime (``serve_streams``) over Trio memory
  streams, with the :mod:`~model.scripted` task doing what the model chooses and the
  :class:`~model.fake_supervisor.FakeSupervisor` answering as the model chooses, in
  virtual time through a :class:`~model.portal.TrioPortal`. After every step: requests
  are exactly the ones the model says are owed (fresh ids, valid bodies), every answered
  call resolved exactly once with the outcome the model allows, the runtime still running
  exactly when the model says it must, and once it ends: exit code, terminal message,
  the final state the supervisor would derive, and every log record.

Tests run them with the ``ci`` settings profile; ``nox -s model`` with ``long``.
"""

from __future__ import annotations

import datetime
import importlib.util
import itertools
import json
import struct
import sys
from typing import Any, ClassVar, Final

import msgspec
import trio
import trio.testing
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from trio_coord.config import Config
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
    Reply,
    Startup,
    State,
    StrayReply,
)
from trio_coord.protocol import messages as m
from trio_coord.runtime import serve_streams

from . import strategies as s
from .fake_supervisor import BROKEN_STARTUP, FakeSupervisor, Wire, encode, frame
from .portal import TrioPortal
from .protocol_model import (
    LEVELS,
    TERMINAL_TYPES,
    Answer,
    AnswerKind,
    Conversation,
    FirstFrame,
    LogVerdict,
    ModelViolation,
    Outcome,
    Phase,
    RaiseKind,
    RunModel,
    carrier_problems,
    check_request,
    outcome_of,
    trace_id_of,
)
from .scripted import (
    BRANCH_DOWNSTREAM,
    BRANCH_ID,
    BUNDLE,
    DIRECTORS,
    SENSOR_ID,
    TASK_ID,
    Director,
    Step,
)

__all__ = ["ConnectionVsModel", "RuntimeVsModel", "STATS"]

_UTC = datetime.UTC

#: Counters a long run reports (docs/testing.md): conversations, steps, findings.
STATS: dict[str, int] = {}


def _count(name: str, n: int = 1) -> None:
    STATS[name] = STATS.get(name, 0) + n


# -- the sans-IO machine -------------------------------------------------------------------

_PHASE_OF: Final = {
    State.AWAIT_FIRST: Phase.AWAIT_FIRST,
    State.RUNNING: Phase.RUNNING,
    State.TERMINAL_SENT: Phase.TERMINAL_SENT,
    State.DONE: Phase.DONE,
    State.CLOSED: Phase.CLOSED,
    State.ERROR: Phase.BROKEN,
}

_NOW = datetime.datetime(2026, 6, 16, 12, 0, tzinfo=_UTC)

#: Request type -> a message of that type, as the runtime's client would build it.
_SAMPLES: Final[dict[str, m.Request]] = {
    "GetVariable": m.GetVariable(key="k"),
    "PutVariable": m.PutVariable(key="k", value="v", description=None),
    "DeleteVariable": m.DeleteVariable(key="k"),
    "GetConnection": m.GetConnection(conn_id="c"),
    "GetXCom": m.GetXCom(key="k", dag_id="d", run_id="r", task_id="t"),
    "SetXCom": m.SetXCom(key="k", value={"a": [1]}, dag_id="d", run_id="r", task_id="t"),
    "DeleteXCom": m.DeleteXCom(key="k", dag_id="d", run_id="r", task_id="t"),
    "MaskSecret": m.MaskSecret(value="abcdef!secret"),
    "SucceedTask": m.SucceedTask(end_date=_NOW),
    "TaskState": m.TaskState(state="failed", end_date=_NOW),
    "RetryTask": m.RetryTask(end_date=_NOW, retry_reason="model"),
}


def _outcome_of_reply(reply: Reply) -> Outcome:
    try:
        reply.result()
    except NotFound:
        return Outcome.NOT_FOUND
    except PermissionDenied:
        return Outcome.PERMISSION_DENIED
    except AlreadyExists:
        return Outcome.ALREADY_EXISTS
    except SupervisorError:
        return Outcome.SUPERVISOR_ERROR
    except RemoteProtocolError:
        return Outcome.BAD_REPLY
    return Outcome.VALUE


class ConnectionVsModel(RuleBasedStateMachine):
    """CommConnection (sans-IO) against the model's conversation rules."""

    def __init__(self) -> None:
        super().__init__()
        self.conn = CommConnection(max_frame_size=1 << 16)
        self.conv = Conversation()
        self.wire = Wire()
        self.bodies: dict[int, tuple[str, dict[str, Any]]] = {}
        self.answered: list[int] = []
        _count("connection_conversations")

    # -- feeding ----------------------------------------------------------------------

    def _feed(self, data: bytes, cuts: list[int]) -> list[Any]:
        """Feed ``data`` cut at ``cuts``; drain events after each piece. Errors are events."""
        events: list[Any] = []
        start = 0
        for end in [*cuts, len(data)]:
            self.conn.receive_data(data[start:end])
            start = end
            while True:
                try:
                    ev = self.conn.next_event()
                except RemoteProtocolError as exc:
                    events.append(exc)
                    return events
                if ev is NEED_DATA:
                    break
                events.append(ev)
        return events

    # -- rules ------------------------------------------------------------------------

    @initialize(
        kind=s.first_frames,
        early=st.lists(st.sampled_from(sorted(_SAMPLES)), max_size=2),
        data=st.data(),
    )
    def first(self, kind: FirstFrame, early: list[str], data: st.DataObject) -> None:
        """The runtime tries to speak first (refused), then the supervisor's first frame.

        An initialize step rather than a rule: as a rule competing with EOF and garbage
        it let most conversations end before their first request (a 300-example run
        once reached the terminal reply 4 times).
        """
        for request_type in early:
            self.send(request_type)
        raw = self.wire.first_frame(kind)
        if raw is None:
            self.conn.receive_data(b"")
            assert isinstance(self.conn.next_event(), Closed)
            self.conv.closed()
            return
        events = self._feed(raw, data.draw(s.chunkings(len(raw))))
        assert len(events) == 1, events
        if kind in (FirstFrame.STARTUP, FirstFrame.UNKNOWN_TASK):
            assert isinstance(events[0], Startup), events
            self.conv.first_frame(ok=True)
        else:
            assert isinstance(events[0], RemoteProtocolError), events
            self.conv.first_frame(ok=False)

    @rule(request_type=st.sampled_from(sorted(_SAMPLES)))
    def send(self, request_type: str) -> None:
        """The runtime sends a request: allowed exactly when the model says so."""
        before = self.conn.state
        try:
            rid, data = self.conn.send_request(_SAMPLES[request_type])
        except LocalProtocolError:
            assert not self.conv.may_send(request_type), f"{request_type} refused in {before}"
            assert self.conn.state is before
            return
        assert self.conv.may_send(request_type), f"{request_type} sent in phase {self.conv.phase}"
        (size,) = struct.unpack(">I", data[:4])
        assert size == len(data) - 4
        decoded = msgspec.msgpack.decode(data[4:])  # what the real supervisor reads
        assert check_request(decoded) == [], check_request(decoded)
        assert decoded[0] == rid and decoded[1]["type"] == request_type
        self.conv.runtime_sent(rid, request_type)
        self.bodies[rid] = (request_type, decoded[1])

    @precondition(
        lambda self: (
            bool(self.conv.pending) and self.conv.phase in (Phase.RUNNING, Phase.TERMINAL_SENT)
        )
    )
    @rule(data=st.data())
    def answer(self, data: st.DataObject) -> None:
        """The supervisor answers one pending request, in any order and any chunking."""
        rid = data.draw(st.sampled_from(sorted(self.conv.pending, reverse=True)))
        kind, body = self.bodies[rid]
        answer = data.draw(s.answers_for(kind))
        raw = self.wire.answer_frame(rid, kind, body, answer)
        events = self._feed(raw, data.draw(s.chunkings(len(raw))))
        verdict = self.conv.supervisor_replied(rid)
        assert verdict in ("reply", "terminal")
        assert len(events) == 1 and isinstance(events[0], Reply), events
        assert events[0].request_id == rid
        if kind not in TERMINAL_TYPES:
            assert _outcome_of_reply(events[0]) is outcome_of(kind, answer), (kind, answer)
        self.answered.append(rid)

    @precondition(lambda self: self.conv.phase in (Phase.RUNNING, Phase.TERMINAL_SENT, Phase.DONE))
    @rule(data=st.data())
    def stray(self, data: st.DataObject) -> None:
        """A reply nobody waits for: a repeat, or an id never used."""
        choices = [*self.answered, 0, 10**6 + len(self.answered)]
        rid = data.draw(st.sampled_from(choices))
        if rid in self.conv.pending:
            return
        events = self._feed(frame(encode([rid, None, None])), [])
        before = self.conv.phase
        verdict = self.conv.supervisor_replied(rid)
        if verdict == "stray":
            assert len(events) == 1 and isinstance(events[0], StrayReply), events
        elif before is Phase.DONE:
            # The model allows a runtime to ignore a frame after the terminal reply or to
            # fail; CommConnection's table chose to fail (nothing may follow, states.py),
            # and the runtime keeps a delivered terminal's exit code either way.
            assert len(events) == 1 and isinstance(events[0], RemoteProtocolError), (
                f"a frame after the terminal reply was accepted as {events}"
            )
            self.conv.phase = Phase.BROKEN
        else:  # after EOF or a break: the connection may drop it or call it an error
            assert len(events) == 1 and isinstance(events[0], StrayReply | RemoteProtocolError)
            if isinstance(events[0], RemoteProtocolError):
                self.conv.phase = Phase.BROKEN  # the connection chose to fail: allowed

    @precondition(lambda self: bool(self.conv.pending))
    @rule(data=st.data())
    def forget(self, data: st.DataObject) -> None:
        """The runtime stops waiting for a request (it timed out)."""
        rid = data.draw(st.sampled_from(sorted(self.conv.pending)))
        if rid == self.conv.terminal_id:
            return
        self.conn.forget(rid)
        self.conv.forget(rid)
        self.answered.append(rid)

    @precondition(lambda self: self.conv.phase not in (Phase.CLOSED, Phase.BROKEN))
    @rule(how=st.sampled_from(["garbage", "eof", "neither", "neither"]), data=st.data())
    def supervisor_ends(self, how: str, data: st.DataObject) -> None:
        """Garbage or EOF, one rule (half of its draws do nothing), so that conversations
        usually get far before the supervisor ends them."""
        if how == "garbage":
            self.garbage(data.draw(s.garbage_frames(1 << 16)), data)
        elif how == "eof":
            self.eof()

    def garbage(self, garbage: bytes, data: st.DataObject) -> None:
        """Bytes that are not a frame break the connection for good."""
        events = self._feed(garbage, data.draw(s.chunkings(len(garbage))))
        assert events and isinstance(events[-1], RemoteProtocolError), events
        self.conv.phase = Phase.BROKEN  # even after DONE: the bytes are not a frame
        try:
            self.conn.next_event()
        except RemoteProtocolError:
            pass
        else:
            raise ModelViolation("a broken connection produced another event")

    def eof(self) -> None:
        """The supervisor closes between frames: Closed, listing what was pending."""
        self.conn.receive_data(b"")
        ev = self.conn.next_event()
        assert isinstance(ev, Closed), ev
        assert set(ev.pending) == set(self.conv.pending)
        self.conv.closed()

    @invariant()
    def same_state(self) -> None:
        """The connection's state and pending table are the model's."""
        assert _PHASE_OF[self.conn.state] is self.conv.phase, (self.conn.state, self.conv.phase)
        if self.conv.phase is not Phase.BROKEN:
            assert set(self.conn.pending) == set(self.conv.pending)


# -- the runtime machine -------------------------------------------------------------------

#: Timeouts the runtime runs with: not multiples of 1/8, unlike every clock step.
REQUEST_TIMEOUT: Final = 100.01
TERMINAL_TIMEOUT: Final = 150.01
MAX_FRAME: Final = 1 << 20
CONFIG: Final = Config(
    request_timeout=REQUEST_TIMEOUT,
    terminal_timeout=TERMINAL_TIMEOUT,
    shutdown_grace=4.0,
    max_frame_size=MAX_FRAME,
)
#: Virtual seconds every step ends with: a power of two, so sums stay exact and, like the
#: clock steps, never land on a timeout.
TICK: Final = 1 / 128
#: Virtual seconds within which a runtime whose terminal message was answered must exit
#: (§6.1 step 4: the supervisor kills it after 20 s).
PROMPT: Final = 1.0
#: Virtual seconds after which a runtime that should have ended is hung.
HANG_BOUND: Final = 4 * (REQUEST_TIMEOUT + TERMINAL_TIMEOUT)

_RUN_IDS = itertools.count()

#: Which scripted task the first frame names (plain most often: its endings are the
#: richest); "sensor_later" is a sensor's later try, "trigger_failed" a resumed try
#: whose trigger failed (``next_method == "__fail__"``).
TASK_CHOICES: Final = ["plain"] * 4 + [
    "branch",
    "sensor",
    "branch",
    "sensor_later",
    "branch",
    "trigger_failed",
]


#: The startup carrier of a traced try: a W3C traceparent (version, trace id, span id, flags).
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#: The runtime traces only where OpenTelemetry can be imported (an optional extra).
_CAN_TRACE = importlib.util.find_spec("opentelemetry") is not None


class RuntimeVsModel(RuleBasedStateMachine):
    """The real runtime, running the scripted task, against :class:`RunModel`."""

    #: Findings reported but not fixed yet: the machine stops generating the conversations
    #: that show them, so it can look for other bugs; each has a strict-xfail regression
    #: test in tests/test_stateful_regressions.py. Empty when everything is fixed.
    OPEN_FINDINGS: ClassVar[frozenset[str]] = frozenset()

    def __init__(self) -> None:
        super().__init__()
        self.portal: TrioPortal | None = None
        #: While True, the task's moves are queued without settling (a burst).
        self.holding = False
        self.rc: int | None = None
        self.seen = 0
        self.tokens = itertools.count()
        self.step_no = 0
        #: Rules applied so far, for messages.
        self.trace: list[str] = []
        #: Log lines received before the supervisor closed comm or broke the stream.
        self.fault_at = 0

    # -- set-up -----------------------------------------------------------------------

    @initialize(
        first=s.first_frames,
        should_retry=st.booleans(),
        clear=st.lists(s.keys, max_size=2, unique=True),
        map_index=s.map_indexes,
        prompt_terminal=st.sampled_from([False, False, True]),
        broken=st.sampled_from(sorted(BROKEN_STARTUP)),
        task=st.sampled_from(TASK_CHOICES),
        traced=st.booleans(),
    )
    def start(
        self,
        first: FirstFrame,
        should_retry: bool,
        clear: list[str],
        map_index: int = -1,
        prompt_terminal: bool = False,
        broken: str = "empty dag_id",
        task: str = "plain",
        traced: bool = False,
    ) -> None:
        """The supervisor accepts both connections and sends its first frame.

        With ``traced`` the try belongs to a trace (``ti.context_carrier``, §3.6): where
        OpenTelemetry is installed, every request must carry a carrier of that trace.

        With ``prompt_terminal`` it answers the terminal request the moment it reads it,
        as the real one does when the API server is quick: the runtime then ends within
        the step that sent it, with records of that step still in the log pump.
        """
        _count("runtime_conversations")
        self.first_kind = first
        self.prompt_terminal = prompt_terminal
        self.run_id = f"model-run-{next(_RUN_IDS)}"
        self.task_kind = task
        _count(f"task_{task}")
        fail_token = f"<tok{next(self.tokens)}>"
        self.wire = Wire(
            task_id={"branch": BRANCH_ID, "sensor": SENSOR_ID, "sensor_later": SENSOR_ID}.get(
                task, TASK_ID
            ),
            run_id=self.run_id,
            map_index=map_index,
            should_retry=should_retry,
            xcom_keys_to_clear=tuple(clear),
            task_reschedule_count=1 if task == "sensor_later" else 0,
            context_carrier={"traceparent": TRACEPARENT} if traced else None,
            next_method="__fail__" if task == "trigger_failed" else None,
            next_kwargs=(
                {"error": "boom", "traceback": [f"Traceback {fail_token}\n"]}
                if task == "trigger_failed"
                else None
            ),
        )
        self.model = RunModel(
            should_retry=should_retry,
            request_timeout=REQUEST_TIMEOUT,
            terminal_timeout=TERMINAL_TIMEOUT,
            xcom_keys_to_clear=tuple(clear),
            map_index=map_index,
            reschedule_lookup=task == "sensor_later",
        )
        if task == "trigger_failed":
            self.model.resumed_after_trigger_failure(fail_token)
        #: The trace every request must carry (§3.6): the startup carrier's, when the runtime
        #: can trace (OpenTelemetry installed); otherwise none.
        self.trace_id = trace_id_of(self.wire.context_carrier) if _CAN_TRACE else None
        _count("traced" if self.trace_id else "untraced")
        self.bodies: dict[int, tuple[str, dict[str, Any]]] = {}
        self.forgotten: list[int] = []
        self.portal = portal = TrioPortal()
        self.director = portal.run_sync(Director.create)
        DIRECTORS[self.run_id] = self.director

        def make() -> tuple[Any, ...]:
            comm_sup, comm_rt = trio.testing.memory_stream_pair()
            logs_sup, logs_rt = trio.testing.memory_stream_pair()
            return comm_sup, comm_rt, logs_sup, logs_rt, trio.Event()

        comm_sup, comm_rt, logs_sup, logs_rt, self.done = portal.run_sync(make)
        self.sup = FakeSupervisor(comm_sup, logs_sup, auto_answer=self._auto_answer)

        async def runtime() -> None:
            try:
                self.rc = await serve_streams(BUNDLE, comm_rt, logs_rt, CONFIG, environ=s.ENVIRON)
            finally:
                self.done.set()

        portal.start_soon(self.sup.read_comm)
        portal.start_soon(self.sup.read_logs)
        portal.start_soon(runtime)
        raw = self.wire.first_frame(first, broken)
        if raw is None:
            portal.run(self.sup.close_comm)
        else:
            portal.run(self.sup.send, raw)
        if first is FirstFrame.INVALID_STARTUP:
            _count(f"invalid_startup {broken}")
        self.model.first_frame(first, BROKEN_STARTUP[broken][0])
        self._sync()

    # -- the task's moves --------------------------------------------------------------

    def _push(self, step: Step) -> None:
        assert self.portal is not None
        self.portal.run_sync(self.director.push, step)
        if not self.holding:
            self._sync()

    @precondition(lambda self: self.model.can_step)
    @rule(move=st.sampled_from(["call"] * 4 + ["log"] * 2 + ["burst"]), data=st.data())
    def task_moves(self, move: str, data: st.DataObject) -> None:
        """The task's next move: a client call, a log line, or a burst of log lines (maybe
        followed by the end of the body, in the same instant)."""
        if move == "call":
            self.task_calls(data.draw(s.client_calls()))
        elif move == "log":
            self.task_logs(data.draw(st.sampled_from(sorted(s.LOG_LEVELS))), data.draw(s.log_texts))
        elif move == "burst":
            # Several records in one instant reach the log pump as one batch: their order
            # and completeness are then the pump's doing, not the step order's.
            self.holding = True
            try:
                for _ in range(data.draw(st.integers(2, 4))):
                    self.task_logs(data.draw(st.sampled_from(["info", "warning"])), "burst")
                if self.model.can_finish and data.draw(st.booleans()):
                    self._task_ends(data, waits=False)
            finally:
                self.holding = False
            self._sync()

    @precondition(lambda self: self.model.can_finish)
    @rule(data=st.data())
    def task_ends(self, data: st.DataObject) -> None:
        """The body ends. A rule of its own, so that a conversation usually gets to its
        terminal message (as one move of ``task_moves`` out of eight, 300 conversations
        once raised an ordinary exception 4 times)."""
        self._task_ends(data, waits=True)

    @precondition(lambda self: self.model.can_finish and self.task_kind != "plain")
    @rule(data=st.data())
    def vocabulary_task_ends(self, data: st.DataObject) -> None:
        """A branch task or a sensor ends the way only it can (a branch choice, a poke
        result) or defers: a rule of its own, so that these endings, rarer than the plain
        task's, still meet the supervisor's misbehaviour often in a ``ci`` run."""
        self._task_ends(data, waits=False, special=True)

    def _task_ends(self, data: st.DataObject, *, waits: bool, special: bool = False) -> None:
        """The body ends: it returns, raises, or (with ``waits``) blocks until cancelled."""
        if self.task_kind == "branch":
            ways = ["branch", "branch", "defer"] if special else ["branch", "raise", "defer"]
        elif self.task_kind.startswith("sensor"):
            ways = ["poke", "defer"] if special else ["poke", "raise", "poke", "defer"]
        else:
            ways = ["raise", "return", "defer", "raise", "return", "unsendable"]
        how = data.draw(st.sampled_from([*ways, *(["wait"] if waits else [])]))
        _count(f"task_ends_{how}")
        if how == "branch":
            self.task_branches(data.draw(st.lists(st.sampled_from(BRANCH_DOWNSTREAM), unique=True)))
        elif how == "poke":
            self.task_pokes(data.draw(st.booleans()))
        elif how == "defer":
            self.task_defers(with_kwargs=data.draw(st.booleans()))
        elif how == "return":
            self.task_returns(data.draw(s.json_values))
        elif how == "unsendable":
            self.task_returns_unsendable(data.draw(s.unsendable_values))
        elif how == "raise":
            self.task_raises(data.draw(s.raise_kinds))
        else:
            self.task_waits()

    def task_calls(self, call: s.ClientCall) -> None:
        """The task starts a client call (others may still be in flight)."""
        name, method, args, kwargs, has_default = call
        model_name = name
        env_key = f"AIRFLOW_VAR_{args[0].upper()}" if name == "get_variable" else ""
        if env_key in s.ENVIRON:
            # §9.8: found in the environment; the call's one request is the MaskSecret
            # that tells the supervisor, and the task gets the value only once it is sent.
            model_name, has_default = "mask_secret", False
            _count("env_secret_calls")
        _count(f"call_{name}")
        number = self.model.task_call(model_name, has_default=has_default)
        self._push(Step("call", number, method=method, args=args, kwargs=tuple(kwargs.items())))

    def task_logs(self, level: str, text: str) -> None:
        """The task logs one line."""
        token = f"<tok{next(self.tokens)}>"
        self.model.task_log(token, level, "task")
        self._push(Step("log", level=s.LOG_LEVELS[level], message=f"{token} {text}"))

    def task_branches(self, follow: list[str]) -> None:
        """The branch task returns the downstream ids to follow (the others are skipped)."""
        self.model.task_branches(skips=len(set(follow)) < len(BRANCH_DOWNSTREAM))
        self._push(Step("return", value=follow))

    def task_pokes(self, done: bool) -> None:
        """The sensor's poke returns done or not yet."""
        self.model.task_pokes(done)
        self._push(Step("return", value=done))

    def task_defers(self, *, with_kwargs: bool) -> None:
        """The task defers, with or without resume kwargs (next_kwargs is a map either way)."""
        self.model.task_defers()
        self._push(Step("defer", message="resume-kwarg" if with_kwargs else ""))

    def answer_last(self, request_type: str, answer: Answer) -> None:
        """Answer the newest request, which must be of ``request_type`` (scenario tests)."""
        rid = max(self.model.in_flight)
        assert self.bodies[rid][0] == request_type, (self.bodies[rid][0], request_type)
        self.do_answer(rid, answer)

    def task_returns(self, value: Any) -> None:
        """The task returns; a value other than None becomes the return_value XCom."""
        self.model.task_returns(value is not None)
        self._push(Step("return", value=value))

    def task_returns_unsendable(self, value: Any) -> None:
        """The task returns a value no XCom can hold: nothing pushed, the try fails."""
        self.model.task_returns_unsendable()
        self._push(Step("return", value=value))

    def task_raises(self, kind: RaiseKind) -> None:
        """The task raises: skip, fail without retry, or any other exception."""
        _count(f"task_raises_{kind.name.lower()}")
        token = f"<tok{next(self.tokens)}>"
        self.model.task_raises(kind, token)
        self._push(Step("raise", message=f"scripted failure {token}", raise_kind=kind))

    def task_waits(self) -> None:
        """The task blocks until it is cancelled."""
        self.model.task_waits()
        self._push(Step("wait"))

    # -- the supervisor's moves --------------------------------------------------------

    @precondition(lambda self: bool(self.model.in_flight) and not self.sup.comm_closed)
    @rule(data=st.data())
    def answer(self, data: st.DataObject) -> None:
        """The supervisor answers one request the runtime waits on, in any order.

        Newest first by preference (Hypothesis favours the first choice): the real
        supervisor answers in order, so out-of-order answers are where a runtime that
        matches replies to callers wrongly shows it.
        """
        rid = data.draw(st.sampled_from(sorted(self.model.in_flight, reverse=True)))
        kind, _body = self.bodies[rid]
        answer = data.draw(s.answers_for(kind))
        after = "none"
        if kind in TERMINAL_TYPES and "frame_after_terminal" not in self.OPEN_FINDINGS:
            after = data.draw(st.sampled_from(["none", "none", "repeat", "garbage"]))
        garbage = data.draw(s.garbage_frames(MAX_FRAME)) if after == "garbage" else b""
        self.do_answer(rid, answer, frame_after=after == "repeat", garbage_after=garbage)

    def do_answer(
        self, rid: int, answer: Answer, *, frame_after: bool = False, garbage_after: bytes = b""
    ) -> None:
        """Answer ``rid``; with ``frame_after`` (a repeated reply) or ``garbage_after`` (a
        broken frame), write more bytes right behind it, in the same write."""
        kind, body = self.bodies[rid]
        raw = self.wire.answer_frame(rid, kind, body, answer)
        if frame_after or garbage_after:
            # More bytes right behind the terminal reply (§12: nothing may follow). The
            # reply arrived, so the exit code must not change (§6.1, §12 row 44).
            raw += garbage_after or frame(encode([rid, None, None]))
            _count("frames_after_terminal")
        self.model.answer(rid, answer)
        assert self.portal is not None
        self.portal.run(self.sup.send, raw)
        _count(f"answer_{answer.kind.value}")
        self._sync()

    def _auto_answer(self, seen: Any) -> bytes | None:
        """The fake supervisor's own answer to the terminal request, when it is prompt."""
        if not (self.prompt_terminal and seen.request_type in TERMINAL_TYPES):
            return None
        if seen.problems or type(seen.request_id) is not int:
            return None
        return self.wire.answer_frame(
            seen.request_id, seen.request_type, seen.body, Answer(AnswerKind.EMPTY)
        )

    def request_ids(self, request_type: str) -> list[int]:
        """Ids of the requests of ``request_type`` the runtime sent (for scripted tests)."""
        return [rid for rid, (kind, _b) in self.bodies.items() if kind == request_type]

    @rule(seconds=st.sampled_from(s.CLOCK_STEPS))
    def time_passes(self, seconds: float) -> None:
        """Virtual time passes: requests past their timeout give up."""
        before = set(self.model.in_flight)
        self.model.time_passes(seconds)
        self.forgotten += [rid for rid in before if rid not in self.model.in_flight]
        assert self.portal is not None
        self.portal.advance(seconds)
        self._sync()

    @precondition(lambda self: self.model.exit_codes is None and not self.sup.comm_closed)
    @rule(
        kind=st.sampled_from(["stray", "stray", "close_logs", "close_comm", "garbage"]),
        data=st.data(),
    )
    def supervisor_misbehaves(self, kind: str, data: st.DataObject) -> None:
        """One rule for everything a broken supervisor does, so it stays the rarer move."""
        if kind == "stray":
            rid = data.draw(st.sampled_from([*self.forgotten, *self.bodies, 0, 10**9]))
            if rid not in self.model.in_flight:
                self.stray(rid)
        elif kind == "close_logs":
            if not self.sup.logs_closed:
                self.close_logs()
        elif kind == "close_comm":
            self.close_comm()
        else:
            self.garbage(data.draw(s.garbage_frames(MAX_FRAME)))

    def stray(self, rid: int) -> None:
        """A reply nobody waits for: late (after a timeout), repeated, or an unknown id."""
        self.model.answer(rid, Answer(AnswerKind.EMPTY))
        assert self.portal is not None
        self.portal.run(self.sup.send, frame(encode([rid, None, None])))
        _count("stray_replies")
        self._sync()

    def close_comm(self) -> None:
        """The supervisor closes the comm socket."""
        self.fault_at = len(self.sup.logs_seen)
        self.model.close_comm()
        assert self.portal is not None
        self.portal.run(self.sup.close_comm)
        _count("comm_closed")
        self._sync()

    def close_logs(self) -> None:
        """The supervisor closes the logs socket; the run goes on."""
        self.model.close_logs()
        assert self.portal is not None
        self.portal.run(self.sup.close_logs)
        _count("logs_closed")
        self._sync()

    def garbage(self, garbage: bytes) -> None:
        """The supervisor writes bytes that are not a frame: the runtime must fail closed."""
        self.fault_at = len(self.sup.logs_seen)
        self.model.break_stream()
        assert self.portal is not None
        self.portal.run(self.sup.send, garbage)
        _count("garbage_frames")
        self._sync()

    # -- comparing ---------------------------------------------------------------------

    def _sync(self) -> None:
        """Settle, then hold the runtime to the model (every rule ends here)."""
        portal = self.portal
        assert portal is not None
        self.trace.append(sys._getframe(1).f_code.co_name)
        portal.settle()
        self._check_crashes()
        self._take_requests()
        # A tick of virtual time, so timers far below any protocol timeout (the log pump's
        # 1 ms linger) fire; the model's clock moves with it, so deadlines still agree.
        self.model.time_passes(TICK)
        portal.advance(TICK)
        self._check_crashes()
        self._take_requests()
        assert not self.sup.comm_errors, self.sup.comm_errors
        if self.model.exit_codes is None:
            assert not self.model.owed, f"the runtime did not send {self.model.owed[0]}"
            assert not self.done.is_set(), (
                f"the runtime exited (rc {self.rc}) while it had to run on"
            )
        self._check_outcomes()
        self._check_logs_so_far()
        if self.model.exit_codes is not None:
            self._check_end()

    def _take_requests(self) -> None:
        """Requests: exactly the owed ones, in order, valid, with fresh ids."""
        while self.seen < len(self.sup.requests):
            seen = self.sup.requests[self.seen]
            self.seen += 1
            assert not seen.problems, (
                f"the supervisor would not answer {seen.body!r}: {seen.problems}"
            )
            problems = carrier_problems(seen.carrier, self.trace_id)
            assert not problems, f"{seen.request_type}: {problems}"
            self.model.saw_request(seen.request_id, seen.request_type)
            self.bodies[seen.request_id] = (seen.request_type, seen.body)
            self._check_identity(seen.request_type, seen.body)
            _count("requests")
            if seen.auto_answered:
                self.model.answer(seen.request_id, Answer(AnswerKind.EMPTY))
                _count("terminal_answered_at_once")

    def _check_identity(self, request_type: str, body: dict[str, Any]) -> None:
        """The try's own XComs carry the ids and ``map_index`` StartupDetails gave (§9.2);
        the environment's secret leaves the runtime only in a MaskSecret."""
        if request_type in ("SetXCom", "DeleteXCom"):
            wire = self.wire
            own_index = wire.map_index if wire.map_index >= 0 else None  # -1: omitted
            want = (wire.dag_id, wire.run_id, wire.task_id, own_index)
            got = tuple(body.get(k) for k in ("dag_id", "run_id", "task_id", "map_index"))
            assert got == want, f"{request_type} for {got}; StartupDetails says {want}"
        if request_type != "MaskSecret":
            assert s.ENV_SECRET not in repr(body), f"the env secret left in {request_type}"

    def _check_crashes(self) -> None:
        assert self.portal is not None
        if self.portal.crashes:
            raise ModelViolation(f"the runtime raised {self.portal.crashes[0]!r}") from (
                self.portal.crashes[0]
            )

    def _check_outcomes(self) -> None:
        results = self.director.results
        for number, got in results.items():
            assert len(got) == 1, f"call {number} resolved {len(got)} times: {got}"
            if number in self.model.open_steps:
                raise ModelViolation(f"call {number} resolved as {got[0]} before any answer")
            allowed = self.model.outcomes.get(number)
            assert allowed is not None, f"unknown call {number}"
            assert got[0][0] in {o.value for o in allowed}, (
                f"call {number} ended {got[0]}; the model allows {sorted(o.value for o in allowed)}"
            )
        for number in self.model.outcomes:
            assert number in results, f"call {number} was answered but the task never saw it"

    def _tokens(self) -> list[str]:
        out = []
        for seen in self.sup.logs_seen:
            event = seen.record.get("event") if seen.record else None
            if isinstance(event, str) and event.startswith("<tok"):
                out.append(event.split(">", 1)[0] + ">")
        return out

    def _check_logs_so_far(self) -> None:
        secret = s.ENV_SECRET.encode()
        for seen in self.sup.logs_seen:
            assert seen.verdict is LogVerdict.ACCEPTED, (
                f"the supervisor would find this log line {seen.verdict.value}: {seen.line[:200]!r}"
            )
            assert seen.record is not None and seen.record.get("level") in LEVELS
            assert secret not in seen.line, f"an unmasked secret in the logs: {seen.line!r}"
        problem = self.model.log_order_ok(self._tokens())
        assert problem is None, problem

    def _check_end(self) -> None:
        assert self.portal is not None
        if not self.done.is_set():
            took = self.portal.wait_until(self.done, HANG_BOUND)
            self._check_crashes()
            assert took is not None, (
                f"hang: the runtime is still running {HANG_BOUND} virtual s later; "
                f"after {self.trace}; phase {self.model.conv.phase.name}, requests "
                f"{[(r.request_id, r.request_type) for r in self.sup.requests]}, last logs "
                f"{[x.record.get('event') for x in self.sup.logs_seen[-4:] if x.record]}"
            )
            # With the stderr fallback too: it writes synchronously, in virtual time.
            prompt_due = self.model.terminal_delivered
            assert not prompt_due or took < PROMPT, (
                f"the runtime took {took} virtual s to exit after its terminal reply"
            )
            self._sync_after_exit()
        assert self.rc is not None
        assert self.model.exit_codes is not None
        assert self.rc in self.model.exit_codes, (
            f"exit code {self.rc}; the model says {sorted(self.model.exit_codes)}"
        )
        sent_terminals = [r for r in self.sup.requests if r.request_type in TERMINAL_TYPES]
        if self.model.terminal is not None and self.model.conv.terminal_type is not None:
            sent = [(r.request_type, r.body.get("state")) for r in sent_terminals]
            assert len(sent) == 1, f"terminal messages sent: {sent}"
            assert sent[0][0] == self.model.terminal[0], f"sent {sent}; due {self.model.terminal}"
            if self.model.terminal[0] == "TaskState":
                assert sent[0][1] == self.model.terminal[1], (
                    f"sent {sent}; due {self.model.terminal}"
                )
        if self.model.terminal_delivered:
            verdict = self.model.final_state(self.rc)
            assert not verdict.stuck, f"the TI would stay RUNNING: {verdict}"
            if not self.model.disturbed:
                assert verdict.state == self.model.intended, (verdict, self.model.intended)
        # Every record that had to arrive did; every failure was logged with its exception.
        if not self.sup.logs_closed:
            assert self.sup.logs_eof, "the runtime did not close the logs socket"
        got = self._tokens()
        missing = [t for t in self.model.must_log if t not in got]
        assert not missing, f"log records lost: {missing}"
        for token in self.model.must_log_failure:
            assert any(
                seen.record
                and seen.record.get("level") in ("error", "critical")
                and "exception" in seen.record
                and token in json.dumps(seen.record, default=str)
                for seen in self.sup.logs_seen
            ), f"the failure {token} was not logged at error with an exception"
        for token in self.model.must_log_error:
            assert any(
                seen.record
                and seen.record.get("level") in ("error", "critical")
                and token in json.dumps(seen.record, default=str)
                for seen in self.sup.logs_seen
            ), f"{token} (the failed trigger's traceback) was not logged at error"
        named = self.model.must_name
        if named is not None:
            assert any(
                seen.record
                and seen.record.get("level") in ("error", "critical")
                and named in json.dumps(seen.record, default=str)
                for seen in self.sup.logs_seen
            ), f"the StartupDetails was refused without an error record naming {named}"
        if self.model.must_explain:
            assert any(
                seen.record and seen.record.get("level") in ("error", "critical")
                for seen in self.sup.logs_seen[self.fault_at :]
            ), "the runtime lost its supervisor and exited without an error record saying so"

    def _sync_after_exit(self) -> None:
        while self.seen < len(self.sup.requests):
            seen = self.sup.requests[self.seen]
            self.seen += 1
            problems = carrier_problems(seen.carrier, self.trace_id)
            assert not problems, f"{seen.request_type}: {problems}"
            self.model.saw_request(seen.request_id, seen.request_type)

    @invariant()
    def no_crash(self) -> None:
        """Nothing in the runtime raised an unexpected exception."""
        if self.portal is not None:
            self._check_crashes()

    def teardown(self) -> None:
        """Close comm if the runtime still runs: it must end, with the model's exit code."""
        portal = self.portal
        if portal is None:
            return
        try:
            if not self.done.is_set() and not self.sup.comm_closed:
                self.model.close_comm()
                portal.run(self.sup.close_comm)
                self._sync()
            elif self.model.exit_codes is not None:
                self._check_end()
            _count("runtime_steps", len(self.trace))
        finally:
            DIRECTORS.pop(self.run_id, None)
            portal.close()
            self.portal = None
