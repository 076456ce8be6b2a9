"""Every typed client method under the REAL task-sdk 1.3.2 supervisor.

One supervised run per client face (async, and the blocking twin) calls every method
once (``client_tour`` in ``tests/airflow_harness/bundle_for_tests.py``); a third run
provokes each kind of error. The Execution API is answered from :data:`ROUTES` and
each test checks the HTTP call the supervisor made for each method and the typed
result the task received.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
from airflow_harness.harness import TI_ID, Report, supervise

pytestmark = pytest.mark.supervisor

WHEN = "2026-01-01T00:00:00Z"
ASSET = {"name": "a1", "uri": "s3://b/a1", "group": "asset", "extra": {"k": "v"}}
DAG_RUN = {
    "dag_id": "d1",
    "run_id": "r0",
    "logical_date": WHEN,
    "data_interval_start": WHEN,
    "data_interval_end": WHEN,
    "run_after": WHEN,
    "start_date": WHEN,
    "end_date": None,
    "run_type": "scheduled",
    "state": "success",
    "conf": {},
    "consumed_asset_events": [],
    "partition_key": None,
}
EVENT = {"id": 7, "timestamp": WHEN, "extra": {}, "asset": ASSET, "created_dagruns": []}
HITL = {"ti_id": TI_ID, "options": ["yes", "no"], "subject": "Ship it?", "body": None}
XCOM = "/xcoms/d1/r1/up/return_value"
TOUR_TASKS = ("client_tour_async", "client_tour_sync")


def _ok(body: Any = None, status: int = 200, **headers: str) -> dict[str, Any]:
    answer: dict[str, Any] = {"status": status, "headers": headers}
    if body is not None or status == 200:
        answer["json"] = body
    return answer


ROUTES: dict[str, dict[str, Any]] = {
    "GET /variables/keys": _ok({"keys": ["app_a", "app_b"], "total_entries": 7}),
    f"HEAD {XCOM}": _ok(None, 200, **{"Content-Range": "map_indexes 3"}),
    f"GET {XCOM}/item/1": _ok("b"),
    f"GET {XCOM}/slice": _ok(["a", "b"]),
    "GET /assets/by-name": _ok(ASSET),
    "GET /assets/by-uri": _ok(ASSET),
    "GET /assets/by-alias": _ok([ASSET]),
    "GET /asset-events/by-asset": _ok({"asset_events": [EVENT]}),
    "GET /asset-events/by-asset-alias": _ok({"asset_events": []}),
    f"GET /task-instances/{TI_ID}/validate-inlets-and-outlets": _ok(
        {"inactive_assets": [{"name": "old", "uri": "s3://old", "type": "Asset"}]}
    ),
    "GET /dags/d1": _ok(
        {
            "dag_id": "d1",
            "is_paused": False,
            "bundle_name": "b",
            "bundle_version": None,
            "relative_fileloc": "dags/x.py",
            "owners": "ann",
            "tags": ["t"],
            "next_dagrun": None,
        }
    ),
    "GET /dag-runs/d1/r1": _ok({**DAG_RUN, "run_id": "r1", "state": "running"}),
    "GET /dag-runs/d1/r1/state": _ok({"state": "running"}),
    "GET /dag-runs/count": _ok(4),
    "GET /dag-runs/previous": _ok(DAG_RUN),
    f"GET /task-instances/{TI_ID}/previous-successful-dagrun": _ok(
        {"data_interval_start": WHEN, "start_date": WHEN}
    ),
    **{f"GET /task-instances/previous/d1/{t}": _ok(None) for t in TOUR_TASKS},
    f"GET /task-reschedules/{TI_ID}/start_date": _ok(WHEN),
    "GET /task-instances/count": _ok(2),
    "GET /task-instances/states": _ok({"task_states": {"r1": {"up": "success"}}}),
    "GET /task-instances/breadcrumbs": _ok({"breadcrumbs": [{"task_id": "up"}]}),
    "POST /dag-runs/d2/run-x": _ok(None, 204),
    f"GET /store/ti/{TI_ID}/k": _ok({"value": {"n": 1}}),
    f"GET /store/ti/{TI_ID}/gone": _ok({"detail": "no such key"}, 404),
    f"PUT /store/ti/{TI_ID}/k": _ok(None, 204),
    f"DELETE /store/ti/{TI_ID}/k": _ok(None, 204),
    f"DELETE /store/ti/{TI_ID}": _ok(None, 204),
    "GET /store/asset/by-name/value": _ok({"value": "by-name"}),
    "GET /store/asset/by-uri/value": _ok({"value": "by-uri"}),
    "PUT /store/asset/by-name/value": _ok(None, 204),
    "DELETE /store/asset/by-uri/value": _ok(None, 204),
    "DELETE /store/asset/by-name/clear": _ok(None, 204),
    f"POST /hitlDetails/{TI_ID}": _ok(HITL),
    f"PUT /task-instances/{TI_ID}/rtif": _ok(None, 204),
}

#: label -> (HTTP method, path, query params, JSON body or None, what the task got back).
EXPECTED: dict[str, tuple[str, str, dict[str, str], Any, Any]] = {
    "variable_keys": (
        "GET",
        "/variables/keys",
        {"prefix": "app_", "limit": "10", "offset": "5"},
        None,
        {"keys": ["app_a", "app_b"], "total_entries": 7},
    ),
    "xcom_count": ("HEAD", XCOM, {}, None, 3),
    "xcom_item": ("GET", f"{XCOM}/item/1", {}, None, "b"),
    "xcom_slice": ("GET", f"{XCOM}/slice", {"start": "0", "stop": "2"}, None, ["a", "b"]),
    "asset_by_name": (
        "GET",
        "/assets/by-name",
        {"name": "a1"},
        None,
        {**ASSET, "type": "AssetResult"},
    ),
    "asset_by_uri": (
        "GET",
        "/assets/by-uri",
        {"uri": "s3://b/a1"},
        None,
        {**ASSET, "type": "AssetResult"},
    ),
    "assets_by_alias": (
        "GET",
        "/assets/by-alias",
        {"alias_name": "al"},
        None,
        [{**ASSET, "type": "AssetResult"}],
    ),
    "asset_events": (
        "GET",
        "/asset-events/by-asset",
        {"name": "a1", "ascending": "true", "limit": "5"},
        None,
        None,  # checked field by field below
    ),
    "alias_events": (
        "GET",
        "/asset-events/by-asset-alias",
        {"name": "al", "ascending": "false"},
        None,
        [],
    ),
    "inactive": (
        "GET",
        f"/task-instances/{TI_ID}/validate-inlets-and-outlets",
        {},
        None,
        [{"name": "old", "uri": "s3://old", "type": "Asset"}],
    ),
    "dag": ("GET", "/dags/d1", {}, None, None),
    "dagrun": ("GET", "/dag-runs/d1/r1", {}, None, None),
    "dagrun_state": ("GET", "/dag-runs/d1/r1/state", {}, None, "running"),
    "dr_count": ("GET", "/dag-runs/count", {"dag_id": "d1", "states": "success"}, None, 4),
    "previous_dagrun": (
        "GET",
        "/dag-runs/previous",
        {"dag_id": "d1", "logical_date": "2026-01-01T00:00:00+00:00", "state": "success"},
        None,
        None,
    ),
    "prev_success": (
        "GET",
        f"/task-instances/{TI_ID}/previous-successful-dagrun",
        {},
        None,
        None,
    ),
    "previous_ti": (
        "GET",
        "/task-instances/previous/d1/client_tour",
        {"map_index": "-1", "logical_date": "2025-12-01T00:00:00+00:00"},
        None,
        None,
    ),
    "reschedule": (
        "GET",
        f"/task-reschedules/{TI_ID}/start_date",
        {"try_number": "1"},
        None,
        "2026-01-01 00:00:00+00:00",
    ),
    "ti_count": (
        "GET",
        "/task-instances/count",
        {"dag_id": "d1", "task_ids": "up", "map_index": "2"},
        None,
        2,
    ),
    "task_states": (
        "GET",
        "/task-instances/states",
        {"dag_id": "d1", "run_ids": "r1"},
        None,
        {"r1": {"up": "success"}},
    ),
    "breadcrumbs": (
        "GET",
        "/task-instances/breadcrumbs",
        {"dag_id": "d1", "run_id": "r1"},
        None,
        [{"task_id": "up"}],
    ),
    "trigger": ("POST", "/dag-runs/d2/run-x", {}, {"conf": {"n": 1}, "note": "hi"}, None),
    "task_state_get": ("GET", f"/store/ti/{TI_ID}/k", {}, None, {"n": 1}),
    "task_state_missing": ("GET", f"/store/ti/{TI_ID}/gone", {}, None, "dflt"),
    "task_state_set": ("PUT", f"/store/ti/{TI_ID}/k", {}, None, None),  # body checked below
    "task_state_delete": ("DELETE", f"/store/ti/{TI_ID}/k", {}, None, None),
    "task_state_clear": ("DELETE", f"/store/ti/{TI_ID}", {}, None, None),
    "asset_state_get": (
        "GET",
        "/store/asset/by-name/value",
        {"name": "a1", "key": "k"},
        None,
        "by-name",
    ),
    "asset_state_get_uri": (
        "GET",
        "/store/asset/by-uri/value",
        {"uri": "s3://b/a1", "key": "k"},
        None,
        "by-uri",
    ),
    "asset_state_set": (
        "PUT",
        "/store/asset/by-name/value",
        {"name": "a1", "key": "k"},
        {"value": [1, 2]},
        None,
    ),
    "asset_state_delete": (
        "DELETE",
        "/store/asset/by-uri/value",
        {"uri": "s3://b/a1", "key": "k"},
        None,
        None,
    ),
    "asset_state_clear": ("DELETE", "/store/asset/by-name/clear", {"name": "a1"}, None, None),
    "hitl": ("POST", f"/hitlDetails/{TI_ID}", {}, None, None),  # body checked below
    "rendered": (
        "PUT",
        f"/task-instances/{TI_ID}/rtif",
        {},
        {"sql": "select 1", "password": "***"},
        None,
    ),
}


@functools.cache
def _tour(task_id: str) -> Report:
    return supervise(
        task_id,
        routes=ROUTES,
        env={"AIRFLOW__STATE_STORE__DEFAULT_RETENTION_DAYS": "2"},
    )


def _results(r: Report, task_id: str) -> dict[str, Any]:
    assert (r.exit_code, r.final_state, r.raised) == (0, "success", None), r.log_text[-3000:]
    results: dict[str, Any] = r.xcoms[f"d1/r1/{task_id}/return_value"]
    return results


def _call(r: Report, method: str, path: str) -> dict[str, Any]:
    found = [c for c in r.calls if c["method"] == method and c["path"] == path]
    assert found, f"no {method} {path} among {[(c['method'], c['path']) for c in r.calls]}"
    return found[0]


@pytest.mark.parametrize("task_id", TOUR_TASKS)
def test_every_method_makes_its_api_call_and_returns_its_typed_result(task_id: str) -> None:
    """Each client method, async or blocking, makes the Execution API call Airflow's would and returns the typed result."""
    r = _tour(task_id)
    results = _results(r, task_id)
    assert set(results) == set(EXPECTED)
    for label, (method, path, params, body, result) in EXPECTED.items():
        path = path.replace("/client_tour", f"/{task_id}")  # the previous-TI route
        call = _call(r, method, path)
        for name, value in params.items():
            assert call["params"].get(name) == value, (label, call["params"])
        if body is not None:
            assert call["body"] == body, (label, call["body"])
        if result is not None:
            assert results[label] == result, (label, results[label])
    # The results checked field by field: typed classes with their own tags and dates.
    assert results["dag"]["type"] == "DagResult" and results["dag"]["tags"] == ["t"]
    assert results["dagrun"]["run_id"] == "r1" and results["dagrun"]["state"] == "running"
    assert results["previous_dagrun"]["run_id"] == "r0"
    assert results["previous_ti"] is None
    assert results["prev_success"]["start_date"].startswith("2026-01-01")
    assert results["prev_success"]["end_date"] is None
    [event] = results["asset_events"]
    assert (event["id"], event["asset"]["name"]) == (7, "a1")
    assert results["hitl"]["type"] == "HITLDetailRequestResult"
    assert results["hitl"]["options"] == ["yes", "no"]
    hitl = _call(r, "POST", f"/hitlDetails/{TI_ID}")["body"]
    assert hitl["subject"] == "Ship it?" and hitl["assigned_users"] == [{"id": "u1", "name": "Ann"}]
    assert results["trigger"] is None and results["task_state_set"] is None


