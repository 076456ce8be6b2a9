"""A pure model of one coordinator-protocol conversation, written from protocol.md alone.

Theory of operation
-------------------
This module is the *judge*. It is written from ``shared/spec/protocol.md`` and never from
``trio_coord``: it imports neither trio, msgpack nor trio_coord (a test checks that in a
fresh interpreter), and it is deliberately smaller than the implementation. It knows:

* **the catalogue** (§5, Appendix A): every request type, the body a success reply carries
  (or the empty reply), the body-level errors each may get, the six terminal messages and
  which of them change the task state directly (§5.7);
* **the conversation rules** (:class:`Conversation`, §2.6 step 4, §3.5, §6.1, §12): the
  supervisor speaks first with id 0; then the runtime sends requests with fresh ids, each
  answered at most once; exactly one terminal request, last; after its reply, nothing;
* **what an answer means to the task** (:func:`outcome_of`, §3.7, §12 rows 11-12, 34):
  a value, not found, permission denied, a supervisor error, or a reply that does not fit;
* **the supervisor's verdicts** (§7): :func:`derive_final_state` from the terminal message
  and the exit code, and :func:`expected_exit_code` from what was delivered (§6.1, §9.9);
* **the logs channel** (§8.2, §8.3): :func:`judge_log_line` is the supervisor's parser
  (accepted, dropped, malformed or fatal) and :func:`log_threshold` the runtime's filter;
* **one run of a scripted task** (:class:`RunModel`, §4, §6.2, §9): given what the task
  does and how the supervisor answers, which requests the runtime must send and in what
  order, what each client call returns in the task, which terminal message ends the run,
  the exit code, and which log records must arrive.

The machines in ``model/machines.py`` feed the same events to this model and to the real
code, and compare after every step.
"""

from __future__ import annotations

import datetime
import enum
import json
import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "REQUEST_TYPES",
    "SUCCESS_BODY",
    "BODY_ERRORS",
    "TERMINAL_TYPES",
    "DIRECT_STATE",
    "TASK_STATE_VALUES",
    "ERROR_TYPES",
    "RESPONSE_TYPES",
    "CLIENT_CALLS",
    "DEFAULTING_CALLS",
    "Phase",
    "split_frames",
    "ModelViolation",
    "REQUIRED_KEYS",
    "FORBID_KEYS",
    "check_request",
    "Conversation",
    "AnswerKind",
    "Answer",
    "Outcome",
    "outcome_of",
    "FinalState",
    "derive_final_state",
    "expected_exit_code",
    "LogVerdict",
    "LEVELS",
    "judge_log_line",
    "judge_log_record",
    "log_threshold",
    "level_number",
    "RunModel",
    "Expected",
    "FirstFrame",
    "RaiseKind",
]

# -- the catalogue (§5, Appendix A) ------------------------------------------------------

#: Request type -> the ``type`` of the body a successful reply carries; None = ``[id, nil, nil]``.
SUCCESS_BODY: Final[Mapping[str, str | None]] = {
    # §5.1 connections, variables
    "GetConnection": "ConnectionResult",
    "GetVariable": "VariableResult",
    "GetVariableKeys": "VariableKeysResult",
    "PutVariable": None,
    "DeleteVariable": "OKResponse",
    # §5.2 XCom
    "GetXCom": "XComResult",
    "GetXComCount": "XComCountResponse",
    "GetXComSequenceItem": "XComSequenceIndexResult",
    "GetXComSequenceSlice": "XComSequenceSliceResult",
    "SetXCom": None,
    "DeleteXCom": None,
    # §5.3 state stores
    "GetTaskStateStore": "TaskStateStoreResult",
    "SetTaskStateStore": "OKResponse",
    "DeleteTaskStateStore": "OKResponse",
    "ClearTaskStateStore": "OKResponse",
    "GetAssetStateStoreByName": "AssetStateStoreResult",
    "GetAssetStateStoreByUri": "AssetStateStoreResult",
    "SetAssetStateStoreByName": "OKResponse",
    "SetAssetStateStoreByUri": "OKResponse",
    "DeleteAssetStateStoreByName": "OKResponse",
    "DeleteAssetStateStoreByUri": "OKResponse",
    "ClearAssetStateStoreByName": "OKResponse",
    "ClearAssetStateStoreByUri": "OKResponse",
    # §5.4 assets
    "GetAssetByName": "AssetResult",
    "GetAssetByUri": "AssetResult",
    "GetAssetsByAlias": "AssetsByAliasResult",
    "GetAssetEventByAsset": "AssetEventsResult",
    "GetAssetEventByAssetAlias": "AssetEventsResult",
    "ValidateInletsAndOutlets": "InactiveAssetsResult",
    # §5.5 DAGs, runs, task instances
    "GetDag": "DagResult",
    "GetDagRun": "DagRunResult",
    "GetDagRunState": "DagRunStateResult",
    "GetDRCount": "DRCount",
    "GetPreviousDagRun": "PreviousDagRunResult",
    "GetPrevSuccessfulDagRun": "PrevSuccessfulDagRunResult",
    "GetPreviousTI": "PreviousTIResult",
    "GetTaskRescheduleStartDate": "TaskRescheduleStartDate",
    "GetTICount": "TICount",
    "GetTaskStates": "TaskStatesResult",
    "GetTaskBreadcrumbs": "TaskBreadcrumbsResult",
    "TriggerDagRun": "OKResponse",
    # §5.6 rendering, masking, logging, HITL
    "SetRenderedFields": None,
    "SetRenderedMapIndex": None,
    "MaskSecret": None,
    "ResendLoggingFD": "SentFDs",
    "CreateHITLDetailPayload": "HITLDetailRequestResult",
    "UpdateHITLDetail": None,
    "GetHITLDetailResponse": None,
    # §5.7 state-changing and terminal
    "SucceedTask": None,
    "TaskState": None,
    "RetryTask": None,
    "DeferTask": None,
    "RescheduleTask": None,
    "AwaitInputTask": None,
    "SkipDownstreamTasks": None,
}

#: Every request type of schema 2026-06-16 (55, Appendix A).
REQUEST_TYPES: Final[frozenset[str]] = frozenset(SUCCESS_BODY)

#: The ``ErrorResponse`` errors a request may get *as its body* (§3.7 case 1, §5 tables).
BODY_ERRORS: Final[Mapping[str, tuple[str, ...]]] = {
    "GetConnection": ("CONNECTION_NOT_FOUND", "PERMISSION_DENIED"),
    "GetVariable": ("VARIABLE_NOT_FOUND", "PERMISSION_DENIED"),
    "GetXComSequenceItem": ("XCOM_NOT_FOUND",),
    "GetTaskStateStore": ("TASK_STORE_NOT_FOUND",),
    "GetAssetStateStoreByName": ("ASSET_STORE_NOT_FOUND",),
    "GetAssetStateStoreByUri": ("ASSET_STORE_NOT_FOUND",),
    "GetAssetByName": ("ASSET_NOT_FOUND",),
    "GetAssetByUri": ("ASSET_NOT_FOUND",),
    "TriggerDagRun": ("DAGRUN_ALREADY_EXISTS",),
}

