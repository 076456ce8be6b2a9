"""The client's surface without a supervisor: one method per request kind, the blocking
twin, the error refinement, the state-store expiry and the checks made before sending."""

from __future__ import annotations

import datetime
import inspect
import re
from typing import Any

import pytest
from helpers.frames import FrameFactory

import trio_coord.runtime  # noqa: F401  (the client is normally loaded by the runtime)
from trio_coord import errors
from trio_coord.client import NEVER_EXPIRE, Client, SyncClient
from trio_coord.client._sync import _check_twin, blocking, public_methods
from trio_coord.protocol.messages import (
    REQUESTS,
    TERMINAL_TYPES,
    DagRunStateResult,
    Inbound,
    Request,
    StartupDetails,
    decode_body,
)
from trio_coord.runtime.masking import Masker

WHEN = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)

#: Every request kind -> (client method, args, kwargs) that sends it, or why none does.
#: A kind added to the protocol without a row here fails the first test.
CATALOGUE: dict[str, tuple[str, tuple[Any, ...], dict[str, Any]] | str] = {
    "GetConnection": ("get_connection", ("c",), {}),
    "GetVariable": ("get_variable", ("v",), {}),
    "GetVariableKeys": ("get_variable_keys", (), {}),
    "PutVariable": ("set_variable", ("v", 1), {}),
    "DeleteVariable": ("delete_variable", ("v",), {}),
    "GetXCom": ("get_xcom", (), {}),
    "GetXComCount": ("get_xcom_count", (), {}),
    "GetXComSequenceItem": ("get_xcom_item", (0,), {}),
    "GetXComSequenceSlice": ("get_xcom_slice", (), {}),
    "SetXCom": ("set_xcom", ("k", 1), {}),
    "DeleteXCom": ("delete_xcom", ("k",), {}),
    "GetTaskStateStore": ("get_task_state", ("k",), {}),
    "SetTaskStateStore": ("set_task_state", ("k", 1), {}),
    "DeleteTaskStateStore": ("delete_task_state", ("k",), {}),
    "ClearTaskStateStore": ("clear_task_state", (), {}),
    "GetAssetStateStoreByName": ("get_asset_state", ("k",), {"name": "a"}),
    "GetAssetStateStoreByUri": ("get_asset_state", ("k",), {"uri": "u"}),
    "SetAssetStateStoreByName": ("set_asset_state", ("k", 1), {"name": "a"}),
    "SetAssetStateStoreByUri": ("set_asset_state", ("k", 1), {"uri": "u"}),
    "DeleteAssetStateStoreByName": ("delete_asset_state", ("k",), {"name": "a"}),
    "DeleteAssetStateStoreByUri": ("delete_asset_state", ("k",), {"uri": "u"}),
    "ClearAssetStateStoreByName": ("clear_asset_state", (), {"name": "a"}),
    "ClearAssetStateStoreByUri": ("clear_asset_state", (), {"uri": "u"}),
    "GetAssetByName": ("get_asset", (), {"name": "a"}),
    "GetAssetByUri": ("get_asset", (), {"uri": "u"}),
    "GetAssetsByAlias": ("get_assets_by_alias", ("al",), {}),
    "GetAssetEventByAsset": ("get_asset_events", (), {"name": "a"}),
    "GetAssetEventByAssetAlias": ("get_asset_alias_events", ("al",), {}),
    "ValidateInletsAndOutlets": ("validate_inlets_and_outlets", (), {}),
    "GetDag": ("get_dag", (), {}),
    "GetDagRun": ("get_dagrun", (), {}),
    "GetDagRunState": ("get_dagrun_state", (), {}),
    "GetDRCount": ("get_dr_count", (), {}),
    "GetPreviousDagRun": ("get_previous_dagrun", (), {}),
    "GetPrevSuccessfulDagRun": ("get_prev_successful_dagrun", (), {}),
    "GetPreviousTI": ("get_previous_ti", (), {}),
    "GetTaskRescheduleStartDate": ("get_first_reschedule_date", (), {}),
    "GetTICount": ("get_ti_count", (), {}),
    "GetTaskStates": ("get_task_states", (), {}),
    "GetTaskBreadcrumbs": ("get_task_breadcrumbs", (), {}),
    "TriggerDagRun": ("trigger_dagrun", ("d2", "r"), {}),
    "SetRenderedFields": ("set_rendered_fields", ({"f": 1},), {}),
    "SetRenderedMapIndex": ("set_rendered_map_index", ("label",), {}),
    "MaskSecret": ("mask_secret", ("hidden-value",), {}),
    "CreateHITLDetailPayload": ("create_hitl_detail", (["a"], "s"), {}),
    "ResendLoggingFD": "passes a file descriptor over a Unix socket; meaningless over TCP",
    "UpdateHITLDetail": "refused by the 1.3.2 supervisor (Unhandled request)",
    "GetHITLDetailResponse": "refused by the 1.3.2 supervisor (Unhandled request)",
    "SkipDownstreamTasks": ("skip_downstream_tasks", (["a", ("b", -1)],), {}),
    "DagFileParsingResult": "the parse workload's answer, not a task's request",
    **{kind: "terminal: sent by the task runner" for kind in TERMINAL_TYPES},
}


