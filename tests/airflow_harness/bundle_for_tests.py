"""Tasks that the real-supervisor tests run through ``trio-coord serve``."""

from __future__ import annotations

import os
import signal
import sys
import time

import trio

import trio_coord

bundle = trio_coord.Bundle("supervised", version="1.0.0")
d1 = bundle.dag("d1", retries=1)


@d1.task
async def ok(client, log, run_id):
    log.info("ok running in %s", run_id)
    return {"answer": 42, "run_id": run_id, "items": [1, "two", None]}


@d1.task
async def boom(log):
    raise ValueError("boom on purpose")


@d1.task
def boom_sync():
    raise RuntimeError("sync boom on purpose")


@d1.task
def skip_me():
    raise trio_coord.SkipTask("nothing to do today")


@d1.task
async def secrets(client, log):
    password_var = await client.get_variable("db_password")
    conn = await client.get_connection("warehouse")
    token = await client.get_variable("api_token")  # from AIRFLOW_VAR_API_TOKEN
    log.info("variable secret is %s", password_var)
    log.info("connection password is %s and host %s", conn.password, conn.host)
    log.info("env token is %s", token)
    missing = await client.get_variable("does_not_exist", default="fallback-value")
    log.info("missing variable gave %s", missing)
    return {"host": conn.host, "login": conn.login}


@d1.task
def secrets_sync(client, log):
    value = client.get_variable("db_password")
    log.info("sync variable secret is %s", value)
    client.set_variable("written_by_task", "fresh-value")
    return len(value)


@d1.task
async def many_logs(log):
    for i in range(1000):
        log.info("line %04d", i)


@d1.task
async def long_async(log):
    log.info("sleeping for a long time")
    await trio.sleep(120)


@d1.task
def long_sync(log):
    log.info("sleeping in a thread for a long time")
    time.sleep(120)


@d1.task
async def xcom_roundtrip(client, log):
    upstream = await client.get_xcom(task_id="ok")
    missing = await client.get_xcom("nope", task_id="ok", default="absent")
    await client.set_xcom("extra_key", {"seen": upstream})
    log.info("upstream=%s missing=%s", upstream, missing)
    return "done"


@d1.task
async def cyclic_return(log):
    value = [1, {"again": []}]
    value[1]["again"].append(value)
    return value


@d1.task
async def sigterm_while_encoding(log):
    """A large return value with SIGTERM already on its way: the runtime hears the signal
    at its first checkpoint, which is while the value is being checked for sending."""
    value = ["x" * 1000] * 200_000  # 200 MB once encoded
    os.kill(os.getpid(), signal.SIGTERM)
    return value


# -- secrets: each task obtains one secret by the route its run names, then tries every
# way out of the process with it (tests/test_real_supervisor.py scans the raw bytes).


async def _obtain(client, route):
    """The secret, obtained by ``route`` (see ROUTES in test_real_supervisor.py)."""
    if route == "conn_password":
        return (await client.get_connection("warehouse")).password
    if route == "conn_extra":
        return (await client.get_connection("warehouse")).extra["auth"]["api_key"]
    if route == "variable":
        return await client.get_variable("db_password")
    if route == "json_variable":
        settings = await client.get_variable("settings", deserialize_json=True)
        return settings["service"]["token"]
    if route == "mask_secret":
        value = await client.get_variable("plain_holder")  # not sensitive by name
        await client.mask_secret(value)
        return value
    if route == "env_conn":
        return (await client.get_connection("envdb")).password
    if route == "env_var":
        return await client.get_variable("api_token")
    raise ValueError(f"unknown route {route}")


def _break_logs_socket():
    """Make the runtime's logs socket fail, as if the supervisor had gone: later sends raise."""
    import socket

    port = int(next(a for a in sys.argv if a.startswith("--logs=")).rsplit(":", 1)[1])
    for fd in os.listdir("/proc/self/fd"):
        try:
            sock = socket.socket(fileno=int(fd))
        except OSError:
            continue
        try:
            if sock.type == socket.SOCK_STREAM and sock.getpeername()[1] == port:
                sock.shutdown(socket.SHUT_WR)
        except (OSError, IndexError, TypeError):
            pass
        finally:
            sock.detach()


