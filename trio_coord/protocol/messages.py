"""Every message body of the coordinator protocol, as frozen typed classes.

Theory of operation
-------------------
A body on the wire is a map whose ``"type"`` key names its class (protocol.md §3.3).
Each class below is a keyword-only frozen dataclass whose annotations are its schema
(see ``fields.py``); the class name is the ``type`` tag. Two registries map tags to
classes, one per direction:

* :data:`REQUESTS` - what the runtime sends (``ToSupervisor``, 55 types in schema
  ``2026-06-16``, plus ``DagFileParsingResult`` for the parse workload);
* :data:`INBOUND` - what the supervisor sends (``StartupDetails``,
  ``DagFileParseRequest`` and every reply body, ``ToTask``).

Outgoing: :func:`encode_body` validates and returns the map (all fields present,
explicit ``None`` included, because the supervisor re-validates and forwards explicit
nulls, §5.7). Incoming: :func:`decode_body` dispatches on ``type`` and names the field
that is wrong. Unknown keys are ignored; unknown ``type`` tags are errors.

Each request class declares ``RESULT``: the body classes a successful reply may carry
(``()`` means the empty reply ``[id, nil, nil]``). ``ErrorResponse`` may always come
back in the body as well (§3.7); the conversation layer enforces both.

Field defaults mirror the 1.3.2 models, so a field without a default is one the
supervisor requires. Date-times are aware ``datetime`` values; UUIDs are strings;
durations are seconds. The few fields that deliberately differ (never-null outlet
lists and kwargs maps, §5.7) are listed in ``tests/test_messages_real.py``, which
checks every other field against the real models.

The nested models (``TaskInstance``, ``DagRun``...) live in ``models.py`` and are
re-exported here. Where the real class extends an API model (``AssetResult`` is an
``AssetResponse``), ours extends the same nested model. ``CreateHITLDetailPayload``
is in both 1.3.2 unions, so it is in both registries.
"""

from __future__ import annotations

import datetime
from dataclasses import field
from typing import Any, ClassVar, Literal

from ..errors import LocalProtocolError, RemoteProtocolError, describe
from .fields import AnyValue, JsonValue, LaxDatetime, Model, Seconds, UUIDStr

# Every nested model is public here too: the star import re-exports models.__all__.
from .models import *  # noqa: F403
from .models import (
    AssetEventResponse,
    AssetProfile,
    AssetResponse,
    BundleInfo,
    ConnectionEntry,
    DagRun,
    DagRunState,
    DagWarning,
    ErrorType,
    HITLDetailRequest,
    PreviousTIResponse,
    SerializedDag,
    TaskInstance,
    TaskInstanceState,
    TIRunContext,
    VariableEntry,
    _frozen,
)


class Inbound(Model):
    """A body the supervisor sends: the first frame or a reply body."""

    __slots__ = ()


class Request(Model):
    """A body the runtime sends. ``TERMINAL`` requests end the conversation (§6.1)."""

    __slots__ = ()

    #: Body classes a successful reply carries; () means the empty reply ``[id, nil, nil]``.
    RESULT: ClassVar[tuple[type[Inbound], ...]] = ()
    #: True for the six messages that end a run: exactly one is sent, last.
    TERMINAL: ClassVar[bool] = False


# == supervisor -> runtime ===============================================================
# Reply bodies are listed before the requests so each request can name its RESULT.

# -- first frames (§4) -------------------------------------------------------------------


@_frozen
class StartupDetails(Inbound):
    TYPE = "StartupDetails"
    ti: TaskInstance
    dag_rel_path: str
    bundle_info: BundleInfo
    start_date: LaxDatetime  # a plain datetime in 1.3.2: the one date-time that may be naive
    ti_context: TIRunContext
    sentry_integration: str

    def __post_init__(self) -> None:
        # §4.1: Go rejects a first frame that cannot name a task try; so do we.
        ti = self.ti
        for name in ("id", "dag_id", "task_id", "run_id"):
            if not getattr(ti, name):
                raise ValueError(f"ti.{name} is empty")
        if ti.try_number < 1:
            raise ValueError(f"ti.try_number is {ti.try_number}, must be >= 1")