#: The six messages that end a run (§6.1).
TERMINAL_TYPES: Final[frozenset[str]] = frozenset(
    {"SucceedTask", "TaskState", "RetryTask", "DeferTask", "RescheduleTask", "AwaitInputTask"}
)

#: Terminal messages whose state the supervisor PATCHes at once (§5.7), and that state.
DIRECT_STATE: Final[Mapping[str, str]] = {
    "SucceedTask": "success",
    "RetryTask": "up_for_retry",
    "DeferTask": "deferred",
    "RescheduleTask": "up_for_reschedule",
    "AwaitInputTask": "awaiting_input",
}

#: The states ``TaskState`` may carry (Appendix A).
TASK_STATE_VALUES: Final[frozenset[str]] = frozenset({"failed", "skipped", "removed"})

#: ``ErrorType`` (§3.7).
ERROR_TYPES: Final[tuple[str, ...]] = (
    "CONNECTION_NOT_FOUND",
    "VARIABLE_NOT_FOUND",
    "XCOM_NOT_FOUND",
    "ASSET_NOT_FOUND",
    "TASK_STORE_NOT_FOUND",
    "ASSET_STORE_NOT_FOUND",
    "DAGRUN_ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "GENERIC_ERROR",
    "API_SERVER_ERROR",
)

#: Every body ``type`` the supervisor sends (Appendix A).
RESPONSE_TYPES: Final[frozenset[str]] = frozenset(
    {
        "AssetEventsResult",
        "AssetResult",
        "AssetStateStoreResult",
        "AssetsByAliasResult",
        "ConnectionResult",
        "CreateHITLDetailPayload",
        "DRCount",
        "DagResult",
        "DagRunResult",
        "DagRunStateResult",
        "ErrorResponse",
        "HITLDetailRequestResult",
        "InactiveAssetsResult",
        "OKResponse",
        "PrevSuccessfulDagRunResult",
        "PreviousDagRunResult",
        "PreviousTIResult",
        "SentFDs",
        "StartupDetails",
        "TICount",
        "TaskBreadcrumbsResult",
        "TaskRescheduleStartDate",
        "TaskStateStoreResult",
        "TaskStatesResult",
        "VariableKeysResult",
        "VariableResult",
        "XComCountResponse",
        "XComResult",
        "XComSequenceIndexResult",
        "XComSequenceSliceResult",
    }
)

#: Client call a scripted task makes -> the request it must put on the wire. The names
#: are the task-facing API (a call with two request forms, by asset name or by URI, is
#: listed once per form); the request types are the spec's (§5.1-§5.6). Every request
#: kind a task can ask for is here; UpdateHITLDetail, GetHITLDetailResponse and
#: ResendLoggingFD have no task-facing call.
CLIENT_CALLS: Final[Mapping[str, str]] = {
    "get_variable": "GetVariable",
    "set_variable": "PutVariable",
    "delete_variable": "DeleteVariable",
    "get_variable_keys": "GetVariableKeys",
    "get_connection": "GetConnection",
    "get_xcom": "GetXCom",
    "set_xcom": "SetXCom",
    "delete_xcom": "DeleteXCom",
    "get_xcom_count": "GetXComCount",
    "get_xcom_item": "GetXComSequenceItem",
    "get_xcom_slice": "GetXComSequenceSlice",
    "mask_secret": "MaskSecret",
    "get_task_state": "GetTaskStateStore",
    "set_task_state": "SetTaskStateStore",
    "delete_task_state": "DeleteTaskStateStore",
    "clear_task_state": "ClearTaskStateStore",
    "get_asset_state_by_name": "GetAssetStateStoreByName",
    "get_asset_state_by_uri": "GetAssetStateStoreByUri",
    "set_asset_state_by_name": "SetAssetStateStoreByName",
    "set_asset_state_by_uri": "SetAssetStateStoreByUri",
    "delete_asset_state_by_name": "DeleteAssetStateStoreByName",
    "delete_asset_state_by_uri": "DeleteAssetStateStoreByUri",
    "clear_asset_state_by_name": "ClearAssetStateStoreByName",
    "clear_asset_state_by_uri": "ClearAssetStateStoreByUri",
    "get_asset_by_name": "GetAssetByName",
    "get_asset_by_uri": "GetAssetByUri",
    "get_assets_by_alias": "GetAssetsByAlias",
    "get_asset_events": "GetAssetEventByAsset",
    "get_asset_alias_events": "GetAssetEventByAssetAlias",
    "validate_inlets_and_outlets": "ValidateInletsAndOutlets",
    "get_dag": "GetDag",
    "get_dagrun": "GetDagRun",
    "get_dagrun_state": "GetDagRunState",
    "get_dr_count": "GetDRCount",
    "get_previous_dagrun": "GetPreviousDagRun",
    "get_prev_successful_dagrun": "GetPrevSuccessfulDagRun",
    "get_previous_ti": "GetPreviousTI",
    "get_first_reschedule_date": "GetTaskRescheduleStartDate",
    "get_ti_count": "GetTICount",
    "get_task_states": "GetTaskStates",
    "get_task_breadcrumbs": "GetTaskBreadcrumbs",
    "trigger_dagrun": "TriggerDagRun",
    "skip_downstream_tasks": "SkipDownstreamTasks",
    "set_rendered_fields": "SetRenderedFields",
    "set_rendered_map_index": "SetRenderedMapIndex",
    "create_hitl_detail": "CreateHITLDetailPayload",
}

#: Calls whose not-found answer (an ``ErrorResponse`` body, §3.7 case 1) returns a
#: default instead of raising: a state store read with nothing stored is "no state yet"
#: (§5.3), as a variable read with a default is.
DEFAULTING_CALLS: Final[frozenset[str]] = frozenset(
    {"get_task_state", "get_asset_state_by_name", "get_asset_state_by_uri"}
)


class ModelViolation(AssertionError):
    """The real code did something the model forbids."""


#: Keys a request body MUST carry (§5, ``field*``), for the requests a scripted task makes.
REQUIRED_KEYS: Final[Mapping[str, frozenset[str]]] = {
    "GetVariable": frozenset({"key"}),
    "PutVariable": frozenset({"key", "value", "description"}),
    "DeleteVariable": frozenset({"key"}),
    "GetConnection": frozenset({"conn_id"}),
    "GetXCom": frozenset({"key", "dag_id", "run_id", "task_id"}),
    "SetXCom": frozenset({"key", "value", "dag_id", "run_id", "task_id"}),
    "DeleteXCom": frozenset({"key", "dag_id", "run_id", "task_id"}),
    "MaskSecret": frozenset({"value"}),
    "SucceedTask": frozenset({"end_date"}),
    "TaskState": frozenset({"state"}),
    "RetryTask": frozenset({"end_date"}),
    "DeferTask": frozenset({"classpath", "next_method"}),
    "RescheduleTask": frozenset({"reschedule_date", "end_date"}),
    "SkipDownstreamTasks": frozenset({"tasks"}),
}

