"""What the embedded supervisor knows and remembers: no I/O, no clock, no trio.

Theory of operation
-------------------
A :class:`Session` is the supervisor's state for one local try. It starts from the values
seeded on the command line, builds the ``StartupDetails`` a real worker would send, then
answers each decoded request (:meth:`Session.answer`) the way the 1.3.2 supervisor does,
recording everything the summary shows. When the process has exited,
:meth:`Session.report` derives the final state with the supervisor's own rules
(protocol.md §7.1): a terminal state counts only on exit 0, exit 0 without one is a
"success" nobody is told about, and a non-zero exit becomes ``failed`` or
``up_for_retry`` by ``should_retry``.

Where the local supervisor differs from the real one it says so in the reply or the
report, never silently: requests it does not emulate get the error element
``API_SERVER_ERROR`` with status 501, and anything the real supervisor would choke on
(a fatal frame or log line) is reported as the reason the TI would stay RUNNING.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import getpass
import os
import signal
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

from ..authoring import TRIO_COORD_QUEUE
from ..protocol.messages import (
    TERMINAL_TYPES,
    AssetStateStoreResult,
    BundleInfo,
    ClearAssetStateStoreByName,
    ClearAssetStateStoreByUri,
    ClearTaskStateStore,
    ConnectionResult,
    CreateHITLDetailPayload,
    DagRun,
    DeleteAssetStateStoreByName,
    DeleteAssetStateStoreByUri,
    DeleteTaskStateStore,
    DeleteVariable,
    DeleteXCom,
    ErrorResponse,
    GetAssetByName,
    GetAssetByUri,
    GetAssetEventByAsset,
    GetAssetEventByAssetAlias,
    GetAssetsByAlias,
    GetAssetStateStoreByName,
    GetAssetStateStoreByUri,
    GetConnection,
    GetDag,
    GetDagRun,
    GetDagRunState,
    GetDRCount,
    GetHITLDetailResponse,
    GetPreviousDagRun,
    GetPreviousTI,
    GetPrevSuccessfulDagRun,
    GetTaskBreadcrumbs,
    GetTaskRescheduleStartDate,
    GetTaskStates,
    GetTaskStateStore,
    GetTICount,
    GetVariable,
    GetVariableKeys,
    GetXCom,
    GetXComCount,
    GetXComSequenceItem,
    GetXComSequenceSlice,
    Inbound,
    MaskSecret,
    OKResponse,
    PutVariable,
    Request,
    ResendLoggingFD,
    SetAssetStateStoreByName,
    SetAssetStateStoreByUri,
    SetRenderedFields,
    SetRenderedMapIndex,
    SetTaskStateStore,
    SetXCom,
    SkipDownstreamTasks,
    StartupDetails,
    SucceedTask,
    TaskInstance,
    TaskRescheduleStartDate,
    TaskStateStoreResult,
    TIRunContext,
    TriggerDagRun,
    UpdateHITLDetail,
    ValidateInletsAndOutlets,
    VariableKeysResult,
    VariableResult,
    XComCountResponse,
    XComResult,
    XComSequenceIndexResult,
    XComSequenceSliceResult,
)
from ..protocol.peer import RequestFrame
from ..runtime.masking import Masker
from .assets import LocalAssets
from .dagruns import LocalDagRuns
from .hitl import LocalHITL
from .options import RunOptions
from .queries import Catalogue, LocalQueries, TIState, by_alias

__all__ = [
    "XComKey",
    "Answer",
    "Report",
    "Session",
    "SUPPORTED",
    "UNHANDLED",
    "UNSUPPORTED",
    "NO_FD_PASSING",
    "build_startup_details",
    "describe_exit",
    "final_state",
]

#: A reply: ``(body, error element)``; ``None`` instead of a pair means "no reply at all".
Answer: TypeAlias = tuple[Inbound | None, ErrorResponse | None]

#: The error element for catalogue requests ``trio-coord run`` does not emulate.
UNSUPPORTED: Final = ErrorResponse(
    error="API_SERVER_ERROR",
    detail={"status_code": 501, "message": "not supported by trio-coord run"},
)

#: What 1.3.2 answers to the HITL requests it does not handle (protocol.md §12 row 9).
UNHANDLED: Final = ErrorResponse(
    error="API_SERVER_ERROR", detail={"status_code": 400, "message": "Unhandled request"}
)

#: ``ResendLoggingFD`` is refused: its fd passing has no meaning on a TCP log socket.
NO_FD_PASSING: Final = ErrorResponse(
    error="API_SERVER_ERROR",
    detail={
        "status_code": 400,
        "message": "ResendLoggingFD is refused by trio-coord run: logs go to the --logs "
        "socket, and a file descriptor cannot be passed over TCP",
    },
)

#: States the supervisor PATCHes the moment it receives their message (§5.7, §7.1 rule 5).
_SENT_DIRECTLY: Final = frozenset(
    {"success", "up_for_retry", "deferred", "up_for_reschedule", "awaiting_input"}
)

_UTC = datetime.UTC

#: How the local supervisor files an XCom: (dag_id, run_id, task_id, map_index, key).
XComKey: TypeAlias = tuple[str, str, str, int, str]
_XComKey: TypeAlias = XComKey


def _xcom_key(msg: GetXCom | SetXCom | DeleteXCom) -> _XComKey:
    # §5.2: a map index that is nil or negative is not sent, and the API then means -1.
    index = -1 if msg.map_index is None or msg.map_index < 0 else msg.map_index
    return msg.dag_id, msg.run_id, msg.task_id, index, msg.key


def _uuid() -> str:
    return str(uuid.uuid4())


def build_startup_details(opts: RunOptions, now: datetime.datetime) -> StartupDetails:
    """The first frame a worker would send for this try of a manually triggered run."""
    logical = opts.logical_date or now
    run_id = opts.run_id or f"manual__{logical.isoformat()}"
    own = {key for (task_id, key) in opts.xcoms if task_id == opts.task_id}
    target = opts.bundle.partition(":")[0]
    is_file = target.endswith(".py") or "/" in target or os.sep in target
    return StartupDetails(
        ti=TaskInstance(
            id=_uuid(),
            task_id=opts.task_id,
            dag_id=opts.dag_id,
            run_id=run_id,
            try_number=opts.try_number,
            dag_version_id=_uuid(),
            map_index=opts.map_index,
            queue=TRIO_COORD_QUEUE,
        ),
        dag_rel_path=os.path.basename(target) if is_file else target.replace(".", "/") + ".py",
        bundle_info=BundleInfo(
            name=os.path.splitext(os.path.basename(target))[0] if is_file else target
        ),
        start_date=now,
        ti_context=TIRunContext(
            dag_run=DagRun(
                dag_id=opts.dag_id,
                run_id=run_id,
                logical_date=logical,
                data_interval_start=logical,
                data_interval_end=logical,
                run_after=logical,
                start_date=now,
                end_date=None,
                run_type="manual",
                state="running",
                conf=dict(opts.conf),
                triggering_user_name=_user(),
                consumed_asset_events=[],
                partition_key=None,
            ),
            # The server's should_retry is "try_number <= max_tries"; keep the two consistent.
            max_tries=opts.try_number if opts.should_retry else opts.try_number - 1,
            variables=[],
            connections=[],
            task_reschedule_count=opts.task_reschedule_count,
            next_method=opts.next_method,
            next_kwargs=opts.next_kwargs,
            # A real worker asks to clear the XComs this TI already has (§9.2): the seeded ones.
            xcom_keys_to_clear=sorted(own),
            should_retry=opts.should_retry,
            start_date=now,
        ),
        sentry_integration="",
    )


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers), no login name
        return None


def describe_exit(rc: int) -> str:
    """``exit status 3`` or ``signal SIGKILL``: how the process ended, for humans."""
    if rc >= 0:
        return f"exit status {rc}"
    try:
        return f"signal {signal.Signals(-rc).name}"
    except ValueError:
        return f"signal {-rc}"


def final_state(
    terminal: str | None, rc: int, should_retry: bool
) -> tuple[str, str | None, str | None]:
    """Apply the supervisor's rules (§7.1): ``(state, note, defect)``.

    ``terminal`` is the recorded terminal state, ``rc`` the exit status (negative for a
    signal). ``note`` qualifies the state; ``defect`` is set when the outcome betrays a
    bug in the runtime or task that a real worker would suffer from.
    """
    if rc == 0:
        if terminal is not None:
            return terminal, None, None
        return (
            "success",
            "no terminal message: the TI would be stuck RUNNING",
            "exit 0 without a terminal message: the real supervisor derives success but "
            "tells no one, so the TI stays RUNNING until the heartbeat timeout (§6.1)",
        )
    how = describe_exit(rc)
    if terminal == "success":
        return (
            "failed",
            f"{how} after SucceedTask",
            f"{how} after a delivered SucceedTask: the supervisor would PATCH failed on a "
            "succeeded TI and crash on the conflict (§12 row 44)",
        )
    state = "up_for_retry" if should_retry else "failed"
    ignored = f"; its {terminal} report is ignored (a terminal state counts only on exit 0)"
    note = f"the process ended with {how}" + (ignored if terminal else "")
    if state == "up_for_retry" and (terminal is None or terminal not in _SENT_DIRECTLY):
        return (
            state,
            note + "; up_for_retry is never sent, so the TI would be stuck RUNNING",
            f"{how} instead of an explicit RetryTask: the TI would be stuck RUNNING (§12 row 16)",
        )
    return state, note, None


@dataclass(frozen=True, slots=True)
class Report:
    """The outcome of one local run, ready for the summary."""

    dag_id: str
    task_id: str
    run_id: str
    try_number: int
    map_index: int
    state: str
    note: str | None
    exit_code: int | None
    terminal: str | None
    xcoms: dict[str, Any]
    requests: dict[str, int]
    variables_set: dict[str, str | None]
    rendered_map_index: str | None
    secrets_masked: int
    defects: list[str]
    last_error: str | None
    log_lines: int
    duration: float
    #: Asset events the try recorded on success (asset, extra, alias).
    outlet_events: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    #: Runs of other DAGs the try triggered, one line each.
    triggered_runs: list[str] = dataclasses.field(default_factory=list)
    #: What the user can pass to make the run closer to the real one (an upstream XCom).
    hints: list[str] = field(default_factory=list)
    #: Tasks the try asked the API server to skip (``task[index]`` for one instance).
    skipped_downstream: list[str] = dataclasses.field(default_factory=list)
    #: What a ``RetryTask`` carried: the retry policy's reason and delay.
    retry_reason: str | None = None
    retry_delay_seconds: float | None = None
    #: Human-in-the-loop requests the try created: subject, options, defaults.
    hitl_requests: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def status(self) -> int:
        """Exit status of ``trio-coord run``: 0 only for a success a real worker would record."""
        return 0 if self.state == "success" and self.note is None else 1

    @property
    def request_count(self) -> int:
        return sum(self.requests.values())


class Session:
    """The supervisor's side of one local try; see the module docstring."""

    def __init__(
        self,
        opts: RunOptions,
        *,
        now: datetime.datetime | None = None,
        masker: Masker | None = None,
        xcoms: dict[XComKey, Any] | None = None,
        mapped_lengths: dict[tuple[str, int], int] | None = None,
        reschedule_start: datetime.datetime | None = None,
        task_instances: Mapping[tuple[str, int], Any] | None = None,
        task_store: dict[str, Any] | None = None,
        asset_stores: dict[tuple[str, str], dict[str, Any]] | None = None,
    ) -> None:
        self.options = opts
        self.details = build_startup_details(opts, now or datetime.datetime.now(_UTC))
        self.masker = masker if masker is not None else Masker.from_env()
        ti = self.details.ti
        self.variables: dict[str, str | None] = dict(opts.variables)
        self.connections: dict[str, ConnectionResult] = dict(opts.connections)
        # A whole-DAG run shares one store across its tries (and seeds it once).
        self.xcoms: dict[_XComKey, Any] = {} if xcoms is None else xcoms
        for (task_id, key), value in opts.xcoms.items():
            self.xcoms.setdefault((ti.dag_id, ti.run_id, task_id, -1, key), value)
        #: ``(task_id, map_index) -> mapped_length`` from SetXCom (what expands downstream).
        self.mapped_lengths: dict[tuple[str, int], int] = (
            {} if mapped_lengths is None else mapped_lengths
        )
        #: When the first try of a rescheduled task instance started (None: not rescheduled).
        self.reschedule_start = reschedule_start
        #: What SkipDownstreamTasks asked to skip: (task_id, map_index or None for all).
        self.skip_downstream: list[tuple[str, int | None]] = []
        self.requests: collections.Counter[str] = collections.Counter()
        self.xcoms_pushed: dict[str, Any] = {}
        self.variables_set: dict[str, str | None] = {}
        self.secrets_masked = 0
        self.rendered_map_index: str | None = None
        self.rendered_fields: dict[str, Any] | None = None
        # State stores, in memory for the run: the try's own, and each asset's, by
        # ("name", name) or ("uri", uri) as the request names it.
        # A whole-DAG run passes the same dicts to every try, so a task's store outlives its try
        # (a cursor kept across retries) and an asset's store is shared by the run's tasks.
        self.task_store: dict[str, Any] = {} if task_store is None else task_store
        self.asset_stores: dict[tuple[str, str], dict[str, Any]] = (
            {} if asset_stores is None else asset_stores
        )
        self.terminal: Request | None = None
        self.defects: list[str] = []
        #: Why the real supervisor would have crashed, if it would (§12 "fatal").
        self.fatal: str | None = None
        self.last_error: str | None = None
        self.log_lines = 0
        self.assets = LocalAssets()
        self.dag_runs = LocalDagRuns(own=(ti.dag_id, ti.run_id))
        self.hitl = LocalHITL()
        self.outlet_events: list[dict[str, Any]] = []
        self.hints: list[str] = []
        self.skipped_downstream: list[str] = []
        #: A whole-DAG run's task instances so far: (task_id, index) -> .state/.duration.
        self.task_instances = task_instances
        #: The bundle's DAGs and assets, loaded by the supervisor when first needed.
        self.catalogue: Catalogue | None = None
        #: Human-in-the-loop requests the try created (shown in the summary).
        self.hitl_requests: list[dict[str, Any]] = []

    # -- recording --------------------------------------------------------------------------

    def defect(self, text: str) -> None:
        """Remember a protocol defect once, however often it happens."""
        if text not in self.defects:
            self.defects.append(text)

    def crash(self, reason: str) -> None:
        """The real supervisor would have died here; the first reason wins."""
        if self.fatal is None:
            self.fatal = reason
        self.defect(f"fatal for the real supervisor: {reason}")

    # -- answering --------------------------------------------------------------------------

    def wants_catalogue(self, msg: Request | None) -> bool:
        """Whether answering ``msg`` needs the bundle's DAGs, which are not loaded yet."""
        return self.catalogue is None and isinstance(msg, GetDag | GetAssetByName | GetAssetByUri)

    def _catalogue(self) -> Catalogue:
        if self.catalogue is None:
            return Catalogue(problem="the bundle's DAGs were not loaded")
        return self.catalogue

    def queries(self) -> LocalQueries:
        """The run and task-instance view the DAG-run queries answer from."""
        ti = self.details.ti
        own = (ti.task_id, -1 if ti.map_index is None else ti.map_index)
        instances = [TIState(own[0], own[1], "running")]
        for (task_id, index), result in (self.task_instances or {}).items():
            if (task_id, index) != own:
                state = getattr(result, "state", None)
                instances.append(
                    TIState(
                        task_id,
                        index,
                        None if state in (None, "none") else str(state),
                        getattr(result, "duration", None),
                    )
                )
        return LocalQueries(
            own=self.details.ti_context.dag_run,
            triggered=self.dag_runs.triggered,
            instances=instances,
        )

    def _create_hitl(self, msg: CreateHITLDetailPayload) -> Answer:
        # Kept for --hitl-answer to check and resume against, and listed in the summary.
        self.hitl_requests.append(
            {"subject": msg.subject, "options": list(msg.options), "defaults": msg.defaults}
        )
        return self.hitl.create(msg)

    def answer(self, frame: RequestFrame) -> Answer | None:
        """The reply to one request frame, or None when the supervisor would not reply."""
        msg = frame.body
        if msg is None:
            self.requests[frame.tag or "<undecodable>"] += 1
            self.defect(
                f"request id {frame.request_id} dropped without a reply: {frame.problem} "
                "(the real supervisor drops it too, and the task waits for an answer, §12 row 8)"
            )
            return None
        tag = msg.TYPE or type(msg).__name__
        self.requests[tag] += 1
        if self.terminal is not None and not msg.TERMINAL:
            self.defect(f"{tag} sent after the terminal {self.terminal.TYPE} (§6.1)")
        if msg.TERMINAL:
            return self._terminal(msg)
        handler = _HANDLERS.get(type(msg))
        if handler is None:
            return None, UNSUPPORTED
        return handler(self, msg)

    def _terminal(self, msg: Request) -> Answer:
        if self.terminal is not None:
            self.defect(f"a second terminal message, {msg.TYPE}, after {self.terminal.TYPE} (§6.1)")
        self.terminal = msg
        if isinstance(msg, SucceedTask):
            ti = self.details.ti
            self.outlet_events = self.assets.record(
                msg,
                dag_id=ti.dag_id,
                task_id=ti.task_id,
                run_id=ti.run_id,
                map_index=-1 if ti.map_index is None else ti.map_index,
            )
        if hasattr(msg, "rendered_map_index"):
            # §6.3: the terminal transition writes its label as sent, null included.
            label = msg.rendered_map_index
            if label is None and self.rendered_map_index is not None:
                self.defect(
                    f"{msg.TYPE} without rendered_map_index: the label "
                    f"{self.rendered_map_index!r} would be overwritten with null (§6.3)"
                )
            self.rendered_map_index = label
        return None, None

    def _get_variable(self, msg: GetVariable) -> Answer:
        if msg.key not in self.variables:
            return ErrorResponse(error="VARIABLE_NOT_FOUND", detail={"key": msg.key}), None
        value = self.variables[msg.key]
        if value is not None and self.masker.is_sensitive_name(msg.key):
            self.masker.add(value, msg.key)  # §5.1: only values under a sensitive key name
        return VariableResult(key=msg.key, value=value), None

    def _put_variable(self, msg: PutVariable) -> Answer:
        self.variables[msg.key] = msg.value
        self.variables_set[msg.key] = msg.value
        return None, None

    def _delete_variable(self, msg: DeleteVariable) -> Answer:
        self.variables.pop(msg.key, None)
        self.variables_set[msg.key] = None
        return OKResponse(ok=True), None

    def _get_connection(self, msg: GetConnection) -> Answer:
        conn = self.connections.get(msg.conn_id)
        if conn is None:
            return ErrorResponse(
                error="CONNECTION_NOT_FOUND", detail={"conn_id": msg.conn_id}
            ), None
        for secret in (conn.password, conn.extra):
            if secret:
                self.masker.add(secret)
        return conn, None

    def _get_xcom(self, msg: GetXCom) -> Answer:
        # Not found is not an error: the value is nil (§12 row 12).
        key = _xcom_key(msg)
        if key not in self.xcoms and msg.task_id != self.details.ti.task_id:
            # An upstream value: in a real run the upstream task would have pushed it.
            flag = f"--xcom {msg.task_id}.{msg.key}=JSON"
            hint = f"the task read XCom {msg.key!r} of {msg.task_id!r}, which this run lacks: pass {flag}"
            if hint not in self.hints:
                self.hints.append(hint)
        return XComResult(key=msg.key, value=self.xcoms.get(key)), None

    def _label(self, msg: SetXCom | DeleteXCom) -> str:
        """How the summary names an XCom: its key, or ``task[index].key`` when not our own."""
        ti = self.details.ti
        own_index = -1 if ti.map_index is None else ti.map_index
        _dag, _run, task_id, index, key = _xcom_key(msg)
        if task_id == ti.task_id and index == own_index:
            return key
        return f"{task_id}{f'[{index}]' if index >= 0 else ''}.{key}"

    def _set_xcom(self, msg: SetXCom) -> Answer:
        key = _xcom_key(msg)
        self.xcoms[key] = msg.value
        if msg.mapped_length is not None:
            self.mapped_lengths[(key[2], key[3])] = msg.mapped_length
        self.xcoms_pushed[self._label(msg)] = msg.value
        return None, None

    def _delete_xcom(self, msg: DeleteXCom) -> Answer:
        self.xcoms.pop(_xcom_key(msg), None)
        self.xcoms_pushed.pop(self._label(msg), None)
        return None, None

    def _sequence(
        self, msg: GetXComCount | GetXComSequenceItem | GetXComSequenceSlice
    ) -> list[Any]:
        """The values of one key across a task's map indexes, in map-index order."""
        found = sorted(
            (index, value)
            for (dag_id, run_id, task_id, index, key), value in self.xcoms.items()
            if (dag_id, run_id, task_id, key) == (msg.dag_id, msg.run_id, msg.task_id, msg.key)
        )
        return [value for _index, value in found]

    def _get_xcom_count(self, msg: GetXComCount) -> Answer:
        return XComCountResponse(len=len(self._sequence(msg))), None

    def _get_xcom_item(self, msg: GetXComSequenceItem) -> Answer:
        values = self._sequence(msg)
        if not -len(values) <= msg.offset < len(values):
            detail = {"dag_id": msg.dag_id, "run_id": msg.run_id, "task_id": msg.task_id}
            return ErrorResponse(
                error="XCOM_NOT_FOUND", detail={**detail, "key": msg.key, "offset": msg.offset}
            ), None
        return XComSequenceIndexResult(root=values[msg.offset]), None

    def _get_xcom_slice(self, msg: GetXComSequenceSlice) -> Answer:
        if msg.step == 0:
            return ErrorResponse(
                error="API_SERVER_ERROR",
                detail={"status_code": 400, "message": "slice step cannot be zero"},
            ), None
        return XComSequenceSliceResult(
            root=self._sequence(msg)[msg.start : msg.stop : msg.step]
        ), None

    def _skip_downstream(self, msg: SkipDownstreamTasks) -> Answer:
        # The real supervisor answers with an empty body once the API server has done it.
        # Kept twice: as (task, map index) for a whole-DAG run to apply, as text for the summary.
        for item in msg.tasks:
            task_id, index = (item, None) if isinstance(item, str) else (str(item[0]), int(item[1]))
            self.skip_downstream.append((task_id, index))
            name = task_id if index is None or index < 0 else f"{task_id}[{index}]"
            if name not in self.skipped_downstream:
                self.skipped_downstream.append(name)
        return None, None

    def _reschedule_start(self, msg: GetTaskRescheduleStartDate) -> Answer:
        return TaskRescheduleStartDate(start_date=self.reschedule_start), None

    def _mask_secret(self, msg: MaskSecret) -> Answer:
        self.masker.add(msg.value, msg.name)
        self.secrets_masked += 1
        return None, None

    def _set_rendered_map_index(self, msg: SetRenderedMapIndex) -> Answer:
        self.rendered_map_index = msg.rendered_map_index
        return None, None

    def _set_rendered_fields(self, msg: SetRenderedFields) -> Answer:
        self.rendered_fields = dict(msg.rendered_fields)
        return None, None

    def _get_variable_keys(self, msg: GetVariableKeys) -> Answer:
        keys = sorted(k for k in self.variables if k.startswith(msg.prefix or ""))
        page = keys[msg.offset : msg.offset + msg.limit]
        return VariableKeysResult(keys=page, total_entries=len(keys)), None

    # One handler per operation for both stores: a store is the task's or an asset's.
    def _store(self, msg: Any) -> dict[str, Any]:
        if msg.TYPE.endswith("TaskStateStore"):
            return self.task_store
        where = ("name", msg.name) if hasattr(msg, "name") else ("uri", msg.uri)
        store: dict[str, Any] = self.asset_stores.setdefault(where, {})
        return store

    def _get_state(self, msg: Any) -> Answer:
        store = self._store(msg)
        task = isinstance(msg, GetTaskStateStore)
        if msg.key not in store:
            return ErrorResponse(
                error="TASK_STORE_NOT_FOUND" if task else "ASSET_STORE_NOT_FOUND",
                detail={"key": msg.key},
            ), None
        result = TaskStateStoreResult if task else AssetStateStoreResult
        return result(value=store[msg.key]), None

    def _set_state(self, msg: Any) -> Answer:
        self._store(msg)[msg.key] = msg.value
        return OKResponse(ok=True), None

    def _delete_state(self, msg: Any) -> Answer:
        self._store(msg).pop(msg.key, None)
        return OKResponse(ok=True), None

    def _clear_state(self, msg: Any) -> Answer:
        self._store(msg).clear()
        return OKResponse(ok=True), None

    # -- the end -----------------------------------------------------------------------------

    def report(
        self,
        rc: int | None,
        *,
        duration: float,
        startup_error: str | None = None,
        interrupted: str | None = None,
    ) -> Report:
        """Derive the final state (§7.1) and gather what the summary shows.

        Args:
            rc: the process's exit status (negative: killed by that signal); None when
                it never got going.
            duration: seconds from start to the end of the run.
            startup_error: why the process never connected, when it did not.
            interrupted: why ``trio-coord run`` stopped the task early (signal, timeout).
        """
        ti = self.details.ti
        terminal_state = (
            None if self.terminal is None else str(getattr(self.terminal, "state", "?"))
        )
        note: str | None
        if startup_error is not None:
            state, note = "failed", startup_error
        elif self.fatal is not None:
            state = "running"
            note = (
                f"the real supervisor would crash ({self.fatal}); the TI would stay RUNNING "
                "until the heartbeat timeout"
            )
        elif rc is None:
            state, note = "running", "the process's exit status is unknown"
        else:
            state, note, defect = final_state(terminal_state, rc, bool(self.options.should_retry))
            if defect:
                self.defect(defect)
        if interrupted and interrupted != note:
            note = interrupted if note is None else f"{interrupted}; {note}"
        return Report(
            dag_id=ti.dag_id,
            task_id=ti.task_id,
            run_id=ti.run_id,
            try_number=ti.try_number,
            map_index=-1 if ti.map_index is None else ti.map_index,
            state=state,
            note=note,
            exit_code=rc,
            terminal=None if self.terminal is None else self.terminal.TYPE,
            xcoms=dict(self.xcoms_pushed),
            requests=dict(sorted(self.requests.items())),
            variables_set=dict(self.variables_set),
            rendered_map_index=self.rendered_map_index,
            secrets_masked=self.secrets_masked,
            defects=list(self.defects),
            last_error=self.last_error,
            log_lines=self.log_lines,
            duration=duration,
            outlet_events=list(self.outlet_events),
            triggered_runs=self.dag_runs.summary(),
            hints=list(self.hints),
            skipped_downstream=list(self.skipped_downstream),
            retry_reason=getattr(self.terminal, "retry_reason", None),
            retry_delay_seconds=getattr(self.terminal, "retry_delay_seconds", None),
            hitl_requests=list(self.hitl_requests),
        )