@_frozen
class DagFileParseRequest(Inbound):
    TYPE = "DagFileParseRequest"
    file: str
    bundle_path: str
    bundle_name: str
    # DagCallbackRequest / TaskCallbackRequest / EmailRequest maps, tagged by "type".
    callback_requests: list[dict[str, AnyValue]] = field(default_factory=list)


# -- generic replies (§3.7) --------------------------------------------------------------


@_frozen
class ErrorResponse(Inbound):
    TYPE = "ErrorResponse"
    error: ErrorType = "GENERIC_ERROR"
    detail: dict[str, AnyValue] | None = None


@_frozen
class OKResponse(Inbound):
    TYPE = "OKResponse"
    ok: bool


@_frozen
class SentFDs(Inbound):
    TYPE = "SentFDs"
    fds: list[int]


# -- connections, variables (§5.1) -------------------------------------------------------


@_frozen
class ConnectionResult(ConnectionEntry, Inbound):
    TYPE = "ConnectionResult"


@_frozen
class VariableResult(VariableEntry, Inbound):
    TYPE = "VariableResult"


@_frozen
class VariableKeysResult(Inbound):
    TYPE = "VariableKeysResult"
    keys: list[str]
    total_entries: int


# -- XCom (§5.2) -------------------------------------------------------------------------


@_frozen
class XComResult(Inbound):
    TYPE = "XComResult"
    key: str
    # Required, and null when the XCom does not exist (§12 row 12).
    value: JsonValue


@_frozen
class XComCountResponse(Inbound):
    TYPE = "XComCountResponse"
    len: int


@_frozen
class XComSequenceIndexResult(Inbound):
    TYPE = "XComSequenceIndexResult"
    root: JsonValue


@_frozen
class XComSequenceSliceResult(Inbound):
    TYPE = "XComSequenceSliceResult"
    root: list[JsonValue]


# -- state stores (§5.3) -----------------------------------------------------------------


@_frozen
class TaskStateStoreResult(Inbound):
    TYPE = "TaskStateStoreResult"
    value: JsonValue


@_frozen
class AssetStateStoreResult(Inbound):
    TYPE = "AssetStateStoreResult"
    value: JsonValue


# -- assets (§5.4) -----------------------------------------------------------------------


@_frozen
class AssetResult(AssetResponse, Inbound):
    TYPE = "AssetResult"


@_frozen
class AssetsByAliasResult(Inbound):
    TYPE = "AssetsByAliasResult"
    assets: list[AssetResult]


@_frozen
class AssetEventsResult(Inbound):
    TYPE = "AssetEventsResult"
    asset_events: list[AssetEventResponse]


@_frozen
class InactiveAssetsResult(Inbound):
    TYPE = "InactiveAssetsResult"
    inactive_assets: list[AssetProfile] | None = None


# -- DAGs, runs, task instances (§5.5) ---------------------------------------------------


@_frozen
class DagResult(Inbound):
    TYPE = "DagResult"
    dag_id: str
    is_paused: bool
    bundle_name: str | None
    bundle_version: str | None
    relative_fileloc: str | None
    owners: str | None
    tags: list[str]
    next_dagrun: datetime.datetime | None


@_frozen
class DagRunResult(DagRun, Inbound):
    TYPE = "DagRunResult"


@_frozen
class DagRunStateResult(Inbound):
    TYPE = "DagRunStateResult"
    state: DagRunState


@_frozen
class DRCount(Inbound):
    TYPE = "DRCount"
    count: int


@_frozen
class PreviousDagRunResult(Inbound):
    TYPE = "PreviousDagRunResult"
    dag_run: DagRun | None = None


@_frozen
class PrevSuccessfulDagRunResult(Inbound):
    TYPE = "PrevSuccessfulDagRunResult"
    data_interval_start: datetime.datetime | None = None
    data_interval_end: datetime.datetime | None = None
    start_date: datetime.datetime | None = None
    end_date: datetime.datetime | None = None


@_frozen
class PreviousTIResult(Inbound):
    TYPE = "PreviousTIResult"
    task_instance: PreviousTIResponse | None = None


@_frozen
class TaskRescheduleStartDate(Inbound):
    TYPE = "TaskRescheduleStartDate"
    start_date: datetime.datetime | None


@_frozen
class TICount(Inbound):
    TYPE = "TICount"
    count: int


