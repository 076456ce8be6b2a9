"""trio-coord serve under the REAL apache-airflow-task-sdk 1.3.2 supervisor.

Each test runs one task try through ``supervise_task`` with only the Execution API's
HTTP transport replaced (``tests/airflow_harness/driver.py``) and asserts on what the
supervisor recorded: the final state, the API calls it made, the task log it wrote.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
from airflow_harness.harness import TI_ID, Report, supervise

from trio_coord.runtime.logs import DEFAULT_MAX_RECORD

pytestmark = pytest.mark.supervisor

XCOM_PREFIX = "d1/r1"


def test_success_pushes_return_value_then_succeeds() -> None:
    """A returning task pushes its value as return_value, then SucceedTask with [] outlets; exit 0."""
    r = supervise("ok")
    assert (r.exit_code, r.final_state, r.raised) == (0, "success", None)
    assert r.xcoms[f"{XCOM_PREFIX}/ok/return_value"] == {
        "answer": 42,
        "run_id": "r1",
        "items": [1, "two", None],
    }
    posts = [c["path"] for c in r.calls if c["method"] == "POST"]
    assert posts == [f"/xcoms/{XCOM_PREFIX}/ok/return_value"]
    (patch,) = r.state_patches
    assert patch["state"] == "success"
    assert patch["task_outlets"] == [] and patch["outlet_events"] == []
    # The XCom went to the API before the state change.
    order = [c["path"] for c in r.calls]
    assert order.index(f"/xcoms/{XCOM_PREFIX}/ok/return_value") < order.index(
        f"/task-instances/{TI_ID}/state"
    )
    assert "ok running in r1" in r.events("task")


def test_failure_without_retry_ends_failed() -> None:
    """An exception with should_retry false sends TaskState(failed); the supervisor PATCHes failed at exit."""
    r = supervise("boom")
    assert (r.exit_code, r.final_state) == (0, "failed")
    assert [p["state"] for p in r.state_patches] == ["failed"]
    errors = [
        rec
        for rec in r.task_log
        if rec.get("level") == "error" and "boom on purpose" in str(rec.get("event"))
    ]
    assert errors, r.events()
    # The traceback reaches the task log as structured error detail.
    assert any("error_detail" in rec or "exception" in rec for rec in errors)


def test_failure_with_should_retry_is_up_for_retry_and_api_told() -> None:
    """With should_retry the failure becomes RetryTask: final up_for_retry, PATCHed at once, no exception text."""
    r = supervise("boom_sync", should_retry=True)
    assert (r.exit_code, r.final_state) == (0, "up_for_retry")
    (patch,) = r.state_patches
    assert patch["state"] == "up_for_retry"
    # As Airflow's native runner: the API server stores retry_reason, so no exception
    # text goes there (it is in the task log instead).
    assert patch.get("retry_reason") is None
    assert any("sync boom on purpose" in e for e in r.events())


def test_unknown_task_fails_the_try_without_touching_xcoms() -> None:
    """A task id not in the bundle fails the try (not removed), with no XCom call and one line naming the bundle."""
    r = supervise("no_such_task", xcom_keys_to_clear=["return_value"])
    assert (r.exit_code, r.final_state) == (0, "failed")
    assert not [c for c in r.calls if "/xcoms/" in c["path"]]
    assert [p["state"] for p in r.state_patches] == ["failed"]
    source = (Path(__file__).parent / "airflow_harness" / "bundle_for_tests.py").read_bytes()
    (line,) = [e for e in r.events() if "is not in bundle" in e]
    assert "task 'no_such_task' of dag 'd1' is not in bundle 'supervised' version '1.0.0'" in line
    assert f"sha256 {hashlib.sha256(source).hexdigest()}" in line
    assert "tasks of 'd1': ok, boom, boom_sync" in line


def test_skip_ends_skipped() -> None:
    """SkipTask ends the try as skipped."""
    r = supervise("skip_me")
    assert (r.exit_code, r.final_state) == (0, "skipped")


def test_xcom_keys_to_clear_are_deleted_before_running() -> None:
    """Every key in xcom_keys_to_clear is deleted, in order, before the body runs."""
    r = supervise("ok", xcom_keys_to_clear=["a", "b"])
    deletes = [c["path"] for c in r.calls if c["method"] == "DELETE"]
    assert deletes == [f"/xcoms/{XCOM_PREFIX}/ok/a", f"/xcoms/{XCOM_PREFIX}/ok/b"]
    order = [c["path"] for c in r.calls]
    assert order.index(deletes[-1]) < order.index(f"/xcoms/{XCOM_PREFIX}/ok/return_value")
    assert r.final_state == "success"


def test_variables_connections_and_masking() -> None:
    """Variables, connections and env fast paths round-trip, and every secret is masked in the task log."""
    r = supervise(
        "secrets",
        variables={"db_password": "hunter2-variable-secret"},
        connections={
            "warehouse": {
                "conn_type": "postgres",
                "host": "db.internal",
                "login": "etl",
                "password": "conn-password-secret",
                "port": 5432,
                "schema": "dw",
                "extra": '{"sslmode": "require"}',
            }
        },
        env={"AIRFLOW_VAR_API_TOKEN": "env-token-secret-value"},
    )
    assert (r.exit_code, r.final_state) == (0, "success"), r.events()
    text = r.log_text
    for secret in ("hunter2-variable-secret", "conn-password-secret", "env-token-secret-value"):
        assert secret not in text
    assert "variable secret is ***" in r.events("task")
    assert "connection password is *** and host db.internal" in r.events("task")
    assert "env token is ***" in r.events("task")
    assert "missing variable gave fallback-value" in r.events("task")
    assert r.api("GET", "/variables/db_password") and r.api("GET", "/connections/warehouse")
    # The env value never went to the API; the missing one did and came back not found.
    assert not r.api("GET", "/variables/api_token")
    assert r.api("GET", "/variables/does_not_exist")
    assert r.xcoms[f"{XCOM_PREFIX}/secrets/return_value"] == {"host": "db.internal", "login": "etl"}


def test_sync_task_client_reads_and_writes_variables() -> None:
    """A sync task's blocking client reads and writes variables through the supervisor."""
    r = supervise("secrets_sync", variables={"db_password": "sync-secret-value"})
    assert (r.exit_code, r.final_state) == (0, "success"), r.events()
    assert r.variables["written_by_task"] == "fresh-value"
    assert "sync variable secret is ***" in r.events("task")
    assert r.xcoms[f"{XCOM_PREFIX}/secrets_sync/return_value"] == len("sync-secret-value")