#: The only keys the "(forbid)" models accept (§5.7): anything else is dropped unanswered.
FORBID_KEYS: Final[Mapping[str, frozenset[str]]] = {
    "SucceedTask": frozenset(
        {"end_date", "task_outlets", "outlet_events", "rendered_map_index", "state", "type"}
    ),
    "RetryTask": frozenset(
        {"end_date", "rendered_map_index", "retry_delay_seconds", "retry_reason", "state", "type"}
    ),
    "DeferTask": frozenset(
        {
            "classpath",
            "trigger_kwargs",
            "trigger_timeout",
            "queue",
            "next_method",
            "next_kwargs",
            "rendered_map_index",
            "state",
            "type",
        }
    ),
    "RescheduleTask": frozenset({"reschedule_date", "end_date", "state", "type"}),
    "SkipDownstreamTasks": frozenset({"tasks", "type"}),
}

#: Fields typed as aware date-times in the requests above (§3.4: naive is rejected).
_AWARE_FIELDS: Final = frozenset({"end_date", "reschedule_date"})


def check_request(frame: object) -> list[str]:
    """Why the supervisor would not answer this decoded request frame (§3.2, §3.4, §5, §12).

    Returns an empty list for a frame it accepts. Date-times may be ``datetime`` objects
    (the timestamp extension) or RFC 3339 strings with an offset.
    """
    if type(frame) is not list or len(frame) < 2:
        return ["a request frame must be an array of at least 2 elements"]  # §12 row 1
    problems = []
    if type(frame[0]) is not int:
        problems.append(f"request id {frame[0]!r} is not an integer")
    body = frame[1]
    if type(body) is not dict:
        return [*problems, f"request body is {type(body).__name__}, not a map"]  # row 7
    if not all(type(k) is str for k in body):
        problems.append("request body has a non-string key")  # row 2
    if len(frame) > 2 and frame[2] is not None:
        carrier = frame[2]
        if type(carrier) is not dict or not all(
            type(k) is str and type(v) is str for k, v in carrier.items()
        ):
            problems.append("the trace carrier is not a string-to-string map")  # row 3
    kind = body.get("type")
    if kind not in REQUEST_TYPES:
        return [*problems, f"unknown request type {kind!r}"]
    assert isinstance(kind, str)
    missing = REQUIRED_KEYS.get(kind, frozenset()) - body.keys()
    if missing:
        problems.append(f"{kind} lacks required keys {sorted(missing)}")
    extra = body.keys() - FORBID_KEYS[kind] if kind in FORBID_KEYS else set()
    if extra:
        problems.append(f"{kind} has keys its model forbids: {sorted(extra)}")
    for name in _AWARE_FIELDS & body.keys():
        value = body[name]
        if value is None and kind == "TaskState":
            continue
        if not _is_aware(value):
            problems.append(f"{kind}.{name} is not an aware date-time: {value!r}")
    if kind == "SucceedTask":
        for name in ("task_outlets", "outlet_events"):
            if type(body.get(name, [])) is not list:
                problems.append(f"SucceedTask.{name} must be a list (§5.7: null gets HTTP 422)")
    if kind == "DeferTask":
        # §5.7 server-side constraints: the supervisor forwards nulls, the API refuses them.
        if type(body.get("trigger_kwargs")) not in (dict, str):
            problems.append("DeferTask.trigger_kwargs must be a map or a string (not null)")
        if type(body.get("next_kwargs")) is not dict:
            problems.append("DeferTask.next_kwargs must be a map (not null)")
    if kind == "SkipDownstreamTasks":
        tasks = body.get("tasks")
        if type(tasks) is not list or not all(
            type(t) is str
            or (
                type(t) in (list, tuple) and len(t) == 2 and type(t[0]) is str and type(t[1]) is int
            )
            for t in tasks
        ):
            problems.append(
                f"SkipDownstreamTasks.tasks is not a list of ids/[id, index]: {tasks!r}"
            )
    if kind == "TaskState" and body.get("state") not in TASK_STATE_VALUES:
        problems.append(f"TaskState.state {body.get('state')!r} is not failed/skipped/removed")
    if kind in DIRECT_STATE and body.get("state", DIRECT_STATE[kind]) != DIRECT_STATE[kind]:
        problems.append(f"{kind}.state must be {DIRECT_STATE[kind]!r}")
    return problems


_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


def trace_id_of(carrier: object) -> str | None:
    """The trace id of a W3C carrier's ``traceparent`` (§3.6), or None if it has none."""
    if type(carrier) is not dict:
        return None
    m = _TRACEPARENT.match(str(carrier.get("traceparent", "")))
    return m.group(1) if m else None


def carrier_problems(carrier: object, trace_id: str | None) -> list[str]:
    """What is wrong with a request's third element, given the try's trace (§3.6).

    ``trace_id`` is the trace the runtime's task span belongs to: the one of
    ``StartupDetails.ti.context_carrier`` when it names one and the runtime traces; then every
    request is sent inside that span (or a span under it) and carries its carrier. Without a
    trace the runtime sends nil or nothing: the supervisor must not attach a stranger's context.
    """
    if trace_id is None:
        return (
            []
            if carrier is None
            else [f"a request carries a trace carrier {carrier!r} although the try has no trace"]
        )
    got = trace_id_of(carrier)
    if got is None:
        return [f"a request of a traced try carries no W3C traceparent: {carrier!r}"]
    if got != trace_id:
        return [f"a request carries trace {got}, not the try's trace {trace_id}"]
    return []


def _is_aware(value: object) -> bool:
    if isinstance(value, datetime.datetime):
        return value.tzinfo is not None and value.utcoffset() is not None
    if isinstance(value, str):
        return bool(_RFC3339_AWARE.fullmatch(value))
    return False


# -- framing (§3.1) -------------------------------------------------------------------------