@_frozen
class TaskStatesResult(Inbound):
    TYPE = "TaskStatesResult"
    task_states: dict[str, AnyValue]


@_frozen
class TaskBreadcrumbsResult(Inbound):
    TYPE = "TaskBreadcrumbsResult"
    breadcrumbs: list[dict[str, AnyValue]]


# -- human in the loop (§5.6) ------------------------------------------------------------


@_frozen
class HITLDetailRequestResult(HITLDetailRequest, Inbound):
    TYPE = "HITLDetailRequestResult"


# == runtime -> supervisor: requests (§5, ToSupervisor) ==================================

# -- connections, variables (§5.1) -------------------------------------------------------


@_frozen
class GetConnection(Request):
    TYPE = "GetConnection"
    RESULT = (ConnectionResult,)
    conn_id: str


@_frozen
class GetVariable(Request):
    TYPE = "GetVariable"
    RESULT = (VariableResult,)
    key: str


@_frozen
class GetVariableKeys(Request):
    TYPE = "GetVariableKeys"
    RESULT = (VariableKeysResult,)
    prefix: str | None = None
    limit: int = 1000
    offset: int = 0


@_frozen
class PutVariable(Request):
    TYPE = "PutVariable"
    key: str
    value: str | None
    description: str | None


@_frozen
class DeleteVariable(Request):
    TYPE = "DeleteVariable"
    RESULT = (OKResponse,)
    key: str


# -- XCom (§5.2) -------------------------------------------------------------------------


@_frozen
class _XComAddress(Model):
    """The four fields that name an XCom, shared by every XCom request."""

    key: str
    dag_id: str
    run_id: str
    task_id: str


@_frozen
class GetXCom(_XComAddress, Request):
    TYPE = "GetXCom"
    RESULT = (XComResult,)
    map_index: int | None = None
    include_prior_dates: bool = False


@_frozen
class GetXComCount(_XComAddress, Request):
    TYPE = "GetXComCount"
    RESULT = (XComCountResponse,)


@_frozen
class GetXComSequenceItem(_XComAddress, Request):
    TYPE = "GetXComSequenceItem"
    RESULT = (XComSequenceIndexResult,)
    offset: int


@_frozen
class GetXComSequenceSlice(_XComAddress, Request):
    TYPE = "GetXComSequenceSlice"
    RESULT = (XComSequenceSliceResult,)
    start: int | None
    stop: int | None
    step: int | None
    include_prior_dates: bool = False


@_frozen
class SetXCom(_XComAddress, Request):
    TYPE = "SetXCom"
    value: JsonValue
    map_index: int | None = None
    dag_result: bool = False
    mapped_length: int | None = None


@_frozen
class DeleteXCom(_XComAddress, Request):
    TYPE = "DeleteXCom"
    map_index: int | None = None


# -- task / asset state stores (§5.3) ----------------------------------------------------


@_frozen
class GetTaskStateStore(Request):
    TYPE = "GetTaskStateStore"
    RESULT = (TaskStateStoreResult,)
    ti_id: UUIDStr
    key: str


@_frozen
class SetTaskStateStore(Request):
    TYPE = "SetTaskStateStore"
    RESULT = (OKResponse,)
    ti_id: UUIDStr
    key: str
    value: JsonValue
    expires_at: datetime.datetime | None


@_frozen
class DeleteTaskStateStore(Request):
    TYPE = "DeleteTaskStateStore"
    RESULT = (OKResponse,)
    ti_id: UUIDStr
    key: str


@_frozen
class ClearTaskStateStore(Request):
    TYPE = "ClearTaskStateStore"
    RESULT = (OKResponse,)
    ti_id: UUIDStr


@_frozen
class GetAssetStateStoreByName(Request):
    TYPE = "GetAssetStateStoreByName"
    RESULT = (AssetStateStoreResult,)
    name: str
    key: str


@_frozen
class GetAssetStateStoreByUri(Request):
    TYPE = "GetAssetStateStoreByUri"
    RESULT = (AssetStateStoreResult,)
    uri: str
    key: str


@_frozen
class SetAssetStateStoreByName(Request):
    TYPE = "SetAssetStateStoreByName"
    RESULT = (OKResponse,)
    name: str
    key: str
    value: JsonValue