def test_thousand_log_lines_arrive_complete_and_in_order() -> None:
    """1,000 log lines from the task reach the supervisor's task log, all of them, in order."""
    r = supervise("many_logs")
    assert r.final_state == "success"
    lines = [e for e in r.events("task") if e.startswith("line ")]
    assert lines == [f"line {i:04d}" for i in range(1000)]
    assert all(rec.get("ti_id") == TI_ID for rec in r.task_log if rec.get("logger") == "task")


def test_xcom_pull_and_push() -> None:
    """GetXCom returns an upstream value or the default when missing; SetXCom stores a new key."""
    r = supervise("xcom_roundtrip", xcoms={f"{XCOM_PREFIX}/ok/return_value": {"x": 1}})
    assert r.final_state == "success", r.events()
    assert r.xcoms[f"{XCOM_PREFIX}/xcom_roundtrip/extra_key"] == {"seen": {"x": 1}}
    assert "upstream={'x': 1} missing=absent" in r.events("task")


@pytest.mark.parametrize("task_id", ["long_async", "long_sync"])
def test_sigterm_cancels_the_task_and_reports_failure(task_id: str) -> None:
    """SIGTERM mid-task cancels it with a reason, reports failure (exit 0) and does not wait for the task."""
    r = supervise(task_id, sigterm_after=2.0)
    assert (r.exit_code, r.final_state) == (0, "failed"), (r.raw, r.events())
    assert [p["state"] for p in r.state_patches] == ["failed"]
    assert any("received SIGTERM" in e for e in r.events())
    assert r.raw["elapsed"] < 60  # the 120 s task was cut short