class Sent(Exception):
    """Raised by the fake supervisor instead of answering: carries what was sent."""

    def __init__(self, msg: Request) -> None:
        self.msg = msg


def details() -> StartupDetails:
    body = decode_body(FrameFactory().startup_details_body())
    assert isinstance(body, StartupDetails)
    return body


def client(answer: Any = None, environ: dict[str, str] | None = None) -> Client:
    """A client whose supervisor answers every request with ``answer`` (raised if an exception)."""

    async def send(msg: Request) -> Inbound | None:
        if isinstance(answer, BaseException):
            raise answer
        if answer is None:
            raise Sent(msg)
        return answer  # type: ignore[no-any-return]

    return Client(send, details(), Masker(), environ or {})


def test_every_request_kind_has_a_client_method_or_a_reason() -> None:
    """The catalogue table names every request kind of the protocol, and nothing else."""
    assert set(CATALOGUE) == set(REQUESTS)


@pytest.mark.parametrize("kind", sorted(k for k, v in CATALOGUE.items() if not isinstance(v, str)))
async def test_each_method_sends_its_request_kind(kind: str) -> None:
    """Calling the method named for a kind in the table sends exactly that kind."""
    method, args, kwargs = CATALOGUE[kind]  # type: ignore[misc]
    with pytest.raises(Sent) as caught:
        await getattr(client(), method)(*args, **kwargs)
    assert kind == caught.value.msg.TYPE


def test_the_blocking_twin_has_every_method_with_the_same_signature() -> None:
    """SyncClient mirrors each public async method of Client, parameters and docstring alike."""
    assert public_methods(Client) == {
        n for n, v in vars(SyncClient).items() if isinstance(v, blocking)
    }
    for name in public_methods(Client):
        twin = getattr(SyncClient(client()), name)
        assert inspect.signature(twin) == inspect.signature(getattr(client(), name)), name
        assert twin.__doc__ == getattr(Client, name).__doc__


def test_a_method_without_a_twin_stops_the_import() -> None:
    """A new async method of Client with no blocking twin is refused when the module loads."""
    members = {n: v for n, v in vars(SyncClient).items() if n != "get_dag"}
    with pytest.raises(TypeError, match="get_dag"):
        _check_twin(members)


@pytest.mark.parametrize(
    ("status", "cls", "meaning"),
    [
        (404, errors.ApiNotFound, errors.NotFound),
        (401, errors.ApiPermissionDenied, errors.PermissionDenied),
        (403, errors.ApiPermissionDenied, errors.PermissionDenied),
        (409, errors.ApiConflict, errors.AlreadyExists),
        (500, errors.ApiServerError, errors.ApiServerError),
        (None, errors.ApiServerError, errors.ApiServerError),
    ],
)
async def test_api_server_errors_are_refined_by_http_status(
    status: int | None, cls: type[Exception], meaning: type[Exception]
) -> None:
    """An API_SERVER_ERROR raises the class its HTTP status means, keeping status, message and body."""
    detail = {"status_code": status, "message": "Server returned error", "detail": {"x": 1}}
    c = client(errors.SupervisorError("API_SERVER_ERROR", detail))
    with pytest.raises(cls) as caught:
        await c.get_dagrun()
    assert type(caught.value) is cls and isinstance(caught.value, meaning)
    assert caught.value.status_code == status
    assert (caught.value.message, caught.value.api_detail) == ("Server returned error", {"x": 1})  # type: ignore[attr-defined]


async def test_other_errors_are_not_refined() -> None:
    """A GENERIC_ERROR stays a plain SupervisorError; a NotFound stays what it was."""
    with pytest.raises(errors.SupervisorError) as caught:
        await client(errors.SupervisorError("GENERIC_ERROR", None)).get_dag()
    assert type(caught.value) is errors.SupervisorError
    with pytest.raises(errors.NotFound) as nf:
        await client(errors.NotFound("ASSET_NOT_FOUND", {"name": "a"}, in_body=True)).get_asset(
            name="a"
        )
    assert type(nf.value) is errors.NotFound