@_frozen
class SetAssetStateStoreByUri(Request):
    TYPE = "SetAssetStateStoreByUri"
    RESULT = (OKResponse,)
    uri: str
    key: str
    value: JsonValue


@_frozen
class DeleteAssetStateStoreByName(Request):
    TYPE = "DeleteAssetStateStoreByName"
    RESULT = (OKResponse,)
    name: str
    key: str


@_frozen
class DeleteAssetStateStoreByUri(Request):
    TYPE = "DeleteAssetStateStoreByUri"
    RESULT = (OKResponse,)
    uri: str
    key: str


@_frozen
class ClearAssetStateStoreByName(Request):
    TYPE = "ClearAssetStateStoreByName"
    RESULT = (OKResponse,)
    name: str


@_frozen
class ClearAssetStateStoreByUri(Request):
    TYPE = "ClearAssetStateStoreByUri"
    RESULT = (OKResponse,)
    uri: str


# -- assets (§5.4) -----------------------------------------------------------------------


@_frozen
class GetAssetByName(Request):
    TYPE = "GetAssetByName"
    RESULT = (AssetResult,)
    name: str


@_frozen
class GetAssetByUri(Request):
    TYPE = "GetAssetByUri"
    RESULT = (AssetResult,)
    uri: str


@_frozen
class GetAssetsByAlias(Request):
    TYPE = "GetAssetsByAlias"
    RESULT = (AssetsByAliasResult,)
    alias_name: str


@_frozen
class _AssetEventFilter(Model):
    """The time window and order of an asset-event query."""

    after: datetime.datetime | None = None
    before: datetime.datetime | None = None
    limit: int | None = None
    ascending: bool = True


@_frozen
class GetAssetEventByAsset(_AssetEventFilter, Request):
    TYPE = "GetAssetEventByAsset"
    RESULT = (AssetEventsResult,)
    name: str | None
    uri: str | None


@_frozen
class GetAssetEventByAssetAlias(_AssetEventFilter, Request):
    TYPE = "GetAssetEventByAssetAlias"
    RESULT = (AssetEventsResult,)
    alias_name: str


@_frozen
class ValidateInletsAndOutlets(Request):
    TYPE = "ValidateInletsAndOutlets"
    RESULT = (InactiveAssetsResult,)
    ti_id: UUIDStr


# -- DAGs, runs, task instances (§5.5) ---------------------------------------------------


@_frozen
class GetDag(Request):
    TYPE = "GetDag"
    RESULT = (DagResult,)
    dag_id: str


@_frozen
class GetDagRun(Request):
    TYPE = "GetDagRun"
    RESULT = (DagRunResult,)
    dag_id: str
    run_id: str


@_frozen
class GetDagRunState(Request):
    TYPE = "GetDagRunState"
    RESULT = (DagRunStateResult,)
    dag_id: str
    run_id: str


@_frozen
class GetDRCount(Request):
    TYPE = "GetDRCount"
    RESULT = (DRCount,)
    dag_id: str
    logical_dates: list[datetime.datetime] | None = None
    run_ids: list[str] | None = None
    states: list[str] | None = None


@_frozen
class GetPreviousDagRun(Request):
    TYPE = "GetPreviousDagRun"
    RESULT = (PreviousDagRunResult,)
    dag_id: str
    logical_date: datetime.datetime
    state: str | None = None


@_frozen
class GetPrevSuccessfulDagRun(Request):
    TYPE = "GetPrevSuccessfulDagRun"
    RESULT = (PrevSuccessfulDagRunResult,)
    # Ignored by 1.3.2: the supervisor always asks about the TI it supervises (§5.5).
    ti_id: UUIDStr


@_frozen
class GetPreviousTI(Request):
    TYPE = "GetPreviousTI"
    RESULT = (PreviousTIResult,)
    dag_id: str
    task_id: str
    logical_date: datetime.datetime | None = None
    map_index: int = -1
    state: TaskInstanceState | None = None


@_frozen
class GetTaskRescheduleStartDate(Request):
    TYPE = "GetTaskRescheduleStartDate"
    RESULT = (TaskRescheduleStartDate,)
    ti_id: UUIDStr
    try_number: int = 1