def split_frames(data: bytes, max_frame_size: int, *, eof: bool) -> tuple[list[bytes], str]:
    """Cut a byte stream into frame payloads the way §3.1 describes, as plainly as possible.

    Returns the payloads before the first problem and how the stream stands after them:
    ``"boundary"`` (it ends between frames), ``"partial"`` (inside a frame, more may come),
    or ``"error"`` (a zero-length or oversized prefix, or EOF inside a frame).
    """
    frames: list[bytes] = []
    pos = 0
    while True:
        if len(data) - pos < 4:
            if pos == len(data):
                return frames, "boundary"
            return frames, "error" if eof else "partial"
        size = int.from_bytes(data[pos : pos + 4], "big")
        if size == 0 or size > max_frame_size:
            return frames, "error"  # §3.1, §12 row 4: never a zero-length frame
        if len(data) - pos - 4 < size:
            return frames, "error" if eof else "partial"
        frames.append(data[pos + 4 : pos + 4 + size])
        pos += 4 + size


# -- the conversation rules (§2.6, §3.5, §6.1, §12) --------------------------------------


class Phase(enum.Enum):
    #: Waiting for the supervisor's first frame; the runtime may send nothing.
    AWAIT_FIRST = "AWAIT_FIRST"
    #: StartupDetails received: requests and replies flow.
    RUNNING = "RUNNING"
    #: The one terminal request was sent: only replies may come, nothing may be sent.
    TERMINAL_SENT = "TERMINAL_SENT"
    #: The terminal request was answered: the conversation is over.
    DONE = "DONE"
    #: The supervisor closed the comm channel.
    CLOSED = "CLOSED"
    #: The supervisor broke the byte stream; nothing more is exchanged.
    BROKEN = "BROKEN"


#: Ids are int64-safe (§3.5: keep them < 2**63).
_MAX_ID: Final = 2**63


@dataclass
class Conversation:
    """Who may send what, when: the wire-level rules both sides must keep.

    The methods record what was seen on the wire and raise :class:`ModelViolation` when
    the *runtime* broke a rule. A supervisor-side oddity (a stray id, a frame after the
    end) is not a violation here: it is returned, so the caller can check the runtime
    survived it.
    """

    phase: Phase = Phase.AWAIT_FIRST
    #: Every id the runtime has used, in order.
    ids: list[int] = field(default_factory=list)
    #: id -> request type, for requests not yet answered (or given up on).
    pending: dict[int, str] = field(default_factory=dict)
    terminal_id: int | None = None
    terminal_type: str | None = None

    def may_send(self, request_type: str) -> bool:
        """True when the runtime may send ``request_type`` now."""
        return self.phase is Phase.RUNNING and request_type in REQUEST_TYPES

    def first_frame(self, ok: bool) -> None:
        """The supervisor's id-0 frame arrived; ``ok`` if it was a usable StartupDetails."""
        if self.phase is Phase.AWAIT_FIRST:
            self.phase = Phase.RUNNING if ok else Phase.BROKEN

    def runtime_sent(self, request_id: object, request_type: object) -> None:
        """The runtime put ``[request_id, {type: request_type, ...}]`` on the wire."""
        if self.phase is not Phase.RUNNING:
            raise ModelViolation(
                f"runtime sent {request_type} (id {request_id}) in phase {self.phase.name}"
            )
        if type(request_type) is not str or request_type not in REQUEST_TYPES:
            raise ModelViolation(f"runtime sent unknown request type {request_type!r}")
        if type(request_id) is not int or not 0 < request_id < _MAX_ID:
            raise ModelViolation(f"request id {request_id!r} is not an int in 1..2**63-1")
        if request_id in self.ids:
            raise ModelViolation(f"request id {request_id} reused")
        if self.ids and request_id < self.ids[-1]:
            raise ModelViolation(f"request id {request_id} after {self.ids[-1]}: not increasing")
        self.ids.append(request_id)
        self.pending[request_id] = request_type
        if request_type in TERMINAL_TYPES:
            self.phase = Phase.TERMINAL_SENT
            self.terminal_id = request_id
            self.terminal_type = request_type

    def supervisor_replied(self, request_id: int) -> str:
        """A well-formed reply frame for ``request_id`` arrived.

        Returns:
            ``"reply"`` (answers a pending request), ``"terminal"`` (answers the terminal
            request), ``"stray"`` (no such pending request: the runtime drops it, §12 row
            33) or ``"after-end"`` (the conversation was over).
        """
        if self.phase in (Phase.DONE, Phase.CLOSED, Phase.BROKEN):
            return "after-end"
        if request_id not in self.pending:
            return "stray"
        del self.pending[request_id]
        if request_id == self.terminal_id:
            self.phase = Phase.DONE
            return "terminal"
        return "reply"

    def forget(self, request_id: int) -> None:
        """The runtime gave up waiting for ``request_id``: a later reply is a stray."""
        self.pending.pop(request_id, None)

    def closed(self) -> None:
        """The supervisor closed the comm channel."""
        if self.phase is not Phase.BROKEN:
            self.phase = Phase.CLOSED

    def broken(self) -> None:
        """The supervisor sent bytes that are not a frame; the channel is dead."""
        if self.phase not in (Phase.DONE, Phase.CLOSED):
            self.phase = Phase.BROKEN


# -- what an answer means to the task (§3.7, §12) ----------------------------------------


class AnswerKind(enum.Enum):
    #: The success body the catalogue names (or ``[id, nil, nil]`` for the empty reply).
    RESULT = "RESULT"
    #: ``[id, nil, nil]`` whatever the request.
    EMPTY = "EMPTY"
    #: ``[id, ErrorResponse, nil]``: an expected negative answer (§3.7 case 1).
    ERROR_BODY = "ERROR_BODY"
    #: ``[id, nil, ErrorResponse]``: the supervisor's handler raised (§3.7 case 2).
    ERROR_ELEMENT = "ERROR_ELEMENT"
    #: A well-formed frame whose body is another response type, or lacks a required key.
    WRONG_BODY = "WRONG_BODY"


@dataclass(frozen=True)
class Answer:
    kind: AnswerKind
    #: The ``ErrorType`` for the two error kinds.
    error: str = "API_SERVER_ERROR"


class Outcome(enum.Enum):
    """What a client call does in the task."""

    #: Returns (a value, the default, or None).
    VALUE = "VALUE"
    #: Raises a not-found error (any ``*_NOT_FOUND``).
    NOT_FOUND = "NOT_FOUND"
    #: Raises an access-denied error, never a not-found one (§9.8).
    PERMISSION_DENIED = "PERMISSION_DENIED"
    #: Raises an already-exists error (``DAGRUN_ALREADY_EXISTS``).
    ALREADY_EXISTS = "ALREADY_EXISTS"
    #: Raises the supervisor's error (``API_SERVER_ERROR``, ``GENERIC_ERROR``).
    SUPERVISOR_ERROR = "SUPERVISOR_ERROR"
    #: Raises a protocol error: the reply did not fit the request (§12 row 34).
    BAD_REPLY = "BAD_REPLY"
    #: Raises a timeout: no reply within the request timeout.
    TIMEOUT = "TIMEOUT"
    #: Raises "supervisor gone": the comm channel ended while waiting.
    GONE = "GONE"
    #: The call was cancelled with the task (the runtime is shutting down).
    CANCELLED = "CANCELLED"


