"""Our message classes against the real apache-airflow-task-sdk 1.3.2 models.

Three checks, each against the code the real supervisor runs (never a copy of it):

* **schema parity** - every field of every body (and of the nested models they hold)
  has the real model's name, required-ness, nullability and default, except for the
  deliberate deviations listed in :data:`DEVIATIONS`;
* **requests** - every request we can build (a table of examples, plus Hypothesis
  instances derived from the field annotations) leaves as bytes the supervisor's own
  frame decoder and ``TypeAdapter(ToSupervisor)`` accept, with the same field values;
* **replies** - every ``ToTask`` body, built as a real model and sent the way
  ``send_msg`` sends it, decodes with our codec into the same values.

The negative cases show that what we refuse to send is what the supervisor would have
dropped without a reply (protocol.md §12 rows 7-8).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import enum
import math
import pathlib
import types
import typing
import uuid
from typing import Any

import msgspec
import pydantic
import pytest
from airflow.dag_processing import processor as real_processor
from airflow.sdk.api.datamodels import _generated as api
from airflow.sdk.execution_time import comms as real
from airflow.sdk.execution_time.schema import get_schema_version_migrator, resolve_body_class
from hypothesis import given
from hypothesis import strategies as st

from trio_coord.errors import LocalProtocolError, RemoteProtocolError
from trio_coord.protocol import codec, fields, messages
from trio_coord.protocol.fields import AnyValue, JsonValue, Model, Seconds, UUIDStr, _schema_of
from trio_coord.protocol.framing import encode_frame
from trio_coord.protocol.messages import INBOUND, REQUESTS, decode_body, encode_body

UTC = datetime.UTC
#: The schema version a coordinator runtime declares (protocol.md §11).
SCHEMA_VERSION = "2026-06-16"

T_SECONDS = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)  # 32-bit timestamp
T_MICROS = datetime.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)  # 64-bit
T_1960 = datetime.datetime(1960, 1, 1, tzinfo=UTC)  # 96-bit (before the epoch)
T_2600 = datetime.datetime(2600, 7, 1, 12, tzinfo=UTC)  # 96-bit (beyond 34-bit seconds)
T_OFFSET = datetime.datetime(2024, 6, 1, 12, tzinfo=datetime.timezone(datetime.timedelta(hours=5)))
TI_ID = "0190d8a2-7b1c-7e3f-8a5b-1c2d3e4f5a6b"
DAG_VERSION_ID = "0190d8a2-0000-7000-8000-000000000001"

TO_SUPERVISOR = pydantic.TypeAdapter(real.ToSupervisor)
TO_TASK = pydantic.TypeAdapter(real.ToTask)
TO_MANAGER = pydantic.TypeAdapter(real_processor.ToManager)
REQUEST_FRAME = msgspec.msgpack.Decoder(real._RequestFrame)


def _union_members(union: Any) -> dict[str, type[pydantic.BaseModel]]:
    """``type`` tag -> model class, for one of the real discriminated unions."""
    (members, _discriminator) = typing.get_args(union)
    return {m.model_fields["type"].default: m for m in typing.get_args(members)}


REAL_REQUESTS = _union_members(real.ToSupervisor)
REAL_REPLIES = _union_members(real.ToTask)
#: Our bodies whose real model lives outside comms.py (the parse workload).
REAL_OTHERS: dict[str, type[pydantic.BaseModel]] = {
    "DagFileParsingResult": real_processor.DagFileParsingResult,
    "DagFileParseRequest": real_processor.DagFileParseRequest,
}
REAL_BY_TAG = {**REAL_REQUESTS, **REAL_REPLIES, **REAL_OTHERS}


# -- plain views of values, for comparing ours with theirs ------------------------------


def _plain(value: Any) -> Any:
    """A real model's python-mode value, reduced to what the wire can carry."""
    if isinstance(value, pydantic.BaseModel):
        return _plain(value.model_dump(by_alias=True))
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID | pathlib.PurePath):
        return str(value)
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _ours(value: Any) -> Any:
    """Our value as a plain structure, field by field and without validating anything.

    Tagged models (nested ones too) get their ``type`` key, as the real dump has it.
    """
    if isinstance(value, Model):
        out = {f.name: _ours(getattr(value, f.name)) for f in dataclasses.fields(value)}  # type: ignore[arg-type]
        if value.TYPE is not None:
            out["type"] = value.TYPE
        return out
    if isinstance(value, dict):
        return {k: _ours(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_ours(v) for v in value]
    return value


def assert_same(ours: Any, theirs: Any, path: str = "") -> None:
    """Deep equality; floats within a microsecond (durations pass through ``timedelta``)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        assert ours.keys() == theirs.keys(), f"{path}: keys differ"
        for key in ours:
            assert_same(ours[key], theirs[key], f"{path}.{key}")
    elif isinstance(ours, list) and isinstance(theirs, list):
        assert len(ours) == len(theirs), f"{path}: lengths differ"
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert_same(a, b, f"{path}[{i}]")
    elif isinstance(ours, float) or isinstance(theirs, float):
        assert type(ours) is not bool and type(theirs) is not bool, path
        assert math.isclose(ours, theirs, rel_tol=1e-12, abs_tol=1e-6), (
            f"{path}: {ours} != {theirs}"
        )
    else:
        assert type(ours) is type(theirs) and ours == theirs, f"{path}: {ours!r} != {theirs!r}"


# -- the supervisor's receiving path -----------------------------------------------------


def supervisor_receives(frame: bytes, adapter: pydantic.TypeAdapter[Any]) -> pydantic.BaseModel:
    """Decode one of our frames exactly as the 1.3.2 supervisor does, both ways it can.

    ``length_prefixed_frame_reader`` decodes with msgspec into ``_RequestFrame``; then
    ``_deserialize_request`` (with the runtime's declared schema version) re-validates
    and re-dumps the body before ``decoder.validate_python``. Without a version the
    body is validated directly. Both must accept it and agree.
    """
    size = int.from_bytes(frame[:4], "big")
    assert size == len(frame) - 4
    request = REQUEST_FRAME.decode(frame[4:])
    assert request.body is not None
    direct = adapter.validate_python(request.body)
    model = resolve_body_class(request.body)
    assert model is not None
    upgraded = get_schema_version_migrator().upgrade(request.body, model, SCHEMA_VERSION)
    migrated = adapter.validate_python(upgraded)
    assert migrated == direct
    return direct  # type: ignore[no-any-return]


def our_frame(msg: messages.Request, request_id: int = 1) -> bytes:
    """The bytes we write for ``msg``: encode_body, our codec, our framing."""
    return encode_frame(codec.packb([request_id, encode_body(msg)]))


def adapter_for(tag: str) -> pydantic.TypeAdapter[Any]:
    return TO_MANAGER if tag == "DagFileParsingResult" else TO_SUPERVISOR


def check_accepted(msg: messages.Request) -> None:
    """The supervisor accepts ``msg`` as the same class, with the same field values."""
    received = supervisor_receives(our_frame(msg), adapter_for(msg.TYPE or ""))
    assert type(received).__name__ == msg.TYPE
    assert_same(_plain(encode_body(msg)), _plain(received))


# == schema parity ========================================================================

#: (our class, field) -> why it differs from the real model on purpose.
DEVIATIONS: dict[tuple[str, str], str] = {
    ("SucceedTask", "task_outlets"): "never null: a null list gets HTTP 422 (§5.7)",
    ("SucceedTask", "outlet_events"): "never null: a null list gets HTTP 422 (§5.7)",
    ("DeferTask", "trigger_kwargs"): "never null: the API rejects null kwargs (§5.7)",
    ("DeferTask", "next_kwargs"): "never null: the API rejects null kwargs (§5.7)",
    ("AwaitInputTask", "next_kwargs"): "never null: the API rejects null kwargs (§5.7)",
}


def _model_in(tp: Any, base: type) -> type | None:
    """The one model class inside an annotation (``X``, ``X | None``, ``list[X]``)."""
    if isinstance(tp, type) and issubclass(tp, base):
        return tp
    args = typing.get_args(tp)
    if typing.get_origin(tp) is typing.Annotated:
        args = args[:1]
    found = {m for m in (_model_in(a, base) for a in args) if m is not None}
    return found.pop() if len(found) == 1 else None


def _our_default(f: dataclasses.Field[Any]) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _real_accepts_none(info: pydantic.fields.FieldInfo) -> bool:
    try:
        pydantic.TypeAdapter(info.annotation).validate_python(None)
    except pydantic.ValidationError:
        return False
    return True


def _our_accepts_none(cls: type[Model], name: str) -> bool:
    (enc,) = (row.encoder for row in _schema_of(cls) if row.name == name)
    try:
        enc(None, name)
    except LocalProtocolError:
        return False
    return True


def _parity_problems(ours: type[Model], theirs: type[pydantic.BaseModel]) -> list[str]:
    """Every way ``ours`` (and the nested models it holds) differs from ``theirs``."""
    problems: list[str] = []
    hints = typing.get_type_hints(ours, include_extras=True)
    our_fields = {f.name: f for f in dataclasses.fields(ours)}  # type: ignore[arg-type]
    # "type" is the tag of a tagged model, but a data field of AssetProfile.
    skip = "type" if ours.TYPE is not None else None
    real_fields = {(i.alias or n): i for n, i in theirs.model_fields.items() if n != skip}
    where = f"{ours.__name__} vs {theirs.__name__}"
    if our_fields.keys() != real_fields.keys():
        return [f"{where}: fields {sorted(our_fields)} != {sorted(real_fields)}"]
    for name, f in our_fields.items():
        info = real_fields[name]
        if (ours.__name__, name) in DEVIATIONS:
            continue
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required != info.is_required():
            problems.append(f"{where}.{name}: required {required} != {info.is_required()}")
        elif not required and _plain(_our_default(f)) != _plain(
            info.get_default(call_default_factory=True)
        ):
            problems.append(f"{where}.{name}: default {_our_default(f)!r} != {info.default!r}")
        if _our_accepts_none(ours, name) != _real_accepts_none(info):
            problems.append(f"{where}.{name}: nullable {_our_accepts_none(ours, name)}")
        nested = _model_in(hints[name], Model), _model_in(info.annotation, pydantic.BaseModel)
        if nested[0] is not None and nested[1] is not None:
            problems += _parity_problems(*nested)
    return problems


@pytest.mark.parametrize("tag", sorted({*REQUESTS, *INBOUND}))
def test_fields_mirror_the_real_model(tag: str) -> None:
    """Each body and its nested models have the real fields, required-ness, nullability and defaults."""
    ours = REQUESTS.get(tag) or INBOUND[tag]
    assert _parity_problems(ours, REAL_BY_TAG[tag]) == []


def test_deviations_are_real_deviations() -> None:
    """Every listed deviation is a field where the real model is nullable and ours is not."""
    for cls_name, name in DEVIATIONS:
        ours = REQUESTS[cls_name]
        assert not _our_accepts_none(ours, name)
        assert _real_accepts_none(REAL_REQUESTS[cls_name].model_fields[name])


# == requests: runtime -> supervisor ======================================================


def test_request_tags_are_the_real_union() -> None:
    """Our request registry is exactly ToSupervisor, plus the parse workload's result."""
    assert set(REQUESTS) - {"DagFileParsingResult"} == set(REAL_REQUESTS)
    assert "DagFileParsingResult" in _union_members(real_processor.ToManager)


def test_terminal_types_are_the_six_of_section_6() -> None:
    """Exactly the six terminal requests of §6.1 end a run."""
    assert {
        "SucceedTask",
        "TaskState",
        "RetryTask",
        "DeferTask",
        "RescheduleTask",
        "AwaitInputTask",
    } == messages.TERMINAL_TYPES


def test_results_are_reply_bodies_of_the_real_union() -> None:
    """Every class a request names as its RESULT is a body the supervisor can send."""
    for cls in REQUESTS.values():
        for result in cls.RESULT:
            assert result.TYPE in REAL_REPLIES, (cls.TYPE, result.TYPE)


ASSET = messages.AssetProfile(name="orders", uri="s3://bucket/orders", type="Asset")

#: At least one instance of every request class, with datetimes, nulls and nesting.
EXAMPLES: list[messages.Request] = [
    # §5.1
    messages.GetConnection(conn_id="warehouse"),
    messages.GetVariable(key="threshold"),
    messages.GetVariableKeys(),
    messages.GetVariableKeys(prefix="etl_", limit=10, offset=20),
    messages.PutVariable(key="k", value=None, description=None),
    messages.PutVariable(key="k", value="v", description="why"),
    messages.DeleteVariable(key="k"),
    # §5.2
    messages.GetXCom(key="return_value", dag_id="d", run_id="r", task_id="t"),
    messages.GetXCom(
        key="k", dag_id="d", run_id="r", task_id="t", map_index=3, include_prior_dates=True
    ),
    messages.GetXComCount(key="k", dag_id="d", run_id="r", task_id="t"),
    messages.GetXComSequenceItem(key="k", dag_id="d", run_id="r", task_id="t", offset=-1),
    messages.GetXComSequenceSlice(
        key="k", dag_id="d", run_id="r", task_id="t", start=None, stop=5, step=None
    ),
    messages.SetXCom(
        key="k", value={"a": [1, 2.5, None, "x", {"b": True}]}, dag_id="d", run_id="r", task_id="t"
    ),
    messages.SetXCom(
        key="k",
        value=None,
        dag_id="d",
        run_id="r",
        task_id="t",
        map_index=0,
        dag_result=True,
        mapped_length=4,
    ),
    messages.DeleteXCom(key="k", dag_id="d", run_id="r", task_id="t", map_index=None),
    # §5.3
    messages.GetTaskStateStore(ti_id=TI_ID, key="cursor"),
    messages.SetTaskStateStore(
        ti_id=TI_ID, key="cursor", value={"offset": 10}, expires_at=T_OFFSET
    ),
    messages.SetTaskStateStore(
        ti_id=uuid.UUID(TI_ID), key="cursor", value=[1, "a"], expires_at=None
    ),
    messages.DeleteTaskStateStore(ti_id=TI_ID, key="cursor"),
    messages.ClearTaskStateStore(ti_id=TI_ID),
    messages.GetAssetStateStoreByName(name="orders", key="watermark"),
    messages.GetAssetStateStoreByUri(uri="s3://bucket/orders", key="watermark"),
    messages.SetAssetStateStoreByName(name="orders", key="watermark", value="2024-01-01"),
    messages.SetAssetStateStoreByUri(uri="s3://bucket/orders", key="watermark", value=17),
    messages.DeleteAssetStateStoreByName(name="orders", key="watermark"),
    messages.DeleteAssetStateStoreByUri(uri="s3://bucket/orders", key="watermark"),
    messages.ClearAssetStateStoreByName(name="orders"),
    messages.ClearAssetStateStoreByUri(uri="s3://bucket/orders"),
    # §5.4
    messages.GetAssetByName(name="orders"),
    messages.GetAssetByUri(uri="s3://bucket/orders"),
    messages.GetAssetsByAlias(alias_name="all-orders"),
    messages.GetAssetEventByAsset(name="orders", uri=None),
    messages.GetAssetEventByAsset(
        name=None, uri="s3://x", after=T_1960, before=T_2600, limit=5, ascending=False
    ),
    messages.GetAssetEventByAssetAlias(alias_name="all-orders", after=T_MICROS),
    messages.ValidateInletsAndOutlets(ti_id=TI_ID),
    # §5.5
    messages.GetDag(dag_id="etl"),
    messages.GetDagRun(dag_id="etl", run_id="manual__1"),
    messages.GetDagRunState(dag_id="etl", run_id="manual__1"),
    messages.GetDRCount(
        dag_id="etl", logical_dates=[T_SECONDS, T_OFFSET], run_ids=None, states=["success"]
    ),
    messages.GetPreviousDagRun(dag_id="etl", logical_date=T_SECONDS, state="success"),
    messages.GetPrevSuccessfulDagRun(ti_id=TI_ID),
    messages.GetPreviousTI(dag_id="etl", task_id="load"),
    messages.GetPreviousTI(
        dag_id="etl", task_id="load", logical_date=T_MICROS, map_index=2, state="up_for_retry"
    ),
    messages.GetTaskRescheduleStartDate(ti_id=TI_ID, try_number=2),
    messages.GetTICount(
        dag_id="etl",
        map_index=0,
        task_ids=["a", "b"],
        task_group_id="g",
        logical_dates=[T_1960],
        run_ids=["r"],
        states=["failed"],
    ),
    messages.GetTaskStates(dag_id="etl", task_group_id="g", run_ids=["r1", "r2"]),
    messages.GetTaskBreadcrumbs(dag_id="etl", run_id="r"),
    messages.TriggerDagRun(dag_id="report", run_id="triggered__1"),
    messages.TriggerDagRun(
        dag_id="report",
        run_id="t2",
        logical_date=T_SECONDS,
        run_after=T_2600,
        conf={"day": "mon", "n": [1, 2]},
        reset_dag_run=True,
        partition_key="p1",
        note="from etl",
    ),
    # §5.6
    messages.SetRenderedFields(rendered_fields={"sql": "select 1", "params": {"a": None}}),
    messages.SetRenderedMapIndex(rendered_map_index="customer-42"),
    messages.MaskSecret(value="hunter2", name="password"),
    messages.MaskSecret(value={"token": ["a", "b"]}),
    messages.ResendLoggingFD(),
    messages.CreateHITLDetailPayload(
        ti_id=TI_ID, options=["approve", "reject"], subject="Ship it?"
    ),
    messages.CreateHITLDetailPayload(
        ti_id=TI_ID,
        options=["a"],
        subject="s",
        body="**why**",
        defaults=["a"],
        multiple=None,
        params={"limit": 3},
        assigned_users=[messages.HITLUser(id="7", name="ada")],
    ),
    messages.UpdateHITLDetail(ti_id=TI_ID, chosen_options=["approve"], params_input={"x": 1}),
    messages.GetHITLDetailResponse(ti_id=TI_ID),
    # §5.7
    messages.SucceedTask(end_date=T_MICROS),
    messages.SucceedTask(
        end_date=T_OFFSET,
        task_outlets=[ASSET, messages.AssetProfile(name="alias", type="AssetAlias")],
        outlet_events=[
            {"dest_asset_key": {"name": "orders", "uri": "s3://bucket/orders"}, "extra": {}}
        ],
        rendered_map_index="label",
    ),
    messages.TaskState(state="failed", end_date=T_SECONDS, rendered_map_index=None),
    messages.TaskState(state="removed"),
    messages.RetryTask(end_date=T_SECONDS, retry_delay_seconds=30, retry_reason="x" * 600),
    messages.DeferTask(
        classpath="airflow.triggers.temporal.DateTimeTrigger", next_method="execute_complete"
    ),
    messages.DeferTask(
        classpath="my.Trigger",
        trigger_kwargs="encrypted-blob",
        trigger_timeout=90,
        queue="triggers",
        next_method="resume",
        next_kwargs={"event": None},
        rendered_map_index="m",
    ),
    messages.DeferTask(
        classpath="c",
        next_method="m",
        trigger_timeout=datetime.timedelta(minutes=1, microseconds=5),
    ),
    messages.RescheduleTask(reschedule_date=T_2600, end_date=T_SECONDS),
    messages.AwaitInputTask(next_method="execute_complete"),
    messages.AwaitInputTask(
        next_method="m", next_kwargs={"a": 1}, timeout=0.5, rendered_map_index=None
    ),
    messages.SkipDownstreamTasks(tasks=["report", ("mapped", 3)]),
    # dag-parsing.md §2.3
    messages.DagFileParsingResult(fileloc="/dags/etl.py", serialized_dags=[]),
    messages.DagFileParsingResult(
        fileloc="/dags/etl.py",
        serialized_dags=[
            messages.SerializedDag(
                data={"__version": 3, "dag": {"dag_id": "etl"}}, last_loaded=T_MICROS
            )
        ],
        warnings=[
            messages.DagWarning(dag_id="etl", warning_type="non-existent pool", message="pool p")
        ],
        import_errors={"etl.py": "Traceback ..."},
    ),
]


def test_every_request_class_has_an_example() -> None:
    """The example table covers every request class in the registry."""
    assert {type(m).TYPE for m in EXAMPLES} == set(REQUESTS)


@pytest.mark.parametrize("msg", EXAMPLES, ids=lambda m: type(m).__name__)
def test_example_request_is_accepted_by_the_real_supervisor(msg: messages.Request) -> None:
    """The supervisor decodes our frame to the same class with the same field values."""
    check_accepted(msg)


def test_explicit_empties_reach_the_supervisor() -> None:
    """Defaulted outlet lists and kwargs maps are sent as [] and {}, never null (§5.7)."""
    received = supervisor_receives(
        our_frame(messages.SucceedTask(end_date=T_SECONDS)), TO_SUPERVISOR
    )
    assert (received.task_outlets, received.outlet_events) == ([], [])
    deferred = supervisor_receives(
        our_frame(messages.DeferTask(classpath="c", next_method="m")), TO_SUPERVISOR
    )
    assert (deferred.trigger_kwargs, deferred.next_kwargs) == ({}, {})
    waiting = supervisor_receives(
        our_frame(messages.AwaitInputTask(next_method="m")), TO_SUPERVISOR
    )
    assert waiting.next_kwargs == {}


def test_durations_arrive_as_timedeltas() -> None:
    """A duration given in seconds (or as a timedelta) arrives as the same timedelta."""
    msg = messages.DeferTask(classpath="c", next_method="m", trigger_timeout=90)
    received = supervisor_receives(our_frame(msg), TO_SUPERVISOR)
    assert received.trigger_timeout == datetime.timedelta(seconds=90)
    msg = messages.AwaitInputTask(next_method="m", timeout=datetime.timedelta(hours=2))
    assert supervisor_receives(our_frame(msg), TO_SUPERVISOR).timeout == datetime.timedelta(hours=2)


# -- Hypothesis: instances of every request class, derived from the annotations ---------

_INT64 = st.integers(-(2**63), 2**63 - 1)
_FINITE = st.floats(allow_nan=False, allow_infinity=False)
_JSON = st.recursive(
    st.none() | st.booleans() | _INT64 | _FINITE | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
# Aware instants in every timestamp width, with offsets; pydantic's range is years 1-9999.
_DATETIMES = st.datetimes(
    min_value=datetime.datetime(1, 1, 2),
    max_value=datetime.datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, datetime.timezone(datetime.timedelta(hours=-7, minutes=-30))]),
)
_SECONDS = st.floats(min_value=-8.6e13, max_value=8.6e13) | st.timedeltas(
    min_value=datetime.timedelta(days=-(10**6)), max_value=datetime.timedelta(days=10**6)
)


def strategy_for(tp: Any) -> st.SearchStrategy[Any]:
    """Values of an annotation of ours, one strategy per field kind."""
    if tp in (JsonValue, AnyValue):
        return _JSON
    if tp == UUIDStr:
        return st.uuids().map(str) | st.uuids()
    if tp == Seconds:
        return _SECONDS
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    simple: dict[Any, st.SearchStrategy[Any]] = {
        str: st.text(),
        int: _INT64,
        float: _FINITE,
        bool: st.booleans(),
        type(None): st.none(),
        datetime.datetime: _DATETIMES,
    }
    if tp in simple:
        return simple[tp]
    if isinstance(tp, type) and issubclass(tp, Model):
        return instances_of(tp)
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin is list:
        return st.lists(strategy_for(args[0]), max_size=3)
    if origin is tuple:
        return st.tuples(*map(strategy_for, args))
    if origin is dict:
        return st.dictionaries(st.text(max_size=6), strategy_for(args[1]), max_size=3)
    if origin is typing.Union or origin is types.UnionType:
        return st.one_of(*map(strategy_for, args))
    raise AssertionError(f"no strategy for {tp!r}")


def _constructs(cls: type[Model]) -> Any:
    def check(kwargs: dict[str, Any]) -> bool:
        try:
            cls(**kwargs)
        except LocalProtocolError:  # a model's own check (empty options...)
            return False
        return True

    return check


def instances_of(cls: type[Model]) -> st.SearchStrategy[Any]:
    """Instances of one of our models: required fields always, defaulted ones sometimes."""
    hints = typing.get_type_hints(cls, include_extras=True)
    required, optional = {}, {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        has_default = (
            f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        )
        (optional if has_default else required)[f.name] = strategy_for(hints[f.name])
    kwargs = st.fixed_dictionaries(required, optional=optional)
    return kwargs.filter(_constructs(cls)).map(lambda kw: cls(**kw))


@pytest.mark.parametrize("cls", list(REQUESTS.values()), ids=list(REQUESTS))
@given(data=st.data())
def test_generated_request_is_accepted_by_the_real_supervisor(
    cls: type[messages.Request], data: st.DataObject
) -> None:
    """Any value our encoder lets through, the supervisor accepts with the same field values."""
    check_accepted(data.draw(instances_of(cls)))


# == replies: supervisor -> runtime =======================================================


def _dag_run(**overrides: Any) -> api.DagRun:
    fields: dict[str, Any] = {
        "dag_id": "etl",
        "run_id": "scheduled__2024-01-02",
        "logical_date": T_SECONDS,
        "data_interval_start": T_1960,
        "data_interval_end": T_2600,
        "run_after": T_MICROS,
        "start_date": T_MICROS,
        "end_date": None,
        "clear_number": 1,
        "run_type": api.DagRunType.SCHEDULED,
        "state": api.DagRunState.RUNNING,
        "conf": {"threshold": 3, "nested": {"list": [1, None, "x"]}},
        "triggering_user_name": None,
        "consumed_asset_events": [
            api.AssetEventDagRunReference(
                asset=api.AssetReferenceAssetEventDagRun(
                    name="orders", uri="s3://o", extra={"k": "v"}
                ),
                extra={"rows": 12},
                source_task_id="extract",
                source_dag_id="upstream",
                source_run_id="r0",
                source_map_index=None,
                source_aliases=[api.AssetAliasReferenceAssetEventDagRun(name="all-orders")],
                timestamp=T_1960,
                partition_key=None,
            )
        ],
        "partition_key": None,
        "note": "rerun",
    }
    return api.DagRun(**{**fields, **overrides})


def _startup_details() -> real.StartupDetails:
    return real.StartupDetails(
        ti=api.TaskInstance(
            id=uuid.UUID(TI_ID),
            task_id="load",
            dag_id="etl",
            run_id="scheduled__2024-01-02",
            try_number=2,
            dag_version_id=uuid.UUID(DAG_VERSION_ID),
            map_index=-1,
            context_carrier={
                "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            },
        ),
        dag_rel_path="etl.py",
        bundle_info=api.BundleInfo(name="trio-bundle", version=None),
        start_date=T_MICROS,
        ti_context=api.TIRunContext(
            dag_run=_dag_run(),
            max_tries=3,
            variables=[api.VariableResponse(key="v", value=None)],
            connections=[
                api.ConnectionResponse(
                    conn_id="db",
                    conn_type="postgres",
                    host="db.internal",
                    schema="analytics",
                    login=None,
                    password="pw",
                    port=5432,
                    extra='{"sslmode": "require"}',
                )
            ],
            next_method="resume",
            next_kwargs={"event": [1, 2]},
            xcom_keys_to_clear=["return_value"],
            should_retry=True,
            start_date=T_SECONDS,
        ),
        sentry_integration="",
    )


_ASSET = api.AssetResponse(name="orders", uri="s3://o", group="asset", extra={"owner": None})
_HITL = api.HITLDetailRequest(
    ti_id=uuid.UUID(TI_ID),
    options=["approve", "reject"],
    subject="Ship it?",
    defaults=["approve"],
    params={"limit": 3},
    assigned_users=[api.HITLUser(id="7", name="ada")],
)

#: Every body the supervisor sends, as (real model, the dump options send_msg uses).
REPLIES: list[tuple[pydantic.BaseModel, dict[str, bool]]] = [
    (_startup_details(), {}),
    (
        real_processor.DagFileParseRequest(
            file="/bundle/etl.py",
            bundle_path=pathlib.Path("/bundle"),
            bundle_name="trio-bundle",
            callback_requests=[
                real_processor.DagCallbackRequest(
                    filepath="etl.py",
                    bundle_name="trio-bundle",
                    bundle_version=None,
                    dag_id="etl",
                    run_id="r",
                )
            ],
        ),
        {},
    ),
    (
        real.AssetResult.from_asset_response(
            api.AssetResponse(name="a", uri="s3://a", group="asset")
        ),
        {"exclude_unset": True},
    ),
    (real.AssetsByAliasResult(assets=[real.AssetResult.from_asset_response(_ASSET)]), {}),
    (
        real.AssetEventsResult.from_asset_events_response(
            api.AssetEventsResponse(
                asset_events=[
                    api.AssetEventResponse(
                        id=41,
                        timestamp=T_MICROS,
                        asset=_ASSET,
                        created_dagruns=[
                            api.DagRunAssetReference(
                                run_id="r",
                                dag_id="d",
                                logical_date=None,
                                start_date=T_1960,
                                end_date=T_2600,
                                state="success",
                                data_interval_start=None,
                                data_interval_end=None,
                                partition_key="p",
                            )
                        ],
                        source_task_id="t",
                        source_map_index=-1,
                    )
                ]
            )
        ),
        {"exclude_unset": True},
    ),
    (
        real.AssetStateStoreResult.from_asset_state_store_response(
            api.AssetStateStoreResponse(value={"a": [1]})
        ),
        {},
    ),
    (
        real.ConnectionResult.from_conn_response(
            api.ConnectionResponse(
                conn_id="db",
                conn_type="postgres",
                host=None,
                schema="s",
                login="u",
                password=None,
                port=None,
                extra=None,
            )
        ),
        {"exclude_unset": True, "by_alias": True},
    ),
    (
        real.DagRunResult.from_api_response(
            _dag_run(consumed_asset_events=[], partition_key="2024-01")
        ),
        {},
    ),
    (real.DagRunStateResult(state=api.DagRunState.SUCCESS), {}),
    (real.DRCount(count=3), {}),
    (
        real.DagResult.from_api_response(
            api.DagResponse(
                dag_id="etl",
                is_paused=False,
                bundle_name="trio-bundle",
                bundle_version=None,
                relative_fileloc="etl.py",
                owners="airflow",
                tags=["etl", "daily"],
                next_dagrun=T_2600,
            )
        ),
        {},
    ),
    (
        real.ErrorResponse(
            error=real.ErrorType.CONNECTION_NOT_FOUND, detail={"conn_id": "missing"}
        ),
        {},
    ),
    (
        real.PrevSuccessfulDagRunResult.from_dagrun_response(
            api.PrevSuccessfulDagRunResponse(data_interval_start=T_1960, start_date=T_MICROS)
        ),
        {"exclude_unset": True},
    ),
    (
        real.PreviousTIResult(
            task_instance=api.PreviousTIResponse(
                task_id="t",
                dag_id="d",
                run_id="r",
                start_date=T_SECONDS,
                state="success",
                try_number=1,
                duration=1.5,
            )
        ),
        {},
    ),
    (real.SentFDs(fds=[7]), {}),
    (real.TaskRescheduleStartDate(start_date=None), {}),
    (
        real.TaskStateStoreResult.from_task_state_store_response(
            api.TaskStateStoreResponse(value=None)
        ),
        {},
    ),
    (real.TICount(count=0), {}),
    (
        real.TaskBreadcrumbsResult.from_api_response(
            api.TaskBreadcrumbsResponse(
                breadcrumbs=[{"task_id": "a", "map_index": -1, "state": None}]
            )
        ),
        {},
    ),
    (
        real.TaskStatesResult.from_api_response(
            api.TaskStatesResponse(task_states={"r1": {"a": "success"}})
        ),
        {},
    ),
    (
        real.VariableResult.from_variable_response(api.VariableResponse(key="k", value="v")),
        {"exclude_unset": True},
    ),
    (  # As handle_get_variable_keys builds it: an unset type would be dropped by exclude_unset.
        real.VariableKeysResult(keys=["a", "b"], total_entries=12, type="VariableKeysResult"),
        {"exclude_unset": True},
    ),
    (real.XComCountResponse(len=4), {}),
    (
        real.XComResult.from_xcom_response(api.XComResponse(key="k", value=None)),
        {"exclude_unset": True},
    ),
    (
        real.XComResult.from_xcom_response(api.XComResponse(key="k", value={"a": [1, 2.5, None]})),
        {"exclude_unset": True},
    ),
    (real.XComSequenceIndexResult(root=["x", 1]), {}),
    (real.XComSequenceSliceResult(root=[1, None, {"a": "b"}]), {}),
    (
        real.InactiveAssetsResult.from_inactive_assets_response(
            api.InactiveAssetsResponse(
                inactive_assets=[api.AssetProfile(name="a", uri="s3://a", type="Asset")]
            )
        ),
        {"exclude_unset": True},
    ),
    (
        real.InactiveAssetsResult.from_inactive_assets_response(api.InactiveAssetsResponse()),
        {"exclude_unset": True},
    ),
    (real.CreateHITLDetailPayload(**_HITL.model_dump()), {}),
    (real.HITLDetailRequestResult.from_api_response(_HITL), {"exclude_unset": True}),
    (real.OKResponse(ok=True), {}),
    (real.PreviousDagRunResult(dag_run=_dag_run()), {}),
    (real.PreviousDagRunResult(dag_run=None), {}),
]


def supervisor_sends(
    model: pydantic.BaseModel, dump_opts: dict[str, bool], request_id: int = 7
) -> bytes:
    """The bytes ``send_msg`` writes for ``model`` (python-mode dump, msgspec frame)."""
    return bytes(real._ResponseFrame(id=request_id, body=model.model_dump(**dump_opts)).as_bytes())


def test_reply_tags_are_the_real_union() -> None:
    """Our inbound registry is exactly ToTask, plus the parse workload's first frame."""
    assert set(INBOUND) - {"DagFileParseRequest"} == set(REAL_REPLIES)


def test_every_real_reply_type_has_an_example() -> None:
    """The reply table covers every body the supervisor can send."""
    assert {type(m).__name__ for m, _ in REPLIES} == set(INBOUND)


@pytest.mark.parametrize(("model", "dump_opts"), REPLIES, ids=lambda v: type(v).__name__)
def test_real_reply_decodes_to_the_same_values(
    model: pydantic.BaseModel, dump_opts: dict[str, bool]
) -> None:
    """A body sent as send_msg sends it decodes to our class with every field equal."""
    frame = supervisor_sends(model, dump_opts)
    request_id, body, error = codec.unpackb(frame[4:])
    assert (request_id, error) == (7, None)
    ours = decode_body(body)
    assert type(ours).__name__ == type(model).__name__
    assert_same(_ours(ours), _plain(model))


def test_startup_connections_use_the_field_name() -> None:
    """StartupDetails dumps ti_context.connections without aliases; we still read their schema."""
    body = _startup_details().model_dump()
    assert "schema_" in body["ti_context"]["connections"][0]
    ours = decode_body(codec.unpackb(supervisor_sends(_startup_details(), {})[4:])[1])
    assert isinstance(ours, messages.StartupDetails)
    assert ours.ti_context.connections is not None
    assert ours.ti_context.connections[0].schema == "analytics"


# == negative cases =======================================================================


def _reply_body(name: str) -> dict[str, Any]:
    """A fresh decoded body of the first reply of that class in :data:`REPLIES`."""
    model, dump_opts = next(r for r in REPLIES if type(r[0]).__name__ == name)
    body = codec.unpackb(supervisor_sends(model, dump_opts)[4:])[1]
    assert isinstance(body, dict)
    return body


_REQUIRED_KEYS = [
    (tag, row.name) for tag, cls in INBOUND.items() for row in _schema_of(cls) if row.required
]


@pytest.mark.parametrize(("tag", "key"), _REQUIRED_KEYS)
def test_missing_required_key_is_named(tag: str, key: str) -> None:
    """A reply without one of its required keys raises RemoteProtocolError naming the key."""
    body = _reply_body(tag)
    del body[key]
    with pytest.raises(RemoteProtocolError, match=rf"required key {key!r} is missing"):
        decode_body(body)


def test_missing_nested_key_names_the_path() -> None:
    """A nested required key that is missing is reported with the path to its map."""
    body = _reply_body("StartupDetails")
    del body["ti_context"]["dag_run"]["run_after"]
    with pytest.raises(
        RemoteProtocolError, match=r"StartupDetails\.ti_context\.dag_run: required key 'run_after'"
    ):
        decode_body(body)


@pytest.mark.parametrize(
    ("tag", "path", "value", "named"),
    [
        (
            "StartupDetails",
            ("ti", "try_number"),
            "2",
            r"StartupDetails\.ti\.try_number: expected int, got str",
        ),
        (
            "StartupDetails",
            ("ti_context", "dag_run", "run_after"),
            17,
            r"StartupDetails\.ti_context\.dag_run\.run_after",
        ),
        (
            "StartupDetails",
            ("ti_context", "dag_run", "state"),
            7,
            r"StartupDetails\.ti_context\.dag_run\.state",
        ),
        (
            "AssetsByAliasResult",
            ("assets", 0, "name"),
            None,
            r"AssetsByAliasResult\.assets\[0\]\.name: expected str, got nil",
        ),
        ("VariableResult", ("value",), 5, r"VariableResult\.value"),
        ("ErrorResponse", ("error",), ["TEAPOT"], r"ErrorResponse\.error"),
    ],
    ids=lambda v: str(v),
)
def test_wrong_type_names_the_field_path(
    tag: str, path: tuple[Any, ...], value: Any, named: str
) -> None:
    """A value of the wrong type raises RemoteProtocolError with the full field path."""
    body = _reply_body(tag)
    target = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    with pytest.raises(RemoteProtocolError, match=named):
        decode_body(body)


def test_unknown_keys_are_ignored() -> None:
    """Keys a newer supervisor might add, at any depth, change nothing (§12 row 43)."""
    body = _reply_body("StartupDetails")
    expected = decode_body(body)
    body["stub_args"] = {"x": 1}
    body["ti"]["new_field"] = [1]
    body["ti_context"]["dag_run"]["consumed_asset_events"][0]["asset"]["group"] = "asset"
    body["bundle_info"]["version_data"] = None
    assert decode_body(body) == expected


def test_unknown_tag_is_rejected() -> None:
    """A body whose type tag we do not know is a RemoteProtocolError, not a silent default."""
    with pytest.raises(RemoteProtocolError, match="unknown message type 'ForwardMetrics'"):
        decode_body({"type": "ForwardMetrics"})


def _supervisor_rejects(
    body: dict[str, Any], adapter: pydantic.TypeAdapter[Any] = TO_SUPERVISOR
) -> bool:
    """Whether the supervisor would drop ``body`` (encoded by msgspec, as any peer could)."""
    request = REQUEST_FRAME.decode(msgspec.msgpack.encode([1, body]))
    try:
        adapter.validate_python(request.body)
    except (pydantic.ValidationError, ValueError, OverflowError):
        return True
    return False


NAIVE = datetime.datetime(2024, 1, 1)

#: (message our encoder must refuse, the path its error names). Each is built without
#: validation, so the same value can be shown to the real supervisor too.
REFUSED: list[tuple[messages.Request, str]] = [
    (messages.SucceedTask(end_date=NAIVE), "SucceedTask.end_date"),
    (
        messages.GetAssetEventByAssetAlias(alias_name="a", after=NAIVE),
        "GetAssetEventByAssetAlias.after",
    ),
    (
        messages.GetDRCount(dag_id="d", logical_dates=[T_SECONDS, NAIVE]),
        r"GetDRCount.logical_dates[1]",
    ),
    (
        messages.SetXCom(key="k", value=b"bytes", dag_id="d", run_id="r", task_id="t"),
        "SetXCom.value",
    ),
    (
        messages.SetXCom(key="k", value={"a": [{1: "x"}]}, dag_id="d", run_id="r", task_id="t"),
        "SetXCom.value.a",
    ),
    (messages.MaskSecret(value={2: "x"}), "MaskSecret.value"),
    (messages.TaskState(state="success"), "TaskState.state"),  # type: ignore[arg-type]
    (messages.GetPreviousTI(dag_id="d", task_id="t", state="paused"), "GetPreviousTI.state"),  # type: ignore[arg-type]
    (messages.SucceedTask(end_date=T_SECONDS, state="failed"), "SucceedTask.state"),  # type: ignore[arg-type]
    (messages.GetVariable(key=5), "GetVariable.key"),  # type: ignore[arg-type]
    (messages.GetVariable(key=None), "GetVariable.key"),  # type: ignore[arg-type]
    (messages.GetTaskStateStore(ti_id="not-a-uuid", key="k"), "GetTaskStateStore.ti_id"),
    (
        messages.DeferTask(classpath="c", next_method="m", trigger_timeout=1e15),
        "DeferTask.trigger_timeout",
    ),
    (messages.SkipDownstreamTasks(tasks=[("t", 1.5)]), "SkipDownstreamTasks.tasks[0]"),  # type: ignore[list-item]
    (
        messages.SucceedTask(end_date=T_SECONDS, task_outlets=[{"name": "x"}]),
        "SucceedTask.task_outlets[0]",
    ),  # type: ignore[list-item]
]


@pytest.mark.parametrize(("msg", "named"), REFUSED, ids=lambda v: str(v)[:60])
def test_refused_value_names_the_field(msg: messages.Request, named: str) -> None:
    """encode_body refuses the value with LocalProtocolError naming the field path."""
    with pytest.raises(LocalProtocolError) as info:
        encode_body(msg)
    assert named in str(info.value)


@pytest.mark.parametrize(("msg", "named"), REFUSED, ids=lambda v: str(v)[:60])
def test_refused_value_would_be_dropped_by_the_supervisor(
    msg: messages.Request, named: str
) -> None:
    """The value we refuse is one the real supervisor rejects, so it would never have answered."""
    assert _supervisor_rejects(_ours(msg))


def test_refusal_table_is_not_vacuous() -> None:
    """The rejection helper accepts a valid body, so the check above can fail."""
    assert not _supervisor_rejects(_ours(messages.SucceedTask(end_date=T_SECONDS)))


@pytest.mark.parametrize(
    "build",
    [
        lambda: messages.CreateHITLDetailPayload(ti_id=TI_ID, options=[], subject="s"),
        lambda: messages.UpdateHITLDetail(ti_id=TI_ID, chosen_options=[]),
    ],
    ids=["CreateHITLDetailPayload", "UpdateHITLDetail"],
)
def test_empty_hitl_options_are_refused_like_the_supervisor(build: Any) -> None:
    """An empty option list fails at construction, as pydantic's min_length=1 would."""
    with pytest.raises(LocalProtocolError, match="must not be empty"):
        build()
    body = {"type": "UpdateHITLDetail", "ti_id": TI_ID, "chosen_options": []}
    assert _supervisor_rejects(body)
    body = {"type": "CreateHITLDetailPayload", "ti_id": TI_ID, "options": [], "subject": "s"}
    assert _supervisor_rejects(body)


def test_parse_result_without_dags_list_is_refused_like_the_manager() -> None:
    """A null serialized_dags is refused here, as the parse manager refuses it."""
    msg = messages.DagFileParsingResult(fileloc="/f.py", serialized_dags=None)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match=r"DagFileParsingResult\.serialized_dags"):
        encode_body(msg)
    assert _supervisor_rejects(_ours(msg), TO_MANAGER)


# == StartupDetails, field by field against the real model ================================

#: How the real task runner reads a first frame: msgspec, then ``TypeAdapter(ToTask)``.
_FIRST_FRAME = msgspec.msgpack.Decoder(real._ResponseFrame)


def _startup_body() -> dict[str, Any]:
    """A valid StartupDetails body as the wire carries it, with the alias the model reads.

    The python-mode dump writes ``schema_`` (which we accept too); the real model only
    validates ``schema``, so the table uses that key to let both sides see one body.
    """
    body = _reply_body("StartupDetails")
    for conn in body["ti_context"]["connections"]:
        conn["schema"] = conn.pop("schema_")
    return body


def _real_accepts_startup(body: dict[str, Any]) -> bool:
    frame = _FIRST_FRAME.decode(msgspec.msgpack.encode([0, body, None]))
    try:
        TO_TASK.validate_python(frame.body)
    except pydantic.ValidationError:
        return False
    return True


def _leaf_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key and list index under ``value``, outermost first (not ``type``)."""
    found: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if path == () and key == "type":
            continue
        found.append((*path, key))
        if isinstance(item, dict | list):
            found += _leaf_paths(item, (*path, key))
    return found


_DELETE = object()
#: Each way a field can be broken on the wire (all producible by a msgpack peer).
_BREAKAGES: dict[str, Any] = {
    "missing": _DELETE,
    "nil": None,
    "int": 5,
    "negative": -3,
    "huge int": 2**64 - 1,
    "float": 1.5,
    "bool": True,
    "str": "x",
    "empty str": "",
    "naive date-time str": "2024-01-01T00:00:00",
    "bin": b"\x00\x01",
    "date-time": T_SECONDS,
    "array": [1],
    "map": {"a": 1},
}

#: Fields whose unknown string values we accept and the real model refuses: enums that
#: a newer Airflow may extend (forward compatibility, protocol.md §12 row 43).
_FORWARD_COMPATIBLE = {("ti_context", "dag_run", "run_type"), ("ti_context", "dag_run", "state")}


def _broken(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any] | None:
    out = copy.deepcopy(body)
    target = out
    for step in path[:-1]:
        target = target[step]
    if value is _DELETE:
        if isinstance(target, list):
            return None
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return out


def _dotted(path: tuple[Any, ...]) -> str:
    return "StartupDetails" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


STARTUP_CASES = [
    (path, how, broken)
    for path in _leaf_paths(_startup_body())
    for how, value in _BREAKAGES.items()
    if (broken := _broken(_startup_body(), path, value)) is not None
    and not _real_accepts_startup(broken)
]


def test_startup_table_is_not_vacuous() -> None:
    """Every top-level and nested model of StartupDetails has broken fields in the table."""
    assert _real_accepts_startup(_startup_body())
    broken_fields = {path for path, _how, _body in STARTUP_CASES}
    assert len(STARTUP_CASES) > 300
    for part in ("ti", "bundle_info", "ti_context", "start_date", "dag_rel_path"):
        assert any(path[0] == part for path in broken_fields), part
    assert ("ti_context", "dag_run", "consumed_asset_events", 0, "asset", "extra") in broken_fields


@pytest.mark.parametrize(
    ("path", "how", "body"),
    STARTUP_CASES,
    ids=[f"{_dotted(p)}={h}" for p, h, _b in STARTUP_CASES],
)
def test_startup_refused_by_the_real_model_is_refused_here(
    path: tuple[Any, ...], how: str, body: dict[str, Any]
) -> None:
    """A StartupDetails the real 1.3.2 runner refuses, we refuse too, naming the field."""
    if path in _FORWARD_COMPATIBLE and how in ("str", "empty str", "naive date-time str"):
        assert isinstance(decode_body(body), messages.StartupDetails)  # unknown enum value
        return
    with pytest.raises(RemoteProtocolError) as caught:
        decode_body(body)
    message = str(caught.value)
    if how == "missing":
        assert f"{_dotted(path[:-1])}: required key {path[-1]!r}" in message
    else:
        # The error names the broken field, or (inside a JSON value) the field holding it.
        named = [_dotted(path[:i]) for i in range(len(path), 0, -1)]
        assert any(f"{n}:" in message or f"{n}[" in message for n in named), message


#: Valid variations of a first frame: (what, change to the canonical body).
STARTUP_VALID: dict[str, Any] = {
    "canonical": lambda b: None,
    "ids as upper-case strings": lambda b: b["ti"].update(id=TI_ID.upper()),
    "ids as 16 bytes": lambda b: b["ti"].update(dag_version_id=uuid.UUID(DAG_VERSION_ID).bytes),
    "RFC 3339 date-times": lambda b: b["ti_context"]["dag_run"].update(
        run_after="2024-01-02T03:04:05Z", logical_date="2024-01-02T03:04:05+02:00"
    ),
    "naive start_date string (a plain datetime field)": lambda b: b.update(
        start_date="2024-01-02T03:04:05"
    ),
    "conf holding bytes and a date-time (an Any field)": lambda b: b["ti_context"][
        "dag_run"
    ].update(conf={"raw": b"\x00", "when": T_SECONDS}),
    "optional keys left out": lambda b: [
        b["ti"].pop(k) for k in ("map_index", "hostname", "context_carrier", "queue")
    ],
    "NaN inside a JSON value": lambda b: b["ti_context"]["dag_run"]["consumed_asset_events"][0][
        "extra"
    ].update(x=math.nan),
}


@pytest.mark.parametrize("change", STARTUP_VALID.values(), ids=STARTUP_VALID.keys())
def test_startup_accepted_by_both(change: Any) -> None:
    """A valid first frame, in each form the real model accepts, is accepted here too."""
    body = _startup_body()
    change(body)
    assert _real_accepts_startup(body)
    assert isinstance(decode_body(body), messages.StartupDetails)


# == JSON values we send: the supervisor's limits =========================================


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [fields.MAX_JSON_DEPTH, fields.MAX_JSON_DEPTH + 1])
def test_json_depth_limit_is_the_supervisors(depth: int) -> None:
    """A SetXCom value nested MAX_JSON_DEPTH deep is sent and accepted; one deeper is refused by both."""
    msg = messages.SetXCom(key="k", value=_nested(depth), dag_id="d", run_id="r", task_id="t")
    body = {"type": "SetXCom", "key": "k", "value": _nested(depth)}
    body |= {"dag_id": "d", "run_id": "r", "task_id": "t"}
    if depth <= fields.MAX_JSON_DEPTH:
        assert not _supervisor_rejects(body)
        encode_body(msg)
    else:
        assert _supervisor_rejects(body)
        with pytest.raises(LocalProtocolError, match=r"SetXCom\.value(\[0\])+: nested deeper"):
            encode_body(msg)