_HANDLERS: Final[dict[type[Request], Callable[[Session, Any], Answer]]] = {
    GetVariable: Session._get_variable,
    PutVariable: Session._put_variable,
    DeleteVariable: Session._delete_variable,
    GetConnection: Session._get_connection,
    GetXCom: Session._get_xcom,
    SetXCom: Session._set_xcom,
    DeleteXCom: Session._delete_xcom,
    GetXComCount: Session._get_xcom_count,
    GetXComSequenceItem: Session._get_xcom_item,
    GetXComSequenceSlice: Session._get_xcom_slice,
    SkipDownstreamTasks: Session._skip_downstream,
    GetTaskRescheduleStartDate: Session._reschedule_start,
    MaskSecret: Session._mask_secret,
    SetRenderedMapIndex: Session._set_rendered_map_index,
    SetRenderedFields: Session._set_rendered_fields,
    GetVariableKeys: Session._get_variable_keys,
    ValidateInletsAndOutlets: lambda s, m: (s.assets.validate(), None),
    GetAssetEventByAsset: lambda s, m: (s.assets.by_asset(m), None),
    GetAssetEventByAssetAlias: lambda s, m: (s.assets.by_alias(m), None),
    TriggerDagRun: lambda s, m: s.dag_runs.trigger(m),
    GetDagRunState: lambda s, m: s.dag_runs.state(m),
    GetDag: lambda s, m: s._catalogue().dag(
        m, bundle_name=s.details.bundle_info.name, rel_path=s.details.dag_rel_path
    ),
    GetAssetByName: lambda s, m: s._catalogue().asset(m),
    GetAssetByUri: lambda s, m: s._catalogue().asset(m),
    GetAssetsByAlias: lambda s, m: by_alias(s.assets.events, m),
    GetDagRun: lambda s, m: s.queries().dag_run(m),
    GetDRCount: lambda s, m: s.queries().dr_count(m),
    GetPreviousDagRun: lambda s, m: s.queries().previous_dag_run(m),
    GetPrevSuccessfulDagRun: lambda s, m: s.queries().prev_successful_dag_run(),
    GetPreviousTI: lambda s, m: s.queries().previous_ti(m),
    GetTICount: lambda s, m: s.queries().ti_count(m),
    GetTaskStates: lambda s, m: s.queries().task_states(m),
    GetTaskBreadcrumbs: lambda s, m: s.queries().breadcrumbs(m),
    CreateHITLDetailPayload: Session._create_hitl,
    UpdateHITLDetail: lambda s, m: (None, UNHANDLED),
    GetHITLDetailResponse: lambda s, m: (None, UNHANDLED),
    ResendLoggingFD: lambda s, m: (None, NO_FD_PASSING),
    **dict.fromkeys(
        (GetTaskStateStore, GetAssetStateStoreByName, GetAssetStateStoreByUri), Session._get_state
    ),
    **dict.fromkeys(
        (SetTaskStateStore, SetAssetStateStoreByName, SetAssetStateStoreByUri), Session._set_state
    ),
    **dict.fromkeys(
        (DeleteTaskStateStore, DeleteAssetStateStoreByName, DeleteAssetStateStoreByUri),
        Session._delete_state,
    ),
    **dict.fromkeys(
        (ClearTaskStateStore, ClearAssetStateStoreByName, ClearAssetStateStoreByUri),
        Session._clear_state,
    ),
}

#: Request types the embedded supervisor answers itself (the rest get :data:`UNSUPPORTED`).
SUPPORTED: Final = frozenset({cls.TYPE for cls in _HANDLERS if cls.TYPE} | TERMINAL_TYPES)