async def test_a_reply_of_the_wrong_kind_is_a_remote_protocol_error() -> None:
    """A reply body that is not the method's result type raises RemoteProtocolError, not AttributeError."""
    with pytest.raises(errors.RemoteProtocolError, match="GetDag: expected a DagResult"):
        await client(DagRunStateResult(state="running")).get_dag()


async def test_missing_state_store_keys_read_as_the_default() -> None:
    """A key never stored reads as ``default`` from both stores, as in Airflow."""
    gone = errors.NotFound("TASK_STORE_NOT_FOUND", {"key": "k"}, in_body=True)
    assert await client(gone).get_task_state("k", "dflt") == "dflt"
    assert await client(gone).get_asset_state("k", uri="u") is None


@pytest.mark.parametrize(
    ("env", "retention", "days"),
    [
        ({}, None, 30),
        ({"AIRFLOW__STATE_STORE__DEFAULT_RETENTION_DAYS": "3"}, None, 3),
        ({"AIRFLOW__STATE_STORE__DEFAULT_RETENTION_DAYS": "0"}, None, None),
        ({"AIRFLOW__STATE_STORE__DEFAULT_RETENTION_DAYS": "3"}, NEVER_EXPIRE, None),
        ({}, datetime.timedelta(days=1), 1),
    ],
)
async def test_task_state_expiry(
    env: dict[str, str], retention: datetime.timedelta | None, days: int | None
) -> None:
    """expires_at is now + the retention given, else the setting's days (30 unset); 0 or NEVER_EXPIRE is never."""
    before = datetime.datetime.now(datetime.UTC)
    with pytest.raises(Sent) as caught:
        await client(environ=env).set_task_state("k", 1, retention=retention)
    after = datetime.datetime.now(datetime.UTC)
    expires = caught.value.msg.expires_at  # type: ignore[attr-defined]
    if days is None:
        assert expires is None
    else:
        span = datetime.timedelta(days=days)
        assert before + span <= expires <= after + span


@pytest.mark.parametrize("raw", ["-1", "soon"])
async def test_a_bad_retention_setting_is_a_clear_error(raw: str) -> None:
    """A retention setting that is not a whole number of days >= 0 raises ValueError naming it; nothing is sent."""
    c = client(environ={"AIRFLOW__STATE_STORE__DEFAULT_RETENTION_DAYS": raw})
    with pytest.raises(ValueError, match="AIRFLOW__STATE_STORE__DEFAULT_RETENTION_DAYS"):
        await c.set_task_state("k", 1)
    assert c.requests_made == 0


@pytest.mark.parametrize("where", [{}, {"name": "a", "uri": "u"}])
async def test_an_asset_named_both_ways_or_neither_is_refused(where: dict[str, str]) -> None:
    """Asset lookups need exactly one of name= and uri=; anything else raises before sending."""
    c = client()
    for call in (
        c.get_asset(**where),
        c.get_asset_events(**where),
        c.get_asset_state("k", **where),
        c.clear_asset_state(**where),
    ):
        with pytest.raises(ValueError, match="exactly one"):
            await call
    assert c.requests_made == 0


async def test_none_is_not_a_state_store_value() -> None:
    """Storing None raises ValueError (delete the key instead), as in Airflow."""
    with pytest.raises(ValueError, match="None"):
        await client().set_task_state("k", None)
    with pytest.raises(ValueError, match="None"):
        await client().set_asset_state("k", None, name="a")


async def test_rendered_fields_are_redacted_by_name_and_known_secret() -> None:
    """A rendered field under a sensitive name becomes ***, and a known secret inside another is masked."""
    c = client()
    c._masker.add("s3cr3t-value")
    with pytest.raises(Sent) as caught:
        await c.set_rendered_fields({"password": "pw", "sql": "select 's3cr3t-value'"})
    assert caught.value.msg.rendered_fields == {  # type: ignore[attr-defined]
        "password": "***",
        "sql": "select '***'",
    }


async def test_previous_dagrun_of_a_run_without_logical_date_is_none() -> None:
    """With no logical date of its own, a run has no previous run and nothing is asked, as in Airflow."""
    d = details()
    run = d.ti_context.dag_run
    import dataclasses

    no_date = dataclasses.replace(
        d,
        ti_context=dataclasses.replace(
            d.ti_context, dag_run=dataclasses.replace(run, logical_date=None)
        ),
    )
    c = Client(client()._send, no_date, Masker(), {})
    assert await c.get_previous_dagrun() is None
    assert c.requests_made == 0


def test_the_reference_table_documents_every_method() -> None:
    """docs/writing-tasks.md has a row for each public client method."""
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "writing-tasks.md").read_text()
    rows = set(re.findall(r"^\| `(\w+)\(", text, re.M)) | set(re.findall(r", `(\w+)\(", text))
    assert public_methods(Client) <= rows, sorted(public_methods(Client) - rows)