@pytest.mark.parametrize("task_id", TOUR_TASKS)
def test_task_state_expiry_follows_the_retention_setting(task_id: str) -> None:
    """A task-state write expires AIRFLOW__STATE_STORE__DEFAULT_RETENTION_DAYS days after it is made."""
    import datetime

    r = _tour(task_id)
    call = _call(r, "PUT", f"/store/ti/{TI_ID}/k")
    assert call["body"]["value"] == {"v": 1}
    expires = datetime.datetime.fromisoformat(call["body"]["expires_at"])
    now = datetime.datetime.now(datetime.UTC)
    # Two days from the moment of the call, which was within the last few minutes.
    assert datetime.timedelta(days=2) - datetime.timedelta(minutes=10) < expires - now
    assert expires - now <= datetime.timedelta(days=2)


ERROR_ROUTES: dict[str, dict[str, Any]] = {
    "GET /connections/nope": _ok({"detail": "no"}, 404),
    "GET /variables/locked": _ok({"detail": "forbidden"}, 403),
    "GET /assets/by-name": _ok({"detail": "no"}, 404),
    f"GET {XCOM}/item/9": _ok({"detail": "no"}, 404),
    "POST /dag-runs/d2/dup": _ok({"detail": "exists"}, 409),
    "GET /dag-runs/d1/nope": _ok({"detail": {"reason": "not_found"}}, 404),
    "GET /dags/secret_dag": _ok({"detail": "forbidden"}, 403),
    f"PUT /store/ti/{TI_ID}/k": _ok({"detail": "conflict"}, 409),
    "GET /dag-runs/count": _ok({"detail": "boom"}, 500),
}

