"""Nested wire models: the maps that appear inside message bodies, never on their own.

These mirror the 1.3.2 pydantic models they correspond to (named in each comment when
our name differs): a field without a default is one the peer requires, ``X | None``
is a nullable field. ``messages.py`` re-exports everything here, so import from there.

Where the real field is wider than what the API acts on, the type here is narrower on
purpose and says so (``AssetProfile.type``, ``DagWarning.warning_type``): a value
outside the set would be accepted by the supervisor and then silently ignored, or
fail later where nobody sees it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import ClassVar, Literal, TypeAlias, TypeVar, dataclass_transform

from ..errors import LocalProtocolError
from .fields import AnyValue, JsonValue, Model, UUIDStr

__all__ = [
    "AssetAliasReference",
    "AssetEventResponse",
    "AssetProfile",
    "AssetProfileType",
    "AssetReference",
    "AssetResponse",
    "BundleInfo",
    "ConnectionEntry",
    "ConsumedAssetEvent",
    "DagRun",
    "DagRunAssetReference",
    "DagRunState",
    "DagRunType",
    "DagWarning",
    "ErrorType",
    "HITLDetailRequest",
    "HITLUser",
    "PreviousTIResponse",
    "SerializedDag",
    "TIRunContext",
    "TaskInstance",
    "TaskInstanceState",
    "VariableEntry",
]

_T = TypeVar("_T")


# A plain ``_frozen = dataclass(...)`` alias is opaque to type checkers (no __init__
# signature); dataclass_transform tells them what the decorator does.
@dataclass_transform(frozen_default=True, kw_only_default=True, field_specifiers=(field,))
def _frozen(cls: type[_T]) -> type[_T]:
    """Make a wire model: a frozen, slotted, keyword-only dataclass."""
    return dataclass(frozen=True, slots=True, kw_only=True)(cls)


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
#: The real field is any ``str``; the API server acts only on these four (§5.4).
AssetProfileType: TypeAlias = Literal["Asset", "AssetNameRef", "AssetUriRef", "AssetAlias"]


# -- StartupDetails parts (§4.1) ---------------------------------------------------------


@_frozen
class TaskInstance(Model):
    id: UUIDStr
    task_id: str
    dag_id: str
    run_id: str
    try_number: int
    dag_version_id: UUIDStr
    map_index: int | None = -1
    hostname: str | None = None
    context_carrier: dict[str, AnyValue] | None = None
    queue: str | None = "default"


@_frozen
class BundleInfo(Model):
    name: str
    version: str | None = None


@_frozen
class AssetReference(Model):
    """Real name: ``AssetReferenceAssetEventDagRun``."""

    name: str
    uri: str
    extra: dict[str, JsonValue]


@_frozen
class AssetAliasReference(Model):
    """Real name: ``AssetAliasReferenceAssetEventDagRun``."""

    name: str


@_frozen
class ConsumedAssetEvent(Model):
    """Real name: ``AssetEventDagRunReference``."""

    asset: AssetReference
    extra: dict[str, JsonValue]
    source_task_id: str | None
    source_dag_id: str | None
    source_run_id: str | None
    source_map_index: int | None
    source_aliases: list[AssetAliasReference]
    timestamp: datetime.datetime
    partition_key: str | None = None


@_frozen
class DagRun(Model):
    dag_id: str
    run_id: str
    logical_date: datetime.datetime | None
    data_interval_start: datetime.datetime | None
    data_interval_end: datetime.datetime | None
    run_after: datetime.datetime
    start_date: datetime.datetime | None
    end_date: datetime.datetime | None
    clear_number: int | None = 0
    run_type: DagRunType
    state: DagRunState
    conf: dict[str, AnyValue] | None = None
    triggering_user_name: str | None = None
    consumed_asset_events: list[ConsumedAssetEvent]
    partition_key: str | None
    partition_date: datetime.datetime | None = None
    note: str | None = None
    team_name: str | None = None


@_frozen
class VariableEntry(Model):
    """Real name: ``VariableResponse``."""

    key: str
    value: str | None


@_frozen
class ConnectionEntry(Model):
    """Real name: ``ConnectionResponse``."""

    # StartupDetails is dumped without by_alias, so ti_context.connections carry the
    # pydantic field name "schema_"; GetConnection replies use the alias "schema".
    WIRE_ALIASES: ClassVar[dict[str, str]] = {"schema_": "schema"}

    conn_id: str
    conn_type: str
    host: str | None
    schema: str | None
    login: str | None
    password: str | None
    port: int | None
    extra: str | None


@_frozen
class TIRunContext(Model):
    dag_run: DagRun
    task_reschedule_count: int | None = 0
    max_tries: int
    variables: list[VariableEntry] | None = None
    connections: list[ConnectionEntry] | None = None
    next_method: str | None = None
    next_kwargs: dict[str, AnyValue] | str | None = None
    xcom_keys_to_clear: list[str] | None = None
    should_retry: bool | None = False
    start_date: datetime.datetime | None = None


# -- assets (§5.4) -----------------------------------------------------------------------


@_frozen
class AssetProfile(Model):
    name: str | None = None
    uri: str | None = None
    type: AssetProfileType


@_frozen
class AssetResponse(Model):
    name: str
    uri: str
    group: str
    extra: dict[str, JsonValue] | None = None


@_frozen
class DagRunAssetReference(Model):
    run_id: str
    dag_id: str
    logical_date: datetime.datetime | None
    start_date: datetime.datetime
    end_date: datetime.datetime | None
    state: str
    data_interval_start: datetime.datetime | None
    data_interval_end: datetime.datetime | None
    partition_key: str | None


@_frozen
class AssetEventResponse(Model):
    id: int
    timestamp: datetime.datetime
    extra: dict[str, JsonValue] | None = None
    asset: AssetResponse
    created_dagruns: list[DagRunAssetReference]
    source_task_id: str | None = None
    source_dag_id: str | None = None
    source_run_id: str | None = None
    source_map_index: int | None = None
    partition_key: str | None = None


# -- DAG runs and task instances (§5.5) --------------------------------------------------


@_frozen
class PreviousTIResponse(Model):
    task_id: str
    dag_id: str
    run_id: str
    logical_date: datetime.datetime | None = None
    start_date: datetime.datetime | None = None
    end_date: datetime.datetime | None = None
    state: str | None = None
    try_number: int
    map_index: int | None = -1
    duration: float | None = None


# -- human in the loop (§5.6) ------------------------------------------------------------


@_frozen
class HITLUser(Model):
    id: str
    name: str


@_frozen
class HITLDetailRequest(Model):
    ti_id: UUIDStr
    options: list[str]
    subject: str
    body: str | None = None
    defaults: list[str] | None = None
    multiple: bool | None = False
    params: dict[str, AnyValue] | None = None
    assigned_users: list[HITLUser] | None = None

    def __post_init__(self) -> None:
        if not self.options:
            # pydantic min_length=1: the supervisor would drop the request unanswered.
            raise LocalProtocolError(f"{type(self).__name__}.options must not be empty")


# -- DAG parsing (dag-parsing.md §2.3) ---------------------------------------------------


@_frozen
class SerializedDag(Model):
    """One entry of ``serialized_dags``; real name ``LazyDeserializedDAG``."""

    data: dict[str, JsonValue]
    last_loaded: datetime.datetime | None = None


@_frozen
class DagWarning(Model):
    """The real field is an untyped list; the manager builds ``DagWarning(**item)`` from it."""

    dag_id: str
    # DagWarningType: anything else raises while persisting and drops the file's result.
    warning_type: Literal["asset conflict", "non-existent pool", "runtime varying value"]
    message: str