def _error_outcome(error: str) -> Outcome:
    if error.endswith("_NOT_FOUND"):
        return Outcome.NOT_FOUND
    if error == "PERMISSION_DENIED":
        return Outcome.PERMISSION_DENIED
    if error == "DAGRUN_ALREADY_EXISTS":
        return Outcome.ALREADY_EXISTS
    return Outcome.SUPERVISOR_ERROR


def outcome_of(request_type: str, answer: Answer, *, has_default: bool = False) -> Outcome:
    """What a call that sent ``request_type`` does in the task when answered with ``answer``.

    ``has_default`` is a ``get_variable(key, default=...)`` call: not-found returns the
    default (the native client does the same).
    """
    expected = SUCCESS_BODY[request_type]
    if answer.kind is AnswerKind.RESULT:
        return Outcome.VALUE
    if answer.kind is AnswerKind.EMPTY:
        # §12 row 34: a nil body is fine for the empty reply, a protocol error otherwise.
        return Outcome.VALUE if expected is None else Outcome.BAD_REPLY
    if answer.kind is AnswerKind.WRONG_BODY:
        return Outcome.BAD_REPLY
    out = _error_outcome(answer.error)
    if out is Outcome.NOT_FOUND and has_default and answer.kind is AnswerKind.ERROR_BODY:
        return Outcome.VALUE
    return out


# -- the supervisor's verdict (§6.1, §7, §9.9) -------------------------------------------


@dataclass(frozen=True)
class FinalState:
    """What the supervisor concludes after the runtime exits (§7.1)."""

    #: The task-instance state it derives.
    state: str
    #: The API call it makes at exit: ``"finish"`` (PATCH state), ``"replay"`` (re-issue a
    #: failed direct-state call) or None.
    api_call: str | None
    #: True when the server is never told: the TI stays RUNNING until the heartbeat
    #: timeout (§6.1, §7.2 rows "TI stuck RUNNING").
    stuck: bool


_SENT_DIRECTLY: Final = frozenset(
    {"deferred", "awaiting_input", "up_for_reschedule", "up_for_retry", "success"}
)


def derive_final_state(
    *,
    exit_code: int,
    terminal_type: str | None,
    terminal_state: str | None,
    api_failed: bool,
    should_retry: bool,
    server_terminated: bool = False,
) -> FinalState:
    """§7.1, rule by rule.

    Args:
        exit_code: the runtime's exit status (negative: killed by a signal).
        terminal_type: the terminal request the supervisor received, or None.
        terminal_state: its state (``TaskState.state`` or the direct message's state).
        api_failed: the supervisor answered a direct-state message with an error element
            (its PATCH failed and is kept "pending").
        should_retry: ``ti_context.should_retry``.
        server_terminated: the heartbeat said the TI must stop (§7.3).
    """
    # Rule 1: a failed direct-state call is replayed once, whatever the exit code.
    direct = DIRECT_STATE.get(terminal_type or "")
    if direct is not None and api_failed:
        return FinalState(direct, "replay", stuck=False)
    recorded: str | None = None
    delivered_directly = False
    if server_terminated:
        recorded = "SERVER_TERMINATED"
    elif terminal_type == "TaskState":
        recorded = terminal_state
    elif direct is not None:
        recorded = direct
        delivered_directly = True
    if exit_code == 0:  # rule 2
        state = recorded or "success"
    elif recorded == "SERVER_TERMINATED":  # rule 3
        state = recorded
    else:  # rule 4: a terminal state is honoured only on exit 0
        state = "up_for_retry" if should_retry else "failed"
        delivered_directly = delivered_directly and state == recorded
    if state in _SENT_DIRECTLY or state == "SERVER_TERMINATED":  # rule 5
        stuck = state != "SERVER_TERMINATED" and not delivered_directly
        return FinalState(state, None, stuck=stuck)
    return FinalState(state, "finish", stuck=False)


def expected_exit_code(*, terminal_state: str | None, delivered: bool) -> int:
    """§6.1 step 3 and §9.9: 0 once a terminal message is out, 1 on protocol failure.

    Args:
        terminal_state: the state the terminal message carried, or None if none was sent.
        delivered: its reply arrived (an empty reply or an error element).
    """
    if terminal_state is None:
        return 1
    if delivered:
        return 0
    # Sent but not confirmed (EOF, timeout, broken channel): "fail closed" for failures.
    return 1 if terminal_state in ("failed", "up_for_retry") else 0


# -- the logs channel (§8.2, §8.3) -------------------------------------------------------


class LogVerdict(enum.Enum):
    #: Rendered into the task log.
    ACCEPTED = "ACCEPTED"
    #: Silently dropped: unknown or upper-case level, ``notset`` (§8.2 step 5).
    DROPPED = "DROPPED"
    #: Not JSON: dropped with "Malformed json log line" in the supervisor's own log.
    MALFORMED = "MALFORMED"
    #: Escapes the supervisor's loop: no final state is reported (§12 rows 25-30).
    FATAL = "FATAL"


#: The supervisor's level table (§8.2 step 5), case-sensitive.
LEVELS: Final[Mapping[str, int]] = {
    "critical": 50,
    "exception": 40,
    "error": 40,
    "warn": 30,
    "warning": 30,
    "info": 20,
    "debug": 10,
    "notset": 0,
}