@_frozen
class _TaskInstanceQuery(Model):
    """The filters GetTICount and GetTaskStates share."""

    dag_id: str
    map_index: int | None = None
    task_ids: list[str] | None = None
    task_group_id: str | None = None
    logical_dates: list[datetime.datetime] | None = None
    run_ids: list[str] | None = None


@_frozen
class GetTICount(_TaskInstanceQuery, Request):
    TYPE = "GetTICount"
    RESULT = (TICount,)
    states: list[str] | None = None


@_frozen
class GetTaskStates(_TaskInstanceQuery, Request):
    TYPE = "GetTaskStates"
    RESULT = (TaskStatesResult,)


@_frozen
class GetTaskBreadcrumbs(Request):
    TYPE = "GetTaskBreadcrumbs"
    RESULT = (TaskBreadcrumbsResult,)
    dag_id: str
    run_id: str


@_frozen
class TriggerDagRun(Request):
    TYPE = "TriggerDagRun"
    # An existing run without reset_dag_run: ErrorResponse DAGRUN_ALREADY_EXISTS as the body.
    RESULT = (OKResponse,)
    dag_id: str
    run_id: str
    logical_date: datetime.datetime | None = None
    run_after: datetime.datetime | None = None
    conf: dict[str, JsonValue] | None = None
    reset_dag_run: bool | None = False
    # Accepted but not forwarded to the API by 1.3.2.
    partition_key: str | None = None
    note: str | None = None


# -- rendering, masking, logging, HITL (§5.6) --------------------------------------------


@_frozen
class SetRenderedFields(Request):
    TYPE = "SetRenderedFields"
    rendered_fields: dict[str, JsonValue]


@_frozen
class SetRenderedMapIndex(Request):
    TYPE = "SetRenderedMapIndex"
    rendered_map_index: str

    def __post_init__(self) -> None:
        if not self.rendered_map_index:
            # §5.6: an empty label gets HTTP 422 from the API.
            raise LocalProtocolError("SetRenderedMapIndex.rendered_map_index must not be empty")


@_frozen
class MaskSecret(Request):
    TYPE = "MaskSecret"
    value: JsonValue
    name: str | None = None


@_frozen
class ResendLoggingFD(Request):
    """Meaningless over TCP (§12 row 10); here only because the union has it."""

    TYPE = "ResendLoggingFD"
    RESULT = (SentFDs,)


@_frozen
class CreateHITLDetailPayload(HITLDetailRequest, Request, Inbound):
    """A request that is also a member of ``ToTask`` in 1.3.2, so it is in both registries."""

    TYPE = "CreateHITLDetailPayload"
    RESULT = (HITLDetailRequestResult,)


@_frozen
class UpdateHITLDetail(Request):
    """1.3.2 answers with the error element "Unhandled request" (§12 row 9)."""

    TYPE = "UpdateHITLDetail"
    ti_id: UUIDStr
    chosen_options: list[str]
    params_input: dict[str, JsonValue] | None = None

    def __post_init__(self) -> None:
        if not self.chosen_options:
            # pydantic min_length=1: the supervisor would drop the request unanswered.
            raise LocalProtocolError("UpdateHITLDetail.chosen_options must not be empty")


@_frozen
class GetHITLDetailResponse(Request):
    """1.3.2 answers with the error element "Unhandled request" (§12 row 9)."""

    TYPE = "GetHITLDetailResponse"
    ti_id: UUIDStr


# -- state-changing and terminal requests (§5.7, §6) -------------------------------------


@_frozen
class SucceedTask(Request):
    TYPE = "SucceedTask"
    TERMINAL = True
    end_date: datetime.datetime
    # §5.7: null outlets get HTTP 422 and the TI never leaves RUNNING; lists only.
    task_outlets: list[AssetProfile] = field(default_factory=list)
    outlet_events: list[dict[str, JsonValue]] = field(default_factory=list)
    rendered_map_index: str | None = None
    state: Literal["success"] = "success"


@_frozen
class TaskState(Request):
    TYPE = "TaskState"
    TERMINAL = True
    state: Literal["failed", "skipped", "removed"]
    end_date: datetime.datetime | None = None
    rendered_map_index: str | None = None