def _leak_everywhere(log, secret, where):
    log.info("%s: logged %s", where, secret)
    log.info("%s: in an extra field", where, extra={"detail": f"value={secret}"})
    print(f"{where}: printed {secret}")
    print(f"{where}: to stderr {secret}", file=sys.stderr)
    sys.stdout.write(f"{where}: written in ")
    sys.stdout.write(f"pieces {secret}\n")
    sys.stdout.buffer.write(f"{where}: bytes {secret}\n".encode())
    sys.stdout.flush()


@d1.task
async def leak(client, log):
    secret = await _obtain(client, os.environ["LEAK_ROUTE"])
    _leak_everywhere(log, secret, "trio thread")
    await trio.to_thread.run_sync(_leak_everywhere, log, secret, "worker thread")
    await trio.sleep(0.5)  # let the pump send those on the socket first
    _break_logs_socket()
    for i in range(5):
        log.info("fallback %d: %s", i, secret)
        await trio.sleep(0.05)
    raise RuntimeError(f"failed while holding {secret}")


@d1.task
def leak_sync(client, log):
    # The same requests, made from this worker thread through the blocking client's twin.
    secret = trio.from_thread.run(_obtain, client._client, os.environ["LEAK_ROUTE"])
    _leak_everywhere(log, secret, "sync task")
    raise RuntimeError(f"sync task failed while holding {secret}")


@d1.task
async def not_secret(client, log):
    conn = await client.get_connection("warehouse")
    settings = await client.get_variable("settings", deserialize_json=True)
    plain = await client.get_variable("plain_holder")
    short = await client.get_variable("short_password")
    five = await client.get_variable("five_password")
    log.info("region=%s", conn.extra["region"])
    log.info("json region=%s", settings["region"])
    log.info("plain=%s", plain)
    log.info("short=%s five=%s", short, five)
    print(f"printed region={conn.extra['region']} short={short} five={five}")


@d1.task
async def huge_log(log):
    log.info("big:" + "x" * (int(os.environ.get("HUGE_LOG_MIB", "5")) * 1024 * 1024))
    log.info("after the big one")
    return "fine"


# -- the client tour: every typed client method once, by the async client and by its
# blocking twin (tests/test_client_supervised.py names the API call each must make).

_WHEN = "2025-12-01T00:00:00+00:00"


def client_tour():
    """(label, method, args, kwargs) for every typed method of the client."""
    import datetime

    from trio_coord.protocol.messages import HITLUser

    when = datetime.datetime.fromisoformat(_WHEN)
    return [
        ("variable_keys", "get_variable_keys", ("app_",), {"limit": 10, "offset": 5}),
        ("xcom_count", "get_xcom_count", (), {"task_id": "up"}),
        ("xcom_item", "get_xcom_item", (1,), {"task_id": "up"}),
        ("xcom_slice", "get_xcom_slice", (), {"task_id": "up", "start": 0, "stop": 2}),
        ("asset_by_name", "get_asset", (), {"name": "a1"}),
        ("asset_by_uri", "get_asset", (), {"uri": "s3://b/a1"}),
        ("assets_by_alias", "get_assets_by_alias", ("al",), {}),
        ("asset_events", "get_asset_events", (), {"name": "a1", "limit": 5}),
        ("alias_events", "get_asset_alias_events", ("al",), {"ascending": False}),
        ("inactive", "validate_inlets_and_outlets", (), {}),
        ("dag", "get_dag", (), {}),
        ("dagrun", "get_dagrun", (), {}),
        ("dagrun_state", "get_dagrun_state", (), {}),
        ("dr_count", "get_dr_count", (), {"states": ["success"]}),
        ("previous_dagrun", "get_previous_dagrun", ("success",), {}),
        ("prev_success", "get_prev_successful_dagrun", (), {}),
        ("previous_ti", "get_previous_ti", (), {"logical_date": when}),
        ("reschedule", "get_first_reschedule_date", (), {}),
        ("ti_count", "get_ti_count", (), {"task_ids": ["up"], "map_index": 2}),
        ("task_states", "get_task_states", (), {"run_ids": ["r1"]}),
        ("breadcrumbs", "get_task_breadcrumbs", (), {}),
        ("trigger", "trigger_dagrun", ("d2", "run-x"), {"conf": {"n": 1}, "note": "hi"}),
        ("task_state_get", "get_task_state", ("k",), {}),
        ("task_state_missing", "get_task_state", ("gone",), {"default": "dflt"}),
        ("task_state_set", "set_task_state", ("k", {"v": 1}), {}),
        ("task_state_delete", "delete_task_state", ("k",), {}),
        ("task_state_clear", "clear_task_state", (), {}),
        ("asset_state_get", "get_asset_state", ("k",), {"name": "a1"}),
        ("asset_state_get_uri", "get_asset_state", ("k",), {"uri": "s3://b/a1"}),
        ("asset_state_set", "set_asset_state", ("k", [1, 2]), {"name": "a1"}),
        ("asset_state_delete", "delete_asset_state", ("k",), {"uri": "s3://b/a1"}),
        ("asset_state_clear", "clear_asset_state", (), {"name": "a1"}),
        (
            "hitl",
            "create_hitl_detail",
            (["yes", "no"], "Ship it?"),
            {"assigned_users": [HITLUser(id="u1", name="Ann")]},
        ),
        ("rendered", "set_rendered_fields", ({"sql": "select 1", "password": "pw"},), {}),
    ]