#: label -> (exception class, the meanings it is an instance of, ErrorType, status, in body).
ERRORS: dict[str, tuple[str, list[str], str, int | None, bool]] = {
    "conn_missing": ("NotFound", ["NotFound"], "CONNECTION_NOT_FOUND", None, True),
    "var_denied": ("PermissionDenied", ["PermissionDenied"], "PERMISSION_DENIED", 403, True),
    "asset_missing": ("NotFound", ["NotFound"], "ASSET_NOT_FOUND", None, True),
    "xcom_item_missing": ("NotFound", ["NotFound"], "XCOM_NOT_FOUND", None, True),
    "trigger_exists": ("AlreadyExists", ["AlreadyExists"], "DAGRUN_ALREADY_EXISTS", None, True),
    "dagrun_404": ("ApiNotFound", ["NotFound", "ApiServerError"], "API_SERVER_ERROR", 404, False),
    "dag_403": (
        "ApiPermissionDenied",
        ["PermissionDenied", "ApiServerError"],
        "API_SERVER_ERROR",
        403,
        False,
    ),
    "state_409": (
        "ApiConflict",
        ["AlreadyExists", "ApiServerError"],
        "API_SERVER_ERROR",
        409,
        False,
    ),
    "count_500": ("ApiServerError", ["ApiServerError"], "API_SERVER_ERROR", 500, False),
}


def test_every_error_kind_reaches_the_task_as_its_typed_exception() -> None:
    """Body-level errors and HTTP failures of the API each raise the exception that names their meaning."""
    r = supervise(
        "client_errors",
        routes=ERROR_ROUTES,
        # One attempt per call: the API client would otherwise retry the 500 for minutes.
        env={"AIRFLOW__WORKERS__EXECUTION_API_RETRIES": "1"},
    )
    results = _results(r, "client_errors")
    got = {
        label: (v["class"], v["is"], v["error"], v["status_code"], v["in_body"])
        for label, v in results.items()
    }
    assert got == ERRORS