@_frozen
class RetryTask(Request):
    TYPE = "RetryTask"
    TERMINAL = True
    end_date: datetime.datetime
    rendered_map_index: str | None = None
    retry_delay_seconds: float | None = None
    retry_reason: str | None = None
    state: Literal["up_for_retry"] = "up_for_retry"

    def __post_init__(self) -> None:
        if self.retry_reason is not None and len(self.retry_reason) > 500:
            # The server truncates at 500; do it here so what we log is what is stored.
            object.__setattr__(self, "retry_reason", self.retry_reason[:500])


@_frozen
class DeferTask(Request):
    TYPE = "DeferTask"
    TERMINAL = True
    classpath: str
    # §5.7: null kwargs are forwarded and rejected by the API; a map (or a string) only.
    trigger_kwargs: dict[str, JsonValue] | str = field(default_factory=dict)
    trigger_timeout: Seconds | None = None
    queue: str | None = None
    next_method: str
    next_kwargs: dict[str, JsonValue] = field(default_factory=dict)
    rendered_map_index: str | None = None
    state: Literal["deferred"] = "deferred"


@_frozen
class RescheduleTask(Request):
    TYPE = "RescheduleTask"
    TERMINAL = True
    reschedule_date: datetime.datetime
    end_date: datetime.datetime
    state: Literal["up_for_reschedule"] = "up_for_reschedule"


@_frozen
class AwaitInputTask(Request):
    TYPE = "AwaitInputTask"
    TERMINAL = True
    next_method: str
    next_kwargs: dict[str, JsonValue] = field(default_factory=dict)
    timeout: Seconds | None = None
    rendered_map_index: str | None = None
    state: Literal["awaiting_input"] = "awaiting_input"


@_frozen
class SkipDownstreamTasks(Request):
    """Not terminal: follow it with ``SucceedTask`` (§5.7)."""

    TYPE = "SkipDownstreamTasks"
    # A task id, or (task id, map index) for one mapped instance.
    tasks: list[str | tuple[str, int]]


# -- the parse workload (dag-parsing.md §2.3) --------------------------------------------


@_frozen
class DagFileParsingResult(Request):
    """The one answer to a DagFileParseRequest; not in ToSupervisor but in ToManager."""

    TYPE = "DagFileParsingResult"
    fileloc: str
    # Never null (rejected, dag-parsing.md §2.3); [] when the file failed to import.
    serialized_dags: list[SerializedDag]
    warnings: list[DagWarning] | None = None
    # Path relative to the bundle root -> message / traceback.
    import_errors: dict[str, str] | None = None


# -- registries --------------------------------------------------------------------------


def _registry(base: type[Model]) -> dict[str, type[Any]]:
    found = {
        cls.TYPE: cls
        for cls in globals().values()
        if isinstance(cls, type) and issubclass(cls, base) and cls.TYPE is not None
    }
    return dict(sorted(found.items()))


#: ``type`` tag -> class, for every body the runtime may send.
REQUESTS: dict[str, type[Request]] = _registry(Request)
#: ``type`` tag -> class, for every body the supervisor may send.
INBOUND: dict[str, type[Inbound]] = _registry(Inbound)
#: The six tags that end a run (§6.1).
TERMINAL_TYPES: frozenset[str] = frozenset(t for t, c in REQUESTS.items() if c.TERMINAL)


def encode_body(msg: Request) -> dict[str, Any]:
    """Validate an outgoing request and return its wire map.

    Raises:
        LocalProtocolError: the message is not one the supervisor would accept.
    """
    if not isinstance(msg, Request) or msg.TYPE not in REQUESTS:
        raise LocalProtocolError(f"{type(msg).__name__} is not a request the supervisor knows")
    return msg.to_map()


def decode_body(data: Any, *, path: str = "body") -> Inbound:
    """Turn a decoded wire map from the supervisor into its message class.

    Raises:
        RemoteProtocolError: not a map, unknown or missing ``type``, or a bad field.
    """
    if type(data) is not dict:
        raise RemoteProtocolError(f"{path}: expected a map, got {type(data).__name__}")
    tag = data.get("type")
    cls = INBOUND.get(tag) if type(tag) is str else None
    if cls is None:
        raise RemoteProtocolError(f"{path}: unknown message type {describe(tag)}")
    result: Inbound = cls.from_map(data, tag)
    return result