def test_sigterm_with_should_retry_reports_retry() -> None:
    """SIGTERM with should_retry ends the try as up_for_retry through RetryTask."""
    r = supervise("long_async", sigterm_after=2.0, should_retry=True)
    assert (r.exit_code, r.final_state) == (0, "up_for_retry")
    (patch,) = r.state_patches
    assert "SIGTERM" in patch["retry_reason"]


def test_supervisor_closing_comm_mid_task_fails_closed() -> None:
    """When the supervisor closes the comm socket mid-task the runtime cancels the task and exits 1."""
    r = supervise("long_async", close_comm_after=2.0)
    assert r.exit_code == 1 and r.final_state == "failed", (r.raw, r.events())
    assert any("lost the supervisor" in e or "closed the comm channel" in e for e in r.events())
    assert r.raw["elapsed"] < 60
    # The last word says what happened, not "task finished: failed".
    runtime = r.events("trio_coord.runtime")
    assert not [e for e in runtime if e.startswith("task finished")], runtime
    assert runtime[-1].startswith("the supervisor closed the connection (")
    assert runtime[-1].endswith(
        "; the task was cancelled and no final state could be reported (exit 1)"
    )


@pytest.mark.skipif(not Path("/proc/self/comm").exists(), reason="needs Linux /proc")
def test_process_title_names_the_task() -> None:
    """Once StartupDetails arrived, the runtime process's kernel name (/proc/PID/comm) names the task."""
    r = supervise("own_title")
    assert (r.exit_code, r.final_state) == (0, "success"), r.stderr[-3000:]
    title = r.xcoms[f"{XCOM_PREFIX}/own_title/return_value"]
    assert title["comm"] == "tc:own_title"
    if importlib.util.find_spec("setproctitle") is not None:  # optional: the full command line
        assert title["cmdline"] == "trio-coord supervised: d1.own_title try 1"


def test_task_log_records_are_json_objects_with_levels() -> None:
    """Every record the runtime sent was parsed by the supervisor: lower-case level, event, logger."""
    r = supervise("ok")
    runtime_records = [
        rec for rec in r.task_log if rec.get("logger", "").startswith(("trio_coord", "task"))
    ]
    assert runtime_records
    for rec in runtime_records:
        assert rec["level"] in {"debug", "info", "warning", "error", "critical"}
        json.dumps(rec)