_RFC3339_AWARE: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
_RFC3339: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?", re.ASCII
)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def judge_log_line(line: bytes) -> tuple[LogVerdict, dict[str, Any] | None]:
    """What the supervisor does with one line of the logs channel (without its ``\\n``)."""
    try:
        value = json.loads(line.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return LogVerdict.MALFORMED, None
    if type(value) is not dict:
        return LogVerdict.FATAL, None  # §12 row 25
    return judge_log_record(value), value


def judge_log_record(record: Mapping[str, Any]) -> LogVerdict:
    """§8.2 steps 2-7 on a decoded JSON object."""
    ts = record.get("timestamp")
    if ts and (type(ts) is not str or not _RFC3339.fullmatch(ts)):
        return LogVerdict.FATAL  # §12 row 29
    if "level" not in record:
        return LogVerdict.FATAL  # §12 row 26
    if "self" in record or "method_name" in record:
        return LogVerdict.FATAL  # §12 row 30
    level = record["level"]
    if isinstance(level, list | dict):
        return LogVerdict.FATAL  # §12 row 28: unhashable
    if type(level) is not str or not LEVELS.get(level):
        return LogVerdict.DROPPED  # §12 row 27
    return LogVerdict.ACCEPTED


_LEVEL_NAMES: Final[Mapping[str, int]] = {
    "NOTSET": 0,
    "DEBUG": 10,
    "INFO": 20,
    "WARN": 30,
    "WARNING": 30,
    "ERROR": 40,
    "CRITICAL": 50,
    "FATAL": 50,
}


def level_number(name: str | None, default: int = 20) -> int:
    """A level name from the environment (§8.3, case-insensitive) as a number."""
    if name is None:
        return default
    return _LEVEL_NAMES.get(name.strip().upper(), default)


def log_threshold(logger: str, global_level: str | None, namespace_levels: str | None) -> int:
    """The level a record from ``logger`` must reach to be sent (§8.3).

    ``global_level`` is ``AIRFLOW__LOGGING__LOGGING_LEVEL`` (INFO when unset or invalid);
    ``namespace_levels`` is ``AIRFLOW__LOGGING__NAMESPACE_LEVELS``: ``name=LEVEL``
    entries separated by commas and/or whitespace, the longest dotted prefix wins,
    malformed entries are ignored.
    """
    threshold = level_number(global_level)
    best = -1
    for entry in re.split(r"[,\s]+", namespace_levels or ""):
        name, sep, lvl = entry.partition("=")
        if not sep or not name or lvl.strip().upper() not in _LEVEL_NAMES:
            continue
        if (logger == name or logger.startswith(name + ".")) and len(name) > best:
            best = len(name)
            threshold = _LEVEL_NAMES[lvl.strip().upper()]
    return threshold


# -- one run of a scripted task (§4, §6.2, §9) -------------------------------------------


class FirstFrame(enum.Enum):
    #: A valid StartupDetails naming the scripted task.
    STARTUP = "STARTUP"
    #: A valid StartupDetails naming a task the bundle does not have (§9.1 step 2).
    UNKNOWN_TASK = "UNKNOWN_TASK"
    #: StartupDetails that cannot name a try (empty dag_id, try_number 0; §4.1), or with
    #: any field the real model would refuse (a ti.id that is not a UUID, an offset-less
    #: string in an AwareDatetime field, a wrong type anywhere): the same outcome.
    INVALID_STARTUP = "INVALID_STARTUP"
    #: A first frame that is some other response type (§4: log, send nothing, exit 1).
    OTHER_TYPE = "OTHER_TYPE"
    #: ``[0, nil, ErrorResponse]`` (§12 row 35).
    ERROR_ELEMENT = "ERROR_ELEMENT"
    #: The supervisor closes the comm channel without saying anything.
    EOF = "EOF"


class RaiseKind(enum.Enum):
    #: The task asks to be skipped -> ``TaskState(skipped)``.
    SKIP = "SKIP"
    #: A failure that must not retry -> ``TaskState(failed)``.
    FAIL = "FAIL"
    #: Any other exception -> ``RetryTask`` or ``TaskState(failed)`` by should_retry.
    ERROR = "ERROR"


@dataclass
class Expected:
    """A request the runtime owes the supervisor, and why."""

    #: ``"call"`` (a client call of step ``step``), ``"clear"`` (§9.2), ``"push"`` (the
    #: return value, §9.4), ``"skipmixin"`` (a branch's decision XCom), ``"skip"``
    #: (SkipDownstreamTasks), ``"reschedule_start"`` (a later sensor try's lookup) or
    #: ``"terminal"``.
    purpose: str
    request_type: str
    step: int | None = None
    #: The state a terminal request carries.
    state: str | None = None
    has_default: bool = False
    #: Virtual time the request went out (set when it is seen on the wire).
    sent_at: float | None = None


@dataclass
class RunModel:
    """The expected behaviour of one runtime run whose task follows a script.

    The driver tells the model what the task does (``task_*``), what the supervisor does
    (``answer``, ``close_comm``, ...) and what it saw on the wire (``saw_request``). The
    model keeps: the request it is owed next (``owed``), the outcome allowed for every
    client call (``outcomes``), the exit code once the run must end (``exit_codes``), the
    terminal message, and which log records must / must not arrive.
    """

    should_retry: bool
    request_timeout: float
    terminal_timeout: float
    #: Keys in ``ti_context.xcom_keys_to_clear`` (§9.2).
    xcom_keys_to_clear: tuple[str, ...] = ()
    #: ``AIRFLOW__LOGGING__LOGGING_LEVEL`` / ``..._NAMESPACE_LEVELS`` the runtime sees.
    global_level: str | None = None
    namespace_levels: str | None = None
    #: ``ti.map_index``: a mapped instance (>= 0) records its branch decision but never
    #: sends the skip (the native runner's SkipMixin; its downstream is not expanded yet).
    map_index: int = -1
    #: A reschedule-mode sensor on a later try (``task_reschedule_count > 0``): it asks
    #: for the first try's start (``GetTaskRescheduleStartDate``) before it pokes.
    reschedule_lookup: bool = False
    #: A resumed try whose trigger failed (``next_method == "__fail__"``, §9.7).
    trigger_failed: bool = False

    conv: Conversation = field(default_factory=Conversation)
    now: float = 0.0
    #: Requests the runtime must have sent by the end of the current step, in order.
    owed: deque[Expected] = field(default_factory=deque)
    #: id -> what the runtime sent, while the model waits for its reply.
    in_flight: dict[int, Expected] = field(default_factory=dict)
    #: step -> outcomes allowed in the task, for every call the task made.
    outcomes: dict[int, frozenset[Outcome]] = field(default_factory=dict)
    #: Steps whose call is still waiting for a reply.
    open_steps: set[int] = field(default_factory=set)
    #: True while the task body runs and takes steps.
    task_running: bool = False
    #: True once the task is blocked until cancelled.
    task_waiting: bool = False
    #: The terminal message the runtime must send / has sent: (type, state).
    terminal: tuple[str, str] | None = None
    terminal_delivered: bool = False
    terminal_api_failed: bool = False
    #: None while the runtime must keep running; else the exit codes allowed.
    exit_codes: frozenset[int] | None = None
    #: The state the task *meant* to end in (what a well-behaved supervisor records).
    intended: str | None = None
    #: True once the supervisor misbehaved (closed, broke the stream, never answered):
    #: the intended state may then legitimately be lost.
    disturbed: bool = False
    #: Log tokens that must arrive, in order; tokens that must not.
    must_log: list[str] = field(default_factory=list)
    must_not_log: set[str] = field(default_factory=set)
    #: Tokens of failures that must be logged at error with an ``exception`` field (§9.3).
    must_log_failure: list[str] = field(default_factory=list)
    #: Tokens that must appear in some error-level record (the trigger's traceback, §9.7).
    must_log_error: list[str] = field(default_factory=list)
    #: The channel broke while the runtime ran and the logs channel was open: it must say
    #: why it stops with an error-level record (fail closed with a clear log line, §10).
    must_explain: bool = False
    #: A field of a refused StartupDetails that an error-level record must name.
    must_name: str | None = None
    logs_open: bool = True
    _next_step: int = 0
    _clear_left: deque[str] = field(default_factory=deque)
    _trigger_token: str = ""

    # -- the supervisor's first frame ---------------------------------------------------

    def first_frame(self, kind: FirstFrame, names: str | None = None) -> None:
        """The supervisor opened the conversation with ``kind``.

        ``names``: for ``INVALID_STARTUP``, the field an error record must name (§4.1).
        """
        if kind is FirstFrame.EOF:
            self.conv.closed()
            self._end(frozenset({1}))
            self.disturbed = True
            return
        if kind in (FirstFrame.INVALID_STARTUP, FirstFrame.OTHER_TYPE, FirstFrame.ERROR_ELEMENT):
            # §4 and §4.1: log an error, send nothing, exit non-zero.
            if kind is FirstFrame.INVALID_STARTUP and LEVELS["error"] >= log_threshold(
                "", self.global_level, self.namespace_levels
            ):
                self.must_name = names
            self.conv.first_frame(ok=False)
            self._end(frozenset({1}))
            self.disturbed = True
            return
        self.conv.first_frame(ok=True)
        if kind is FirstFrame.UNKNOWN_TASK:
            # The DAG file and the bundle drifted: the try fails (not removed, which
            # would let the run succeed), without touching XComs.
            self.intended = "failed"
            self._owe_terminal("TaskState", "failed")
            return
        self._clear_left = deque(self.xcom_keys_to_clear)
        self._next_clear_or_start()

    def _next_clear_or_start(self) -> None:
        if self._clear_left:
            self._clear_left.popleft()
            self.owed.append(Expected("clear", "DeleteXCom"))
        elif self.trigger_failed:
            # §9.7: the trigger failed; the body never runs. The native runner raises
            # TaskDeferralError / TaskDeferralTimeout, ordinary errors, so the server's
            # should_retry decides like for any failure; the traceback must be logged.
            if self.logs_open and LEVELS["error"] >= log_threshold(
                "", self.global_level, self.namespace_levels
            ):
                self.must_log_error.append(self._trigger_token)
            self._fail_terminal()
        elif self.reschedule_lookup:
            self.reschedule_lookup = False
            self.owed.append(Expected("reschedule_start", "GetTaskRescheduleStartDate"))
        else:
            self.task_running = True

    def resumed_after_trigger_failure(self, token: str) -> None:
        """Before the first frame: this try resumes with ``next_method == "__fail__"`` and
        a traceback carrying ``token``, which must reach the logs at error level."""
        self.trigger_failed = True
        self._trigger_token = token

    # -- the task -----------------------------------------------------------------------

    @property
    def can_step(self) -> bool:
        """The task takes script steps now (running, not blocked forever)."""
        return self.task_running and not self.task_waiting and self.exit_codes is None

    @property
    def can_finish(self) -> bool:
        """The task may return or raise now (no call of its own is in flight)."""
        return self.can_step and not self.open_steps

    def task_call(self, method: str, *, has_default: bool = False) -> int:
        """The task starts a client call; returns its step number."""
        step = self._next_step
        self._next_step += 1
        has_default = has_default or method in DEFAULTING_CALLS
        self.owed.append(Expected("call", CLIENT_CALLS[method], step=step, has_default=has_default))
        self.open_steps.add(step)
        return step

    def task_log(self, token: str, level: str, logger: str) -> None:
        """The task logs one record whose message carries ``token``."""
        if LEVELS[level] < log_threshold(logger, self.global_level, self.namespace_levels):
            self.must_not_log.add(token)
        elif self.logs_open:
            self.must_log.append(token)

    def task_returns(self, has_value: bool) -> None:
        """The task body returns (a value other than None when ``has_value``)."""
        self.task_running = False
        self.intended = "success"
        if has_value:
            self.owed.append(Expected("push", "SetXCom"))  # §9.4: before the terminal
        else:
            self._owe_terminal("SucceedTask", "success")

    def task_returns_unsendable(self) -> None:
        """The task body returns a value that cannot be sent: a reference cycle, an item
        with no JSON form, NaN, nesting deeper than 254, or more bytes than one frame.

        Nothing of it is pushed (every XCom is checked before the first is sent) and the
        try fails like an error: ``RetryTask`` or ``TaskState(failed)`` by should_retry.
        """
        self.task_running = False
        self._fail_terminal()

    def task_raises(self, kind: RaiseKind, token: str) -> None:
        """The task body raises; ``token`` is in the exception's message."""
        self.task_running = False
        if kind is RaiseKind.SKIP:
            self.intended = "skipped"
            self._owe_terminal("TaskState", "skipped")
            return
        if self.logs_open and LEVELS["error"] >= log_threshold(
            "", self.global_level, self.namespace_levels
        ):
            self.must_log_failure.append(token)
        if kind is RaiseKind.FAIL:
            self.intended = "failed"
            self._owe_terminal("TaskState", "failed")
        else:
            self._fail_terminal()

    def task_branches(self, skips: bool) -> None:
        """A branch task returns the ids to follow; ``skips``: some direct downstream task
        is left out.

        §5.7 and §6.2 give the wire: ``SkipDownstreamTasks`` (not terminal), then
        ``SucceedTask``. The native runner (SkipMixin) first records its decision in the
        ``skipmixin_key`` XCom (always, for the scheduler's "not previously skipped"
        rule), and when it skips it does not push ``return_value``. A mapped instance
        records the XCom but never sends the skip, and then pushes ``return_value``.

        An error reply to the XCom push or to ``SkipDownstreamTasks`` (an error element,
        a timeout) is, in the native runner, an exception raised out of the operator's
        ``execute``: an ordinary failure, so ``RetryTask`` or ``TaskState(failed)`` by
        should_retry (§6.2 rows 4-5), never success. Tasks already skipped stay skipped:
        the model only requires the try not to claim success.
        """
        self.task_running = False
        self.intended = "success"
        sends_skip = skips and self.map_index < 0
        self.owed.append(Expected("skipmixin", "SetXCom", state="skip" if sends_skip else "push"))

    def task_pokes(self, done: bool) -> None:
        """A reschedule-mode sensor's poke returns: done (truthy) or not yet.

        Done: ``SucceedTask`` (a plain truthy result pushes nothing). Not done:
        ``RescheduleTask`` (§6.2), state ``up_for_reschedule`` (§5.7, §7).
        """
        self.task_running = False
        if done:
            self.intended = "success"
            self._owe_terminal("SucceedTask", "success")
        else:
            self.intended = "up_for_reschedule"
            self._owe_terminal("RescheduleTask", "up_for_reschedule")

    def task_defers(self) -> None:
        """The task raises a deferral: ``DeferTask``, state ``deferred`` (§5.7, §6.2)."""
        self.task_running = False
        self.intended = "deferred"
        self._owe_terminal("DeferTask", "deferred")

    def task_waits(self) -> None:
        """The task blocks until it is cancelled."""
        self.task_waiting = True

    def _fail_terminal(self) -> None:
        # §6.2, §9.3: the server's should_retry decides; the runtime never second-guesses.
        if self.should_retry:
            self.intended = "up_for_retry"
            self._owe_terminal("RetryTask", "up_for_retry")
        else:
            self.intended = "failed"
            self._owe_terminal("TaskState", "failed")

    def _owe_terminal(self, request_type: str, state: str) -> None:
        self.terminal = (request_type, state)
        self.owed.append(Expected("terminal", request_type, state=state))

    # -- the wire -----------------------------------------------------------------------

    def saw_request(self, request_id: object, request_type: object) -> Expected:
        """The runtime sent a request; raises :class:`ModelViolation` if it was not owed."""
        self.conv.runtime_sent(request_id, request_type)
        if not self.owed:
            raise ModelViolation(f"runtime sent {request_type} (id {request_id}) unprompted")
        want = self.owed[0]
        if want.request_type != request_type:
            raise ModelViolation(
                f"runtime sent {request_type} (id {request_id}); "
                f"the model expected {want.request_type} ({want.purpose})"
            )
        self.owed.popleft()
        assert type(request_id) is int
        want.sent_at = self.now
        self.in_flight[request_id] = want
        return want

    def answer(self, request_id: int, answer: Answer) -> str:
        """The supervisor answers ``request_id``; returns what the conversation made of it."""
        verdict = self.conv.supervisor_replied(request_id)
        want = self.in_flight.pop(request_id, None)
        if verdict not in ("reply", "terminal") or want is None:
            return verdict
        if answer.kind is not AnswerKind.RESULT:
            self.disturbed = True
        if want.purpose == "terminal":
            self.terminal_delivered = True
            self.terminal_api_failed = answer.kind is AnswerKind.ERROR_ELEMENT
            self._end(frozenset({0}))
            return verdict
        out = outcome_of(want.request_type, answer, has_default=want.has_default)
        self._resolve(want, frozenset({out}))
        return verdict

    def _resolve(self, want: Expected, allowed: frozenset[Outcome]) -> None:
        if want.purpose == "call":
            assert want.step is not None
            self.outcomes[want.step] = allowed
            self.open_steps.discard(want.step)
        elif want.purpose == "push":
            if allowed == {Outcome.VALUE}:
                self._owe_terminal("SucceedTask", "success")
            else:  # §9.4: a failed push fails the task
                self._fail_terminal()
        elif want.purpose == "skipmixin":
            if allowed != {Outcome.VALUE}:
                self._fail_terminal()
            elif want.state == "skip":
                self.owed.append(Expected("skip", "SkipDownstreamTasks"))
            else:
                self.owed.append(Expected("push", "SetXCom"))
        elif want.purpose == "skip":
            if allowed == {Outcome.VALUE}:
                self._owe_terminal("SucceedTask", "success")
            else:
                self._fail_terminal()
        elif want.purpose == "reschedule_start":
            if allowed == {Outcome.VALUE}:
                self.task_running = True
            else:  # the client call raises before the first poke: an ordinary failure
                self._fail_terminal()
        elif want.purpose == "clear":
            if allowed == {Outcome.VALUE}:
                self._next_clear_or_start()
            else:  # §9.2 (newest Go): a failed deletion fails the try, the body never runs
                self._clear_left.clear()
                self._fail_terminal()

    def time_passes(self, seconds: float) -> None:
        """Virtual time moves on; requests past their timeout give up (§6.1, DECISIONS.md)."""
        self.now += seconds
        if self.exit_codes is not None:
            return
        for rid, want in list(self.in_flight.items()):
            assert want.sent_at is not None
            if want.purpose == "terminal":
                if self.now - want.sent_at >= self.terminal_timeout:
                    self.disturbed = True
                    self.conv.forget(rid)
                    del self.in_flight[rid]
                    self._end_undelivered()
            elif self.now - want.sent_at >= self.request_timeout:
                self.disturbed = True
                self.conv.forget(rid)
                del self.in_flight[rid]
                self._resolve(want, frozenset({Outcome.TIMEOUT}))

    def close_comm(self) -> None:
        """The supervisor closes the comm channel (EOF for the runtime, §12 row 32)."""
        self._channel_lost(frozenset({Outcome.GONE, Outcome.CANCELLED}))
        self.conv.closed()

    def break_stream(self) -> None:
        """The supervisor sends bytes that are not a frame: the runtime fails closed."""
        self._channel_lost(frozenset({Outcome.GONE, Outcome.BAD_REPLY, Outcome.CANCELLED}))
        self.conv.broken()

    def _channel_lost(self, allowed: frozenset[Outcome]) -> None:
        if self.exit_codes is not None:
            return
        self.disturbed = True
        self.must_explain = self.logs_open and LEVELS["error"] >= log_threshold(
            "", self.global_level, self.namespace_levels
        )
        for step in self.open_steps:
            self.outcomes[step] = allowed
        self.open_steps.clear()
        self.task_running = False
        self.owed.clear()
        self.in_flight.clear()
        if self.conv.phase is Phase.TERMINAL_SENT:
            self._end_undelivered()
        else:
            self.terminal = None
            self._end(frozenset({1}))

    def close_logs(self) -> None:
        """The supervisor closes the logs channel: later records may be lost (§12 row 31)."""
        self.logs_open = False

    def _end_undelivered(self) -> None:
        assert self.terminal is not None
        code = expected_exit_code(terminal_state=self.terminal[1], delivered=False)
        self._end(frozenset({code}))

    def _end(self, codes: frozenset[int]) -> None:
        if self.exit_codes is None:
            self.exit_codes = codes
            self.task_running = False
            self.task_waiting = False

    # -- verdicts -----------------------------------------------------------------------

    def final_state(self, exit_code: int) -> FinalState:
        """What the supervisor derives from this run ending with ``exit_code``."""
        t_type, t_state = self.terminal if self.terminal else (None, None)
        return derive_final_state(
            exit_code=exit_code,
            terminal_type=t_type if self.terminal_delivered else None,
            terminal_state=t_state if self.terminal_delivered else None,
            api_failed=self.terminal_api_failed,
            should_retry=self.should_retry,
        )

    def log_order_ok(self, received: Iterable[str]) -> str | None:
        """None if the model tokens received so far are consistent; else why not."""
        seen: list[str] = []
        for token in received:
            if token in self.must_not_log:
                return f"record {token} was below the level threshold but was sent"
            if token in seen:
                return f"record {token} arrived twice"
            seen.append(token)
        order = {t: i for i, t in enumerate(self.must_log)}
        ranks = [order[t] for t in seen if t in order]
        if ranks != sorted(ranks):
            return f"records arrived out of order: {seen}"
        return None