def _plain(value):
    """A JSON form of a client result, for the report."""
    import dataclasses
    import json

    def convert(item):
        if hasattr(item, "to_map"):
            return item.to_map()
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            return dataclasses.asdict(item)
        return str(item)

    return json.loads(json.dumps(value, default=convert))


@d1.task
async def client_tour_async(client):
    results = {}
    for label, method, args, kwargs in client_tour():
        results[label] = _plain(await getattr(client, method)(*args, **kwargs))
    return results


@d1.task
def client_tour_sync(client):
    results = {}
    for label, method, args, kwargs in client_tour():
        results[label] = _plain(getattr(client, method)(*args, **kwargs))
    return results


def client_error_tour():
    """(label, method, args, kwargs) of calls the scenario answers with an error."""
    return [
        ("conn_missing", "get_connection", ("nope",), {}),
        ("var_denied", "get_variable", ("locked",), {}),
        ("asset_missing", "get_asset", (), {"name": "ghost"}),
        ("xcom_item_missing", "get_xcom_item", (9,), {"task_id": "up"}),
        ("trigger_exists", "trigger_dagrun", ("d2", "dup"), {}),
        ("dagrun_404", "get_dagrun", ("d1", "nope"), {}),
        ("dag_403", "get_dag", ("secret_dag",), {}),
        ("state_409", "set_task_state", ("k", 1), {}),
        ("count_500", "get_dr_count", ("broken",), {}),
    ]


@d1.task
async def client_errors(client):
    from trio_coord import errors

    kinds = ("NotFound", "PermissionDenied", "AlreadyExists", "ApiServerError")
    results = {}
    for label, method, args, kwargs in client_error_tour():
        try:
            await getattr(client, method)(*args, **kwargs)
        except errors.SupervisorError as exc:
            results[label] = {
                "class": type(exc).__name__,
                "is": [k for k in kinds if isinstance(exc, getattr(errors, k))],
                "error": exc.error,
                "status_code": exc.status_code,
                "in_body": exc.in_body,
            }
        else:
            results[label] = "no error"
    return results


@d1.task
def own_title():
    """Returns this process's kernel name and command line, as ``ps`` and ``top`` show them."""
    with open(f"/proc/{os.getpid()}/comm") as f:
        comm = f.read().strip()
    with open(f"/proc/{os.getpid()}/cmdline", "rb") as f:
        cmdline = f.read().rstrip(b"\0").decode("utf-8", "replace")
    return {"comm": comm, "cmdline": cmdline}