def test_slow_bundle_import_does_not_trip_the_startup_timeout(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The runtime connects before importing the bundle: an import slower than startup_timeout still runs."""
    slow = tmp_path / "slow_bundle.py"
    slow.write_text(
        "import time\nimport trio_coord\n"
        "time.sleep(4)  # longer than the 2 s start-up timeout below\n"
        "bundle = trio_coord.Bundle('slow')\n"
        "d1 = bundle.dag('d1')\n"
        "@d1.task\nasync def t1():\n    return 'imported late'\n"
    )
    spec = f"{slow}:bundle"
    r = supervise(
        "t1",
        bundle=spec,
        coordinator={
            "classpath": "trio_coord.airflow_coordinator.TrioCoordinator",
            "kwargs": {"bundle": spec, "task_startup_timeout": 2.0},
        },
    )
    assert (r.raised, r.exit_code, r.final_state) == (None, 0, "success"), r.raw
    assert r.xcoms[f"{XCOM_PREFIX}/t1/return_value"] == "imported late"


# -- inbound strictness and outbound bounds ----------------------------------------------


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"ti.id": "not-a-uuid"}, "StartupDetails.ti.id"),
        ({"ti_context.dag_run.run_after": "2026-01-02T03:04:05"}, "dag_run.run_after"),
        ({"bundle_info": {"version": None}}, "StartupDetails.bundle_info: required key 'name'"),
    ],
    ids=["bad UUID", "naive run_after", "bundle_info without name"],
)
def test_malformed_first_frame_from_the_real_supervisor(
    override: dict[str, Any], named: str
) -> None:
    """A StartupDetails the real supervisor would never send: one error naming the field, exit 1, the task never run."""
    r = supervise("ok", startup_override=override)
    assert r.exit_code == 1, (r.raw, r.events())
    assert not [c for c in r.calls if "/xcoms/" in c["path"]]
    errors = [e for e in r.events() if named in e]
    assert len(errors) == 1, r.events()
    assert not any("ok running" in e for e in r.events("task"))


def test_cyclic_return_value_fails_under_the_real_supervisor() -> None:
    """A return value that contains itself fails the try with its path logged, and no XCom is stored."""
    r = supervise("cyclic_return")
    assert (r.exit_code, r.final_state) == (0, "failed"), (r.raw, r.events())
    assert not any("/cyclic_return/" in k for k in r.xcoms)
    assert any("'return_value'[1].again[0]: the value contains itself" in e for e in r.events())


def test_sigterm_while_a_large_return_value_is_encoded() -> None:
    """SIGTERM that arrives as a 200 MB return value is being checked ends the try as cancelled, storing nothing."""
    r = supervise("sigterm_while_encoding", should_retry=True)
    assert (r.exit_code, r.final_state) == (0, "up_for_retry"), (r.raw, r.events())
    (patch,) = r.state_patches
    assert "SIGTERM" in patch["retry_reason"]
    assert not any("/sigterm_while_encoding/" in k for k in r.xcoms)


# -- secrets never leave in clear ---------------------------------------------------------
#
# Each run captures every raw byte the supervisor process received from the runtime
# (comm frames, log lines, stdout, stderr) before the supervisor decoded or masked any of
# it, so these tests see what trio-coord itself let out, not what the supervisor repaired.

SECRET = "Zq7-s3cret-4b9e"
WAREHOUSE = {
    "conn_type": "http",
    "host": "db.internal",
    "schema": "dw",
    "login": "etl",
    "port": 5432,
    "password": "other-conn-password",
    "extra": json.dumps({"auth": {"api_key": "other-api-key"}, "region": "eu-west-plain"}),
}

#: How the task obtains the secret -> (scenario giving it the secret, MaskSecret frames
#: expected to carry it: the supervisor registers what it hands out itself).
ROUTES: dict[str, tuple[dict[str, Any], int]] = {
    "conn_password": ({"connections": {"warehouse": {**WAREHOUSE, "password": SECRET}}}, 0),
    "conn_extra": (
        {
            "connections": {
                "warehouse": {
                    **WAREHOUSE,
                    "extra": json.dumps({"auth": {"api_key": SECRET}, "region": "eu-west-plain"}),
                }
            }
        },
        1,
    ),
    "variable": ({"variables": {"db_password": SECRET}}, 0),
    "json_variable": (
        {"variables": {"settings": json.dumps({"service": {"token": SECRET}, "region": "r1"})}},
        1,
    ),
    "mask_secret": ({"variables": {"plain_holder": SECRET}}, 1),
    "env_conn": ({"env": {"AIRFLOW_CONN_ENVDB": f"postgres://etl:{SECRET}@db:5432/dw"}}, 2),
    "env_var": ({"env": {"AIRFLOW_VAR_API_TOKEN": SECRET}}, 1),
}


def comm_frames(data: bytes) -> list[tuple[bytes, Any]]:
    """Split the runtime's comm bytes into (raw frame, decoded [id, body]) pairs."""
    frames = []
    while data:
        size = int.from_bytes(data[:4], "big")
        raw, data = data[: 4 + size], data[4 + size :]
        assert len(raw) == 4 + size, "a cut frame in the capture"
        frames.append((raw, msgspec.msgpack.decode(raw[4:])))
    return frames


def assert_only_registered(r: Report, secret: str, mask_frames: int) -> None:
    """``secret`` is in no captured byte except the ``MaskSecret`` frames that register it."""
    needle = secret.encode()
    carrying = [body for raw, (_, body, *_) in comm_frames(r.captured("comm")) if needle in raw]
    assert all(body["type"] == "MaskSecret" for body in carrying), carrying
    assert all(secret in json.dumps(body["value"]) for body in carrying), carrying
    assert len(carrying) == mask_frames, carrying
    for channel in ("logs", "stdout", "stderr"):
        assert needle not in r.captured(channel), channel
    assert needle not in r.task_log_bytes
    assert secret not in json.dumps(r.calls)


def leak_run(task_id: str, route: str, *, should_retry: bool) -> Report:
    scenario, _ = ROUTES[route]
    env = {**scenario.get("env", {}), "LEAK_ROUTE": route}
    return supervise(task_id, should_retry=should_retry, **{**scenario, "env": env})


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_a_secret_leaves_only_in_its_mask_secret_frame_async(route: str) -> None:
    """An async task logs, prints (stdout, stderr, bytes, pieces), logs from a thread and after the logs socket broke, and raises with the secret under should_retry: no raw byte carries it."""
    r = leak_run("leak", route, should_retry=True)
    assert (r.exit_code, r.final_state) == (0, "up_for_retry"), r.events()
    assert_only_registered(r, SECRET, ROUTES[route][1])
    # Every way out was taken, masked (so the scan above looked at real traffic).
    stdout, stderr = r.captured("stdout"), r.captured("stderr")
    assert b"trio thread: printed ***" in stdout and b"worker thread: bytes ***" in stdout
    assert b"trio thread: written in pieces ***" in stdout
    assert b"worker thread: to stderr ***" in stderr
    assert b"writing task logs to stderr" in stderr and b"fallback 4: ***" in stderr
    assert b"trio thread: logged ***" in r.captured("logs")
    assert b"worker thread: logged ***" in r.captured("logs")
    assert b'"detail":"value=***"' in r.captured("logs")
    assert b"failed while holding ***" in stderr


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_a_secret_leaves_only_in_its_mask_secret_frame_sync(route: str) -> None:
    """A sync task obtains the secret from its worker thread, logs, prints and raises with it, without should_retry: no raw byte carries it."""
    r = leak_run("leak_sync", route, should_retry=False)
    assert (r.exit_code, r.final_state) == (0, "failed"), r.events()
    assert_only_registered(r, SECRET, ROUTES[route][1])
    assert b"sync task: printed ***" in r.captured("stdout")
    assert b"sync task: logged ***" in r.captured("logs")
    assert b"sync task failed while holding ***" in r.captured("logs")


def test_values_that_are_not_secrets_are_not_masked() -> None:
    """Non-sensitive extra keys, JSON keys and variables stay readable; 4 characters is too short to mask, 5 is not."""
    r = supervise(
        "not_secret",
        connections={"warehouse": WAREHOUSE},
        variables={
            "settings": json.dumps({"service": {"token": "tok-12345"}, "region": "json-region"}),
            "plain_holder": "plain-visible-value",
            "short_password": "abcd",
            "five_password": "abcde",
        },
    )
    assert r.final_state == "success", r.events()
    logs = r.captured("logs")
    assert b"region=eu-west-plain" in logs and b"json region=json-region" in logs
    assert b"plain=plain-visible-value" in logs
    assert b"short=abcd five=***" in logs
    assert b"printed region=eu-west-plain short=abcd five=***" in r.captured("stdout")
    # MaskSecret only for values under sensitive names: the extra's api_key, the JSON token.
    masks = [b for _, (_, b, *_) in comm_frames(r.captured("comm")) if b["type"] == "MaskSecret"]
    assert [m["value"] for m in masks] == ["other-api-key", "tok-12345"]


def test_a_huge_log_record_arrives_truncated_with_a_marker() -> None:
    """A 5 MiB log message reaches the task log cut to the record limit with a marker; the task succeeds and later lines arrive."""
    r = supervise("huge_log")
    assert (r.exit_code, r.final_state) == (0, "success"), r.raw.get("raised")
    (big,) = [rec for rec in r.task_log if str(rec.get("event", "")).startswith("big:")]
    assert re.search(r"truncated by trio-coord: this log record was \d+ bytes", big["event"])
    assert len(big["event"]) < DEFAULT_MAX_RECORD
    assert big["truncated_from"] > 5 * 1024 * 1024
    assert "after the big one" in r.events("task")
    assert any(rec.get("truncated") == 1 for rec in r.task_log)
    assert max(len(line) for line in r.captured("logs").split(b"\n")) <= DEFAULT_MAX_RECORD
