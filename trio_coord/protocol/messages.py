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
supervisor requires. Date-times are aware ``datetime`` values; UUIDs are strings.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeAlias

from ..errors import LocalProtocolError, RemoteProtocolError
from .fields import JsonValue, Model

# -- enumerations (Appendix A) -----------------------------------------------------------

TaskInstanceState: TypeAlias = Literal[
    "removed",
    "scheduled",
    "queued",
    "running",
    "success",
    "restarting",
    "failed",
    "up_for_retry",
    "up_for_reschedule",
    "upstream_failed",
    "skipped",
    "deferred",
    "awaiting_input",
]
DagRunState: TypeAlias = Literal["queued", "running", "success", "failed"]
DagRunType: TypeAlias = Literal[
    "backfill",
    "scheduled",
    "manual",
    "operator_triggered",
    "asset_triggered",
    "asset_materialization",
]
ErrorType: TypeAlias = Literal[
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
]

_frozen = dataclass(frozen=True, slots=True, kw_only=True)


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


# -- nested models ----------------------------------------------------------------------


@_frozen
class TaskInstance(Model):
    id: str
    task_id: str
    dag_id: str
    run_id: str
    try_number: int
    dag_version_id: str
    map_index: int | None = -1
    hostname: str | None = None
    context_carrier: dict[str, JsonValue] | None = None
    queue: str = "default"


@_frozen
class BundleInfo(Model):
    name: str
    version: str | None = None


@_frozen
class AssetReference(Model):
    name: str
    uri: str
    extra: dict[str, JsonValue] | None = None


@_frozen
class AssetAliasReference(Model):
    name: str


@_frozen
class ConsumedAssetEvent(Model):
    asset: AssetReference
    extra: dict[str, JsonValue] | None = None
    source_task_id: str | None = None
    source_dag_id: str | None = None
    source_run_id: str | None = None
    source_map_index: int | None = None
    source_aliases: list[AssetAliasReference] = field(default_factory=list)
    timestamp: datetime.datetime | None = None
    partition_key: str | None = None


@_frozen
class DagRun(Model):
    dag_id: str
    run_id: str
    logical_date: datetime.datetime | None = None
    data_interval_start: datetime.datetime | None = None
    data_interval_end: datetime.datetime | None = None
    run_after: datetime.datetime | None = None
    start_date: datetime.datetime | None = None
    end_date: datetime.datetime | None = None
    clear_number: int = 0
    run_type: DagRunType = "manual"
    state: DagRunState = "running"
    conf: dict[str, JsonValue] | None = None
    triggering_user_name: str | None = None
    consumed_asset_events: list[ConsumedAssetEvent] = field(default_factory=list)
    partition_key: str | None = None
    partition_date: datetime.datetime | None = None
    note: str | None = None
    team_name: str | None = None


@_frozen
class VariableEntry(Model):
    key: str
    value: str | None = None


@_frozen
class ConnectionEntry(Model):
    conn_id: str
    conn_type: str
    host: str | None = None
    schema: str | None = None
    login: str | None = None
    password: str | None = None
    port: int | None = None
    extra: str | None = None


@_frozen
class TIRunContext(Model):
    dag_run: DagRun
    task_reschedule_count: int = 0
    max_tries: int = 0
    variables: list[VariableEntry] | None = None
    connections: list[ConnectionEntry] | None = None
    next_method: str | None = None
    next_kwargs: JsonValue = None
    xcom_keys_to_clear: list[str] | None = None
    should_retry: bool = False
    start_date: datetime.datetime | None = None


@_frozen
class AssetProfile(Model):
    name: str | None = None
    uri: str | None = None
    type: Literal["Asset", "AssetNameRef", "AssetUriRef", "AssetAlias"]


# -- supervisor -> runtime: first frames -------------------------------------------------


@_frozen
class StartupDetails(Inbound):
    TYPE = "StartupDetails"
    ti: TaskInstance
    dag_rel_path: str
    bundle_info: BundleInfo
    start_date: datetime.datetime
    ti_context: TIRunContext
    sentry_integration: str = ""

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
    callback_requests: list[JsonValue] = field(default_factory=list)


# -- supervisor -> runtime: reply bodies -------------------------------------------------


@_frozen
class ErrorResponse(Inbound):
    TYPE = "ErrorResponse"
    error: ErrorType = "GENERIC_ERROR"
    detail: JsonValue = None


@_frozen
class OKResponse(Inbound):
    TYPE = "OKResponse"
    ok: bool


@_frozen
class ConnectionResult(Inbound):
    TYPE = "ConnectionResult"
    conn_id: str
    conn_type: str
    host: str | None = None
    schema: str | None = None
    login: str | None = None
    password: str | None = None
    port: int | None = None
    extra: str | None = None


@_frozen
class VariableResult(Inbound):
    TYPE = "VariableResult"
    key: str
    value: str | None = None


@_frozen
class XComResult(Inbound):
    TYPE = "XComResult"
    key: str
    value: JsonValue = None


# -- runtime -> supervisor: requests (§5) ------------------------------------------------


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
class PutVariable(Request):
    TYPE = "PutVariable"
    key: str
    value: str | None
    description: str | None = None


@_frozen
class DeleteVariable(Request):
    TYPE = "DeleteVariable"
    RESULT = (OKResponse,)
    key: str


@_frozen
class GetXCom(Request):
    TYPE = "GetXCom"
    RESULT = (XComResult,)
    key: str
    dag_id: str
    run_id: str
    task_id: str
    map_index: int | None = None
    include_prior_dates: bool = False


@_frozen
class SetXCom(Request):
    TYPE = "SetXCom"
    key: str
    value: JsonValue
    dag_id: str
    run_id: str
    task_id: str
    map_index: int | None = None
    dag_result: bool = False
    mapped_length: int | None = None


@_frozen
class DeleteXCom(Request):
    TYPE = "DeleteXCom"
    key: str
    dag_id: str
    run_id: str
    task_id: str
    map_index: int | None = None


@_frozen
class MaskSecret(Request):
    TYPE = "MaskSecret"
    value: JsonValue
    name: str | None = None


@_frozen
class SetRenderedMapIndex(Request):
    TYPE = "SetRenderedMapIndex"
    rendered_map_index: str

    def __post_init__(self) -> None:
        if not self.rendered_map_index:
            # §5.6: an empty label gets HTTP 422 from the API.
            raise LocalProtocolError("SetRenderedMapIndex.rendered_map_index must not be empty")


# -- terminal requests (§5.7, §6) --------------------------------------------------------


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
        raise RemoteProtocolError(f"{path}: unknown message type {tag!r}")
    result: Inbound = cls.from_map(data, f"{tag}")
    return result
