"""Run one task try under the REAL apache-airflow-task-sdk 1.3.2 supervisor; print a JSON report.

Each supervised run happens in a fresh interpreter (this script), because the
supervisor configures process-global state (structlog, the secrets masker, signal
handlers). Only the Execution API's HTTP transport is replaced, with an
``httpx.MockTransport`` that answers from the scenario and records every call.

The task goes through ``supervise_task`` -> ``CoordinatorManager`` -> the
``[sdk] coordinators`` entry (trio-coord's ``TrioCoordinator``, or Airflow's own
``ExecutableCoordinator`` for a packed bundle) -> ``_PopenActivitySubprocess``, with
the task log written by the supervisor's own ``_configure_logging`` (JSON lines,
secrets masked), exactly as on a worker.

Raw capture: every byte the supervisor process receives from the runtime -- the comm and
logs sockets and the stdout/stderr pipes, which are all sockets in 1.3.2 -- is recorded
at ``socket.recv``/``recv_into``, before the supervisor decodes or masks anything, and
returned in the report (base64, per channel), with the task log file's raw bytes.

Usage: python driver.py '<scenario json>'   (see tests/airflow_harness/harness.py)
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

scenario: dict[str, Any] = json.loads(sys.argv[1])
workdir = Path(scenario.get("workdir") or tempfile.mkdtemp(prefix="trio-coord-sup-"))
os.environ.setdefault("AIRFLOW_HOME", str(workdir / "airflow_home"))
os.environ.update(scenario.get("env", {}))
# "native_dag_folder": run the task with Airflow's own Python runner instead (no
# coordinator): the DAG file "dag_rel_path" under that folder, as a LocalDagBundle "b".
NATIVE = scenario.get("native_dag_folder")
if NATIVE:
    os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(
        [
            {
                "name": "b",
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": NATIVE},
            }
        ]
    )
else:
    coordinator = scenario.get("coordinator") or {
        "classpath": "trio_coord.airflow_coordinator.TrioCoordinator",
        "kwargs": {"bundle": scenario["bundle"]},
    }
    os.environ["AIRFLOW__SDK__COORDINATORS"] = json.dumps({"trio": coordinator})
    os.environ["AIRFLOW__SDK__QUEUE_TO_COORDINATOR"] = json.dumps({"trio-coord": "trio"})

import httpx  # noqa: E402
import psutil  # noqa: E402
from airflow.sdk.api.client import Client  # noqa: E402
from airflow.sdk.api.datamodels._generated import BundleInfo, TaskInstance  # noqa: E402
from airflow.sdk.coordinators import _subprocess  # noqa: E402
from airflow.sdk.execution_time.supervisor import supervise_task  # noqa: E402
from run_context import ti_run_context  # noqa: E402  (this script's own directory)

DAG_ID = scenario.get("dag_id", "d1")
TASK_ID = scenario.get("task_id", "t1")
RUN_ID = scenario.get("run_id", "r1")
TI_ID = "019a0000-0000-7000-8000-000000000001"
variables: dict[str, str] = dict(scenario.get("variables", {}))
connections: dict[str, dict[str, Any]] = dict(scenario.get("connections", {}))
xcoms: dict[str, Any] = dict(scenario.get("xcoms", {}))
# "dag/run/task/key" -> [value of map index 0, 1, ...]: a mapped upstream's XComs, served
# by the count (HEAD), item and slice routes the lazy sequence reads.
mapped_xcoms: dict[str, list[Any]] = dict(scenario.get("mapped_xcoms", {}))
calls: list[dict[str, Any]] = []
# "METHOD /path" -> {"status": int, "json": any (absent: empty body), "headers": {...}}:
# fixed answers for the Execution API routes a scenario exercises, checked first.
routes: dict[str, dict[str, Any]] = dict(scenario.get("routes", {}))
# "METHOD /path" -> [answer, answer, ...]: successive answers to the same route (the last
# one repeats), e.g. a DAG run's state "running" then "success"; checked before "routes".
route_sequences: dict[str, list[dict[str, Any]]] = {
    k: list(v) for k, v in scenario.get("route_sequences", {}).items()
}
not_found = {"detail": {"reason": "not_found", "message": "not found"}}


def handler(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    body: Any = None
    if request.content:
        try:
            body = json.loads(request.content)
        except ValueError:
            body = request.content.decode(errors="replace")
    calls.append(
        {"method": request.method, "path": path, "params": dict(request.url.params), "body": body}
    )
    route = routes.get(f"{request.method} {path}")
    sequence = route_sequences.get(f"{request.method} {path}")
    if sequence:
        route = sequence.pop(0) if len(sequence) > 1 else sequence[0]
    if route is not None:
        headers = dict(route.get("headers", {}))
        content = b""
        if "json" in route:
            content = json.dumps(route["json"]).encode()
            headers.setdefault("content-type", "application/json")
        return httpx.Response(route.get("status", 200), content=content, headers=headers)
    parts = path.strip("/").split("/")
    if path.endswith("/run"):
        return httpx.Response(
            200,
            json=ti_run_context(
                dag_id=DAG_ID,
                run_id=RUN_ID,
                conf=scenario.get("conf"),
                max_tries=2,
                should_retry=bool(scenario.get("should_retry")),
                xcom_keys_to_clear=scenario.get("xcom_keys_to_clear", []),
                # "ti_context": {"next_method": ..., "next_kwargs": ..., ...}: a resumed
                # or rescheduled try (fields of TIRunContext, merged over the defaults).
                extra=scenario.get("ti_context"),
            ),
        )
    if parts[0] == "variables":
        key = parts[1]
        if request.method == "GET":
            if key in variables:
                return httpx.Response(200, json={"key": key, "value": variables[key]})
            return httpx.Response(404, json=not_found)
        if request.method == "PUT":
            variables[key] = body.get("val") if isinstance(body, dict) else body
            return httpx.Response(201, json={})
        if request.method == "DELETE":
            variables.pop(key, None)
            return httpx.Response(204)
    if parts[0] == "connections" and request.method == "GET":
        conn = connections.get(parts[1])
        if conn is None:
            return httpx.Response(404, json=not_found)
        return httpx.Response(200, json={"conn_id": parts[1], **conn})
    if parts[0] == "xcoms" and len(parts) >= 5 and "/".join(parts[1:5]) in mapped_xcoms:
        values = mapped_xcoms["/".join(parts[1:5])]
        if request.method == "HEAD":
            return httpx.Response(200, headers={"Content-Range": f"map_indexes {len(values)}"})
        if len(parts) == 7 and parts[5] == "item":
            offset = int(parts[6])
            if -len(values) <= offset < len(values):
                return httpx.Response(200, json=values[offset])
            return httpx.Response(404, json=not_found)
        if len(parts) == 6 and parts[5] == "slice":
            q = {k: int(v) for k, v in request.url.params.items() if k in ("start", "stop", "step")}
            return httpx.Response(
                200, json=values[slice(q.get("start"), q.get("stop"), q.get("step"))]
            )
    if parts[0] == "xcoms" and len(parts) >= 5:
        key = "/".join(parts[1:5])
        if request.method == "GET":
            if key in xcoms:
                return httpx.Response(200, json={"key": parts[4], "value": xcoms[key]})
            return httpx.Response(
                404, json={"detail": {"reason": "not_found", "message": "XCom not found"}}
            )
        if request.method == "POST":
            xcoms[key] = body
            return httpx.Response(201, json={})
        if request.method == "DELETE":
            xcoms.pop(key, None)
            return httpx.Response(204)
    if request.method in ("PATCH", "PUT", "POST", "DELETE"):
        return httpx.Response(204)
    return httpx.Response(200, json={})


# -- raw capture of what the supervisor receives --------------------------------------
received: list[tuple[int, bytes]] = []  # (file descriptor, bytes), in arrival order
channels: dict[int, str] = {}  # file descriptor -> comm / logs / stdout / stderr
_recv = socket.socket.recv
_recv_into = socket.socket.recv_into


def _capturing_recv(self: socket.socket, bufsize: int, *args: Any) -> bytes:
    data = _recv(self, bufsize, *args)
    received.append((self.fileno(), bytes(data)))
    return data


def _capturing_recv_into(self: socket.socket, buffer: Any, nbytes: int = 0, *args: Any) -> int:
    n = _recv_into(self, buffer, nbytes, *args)
    if n:
        received.append((self.fileno(), bytes(memoryview(buffer)[:n])))
    return n


socket.socket.recv = _capturing_recv  # type: ignore[method-assign]
socket.socket.recv_into = _capturing_recv_into  # type: ignore[method-assign]
_orig_register = _subprocess._PopenActivitySubprocess._register_pipe_readers


def _register_pipe_readers(
    self: Any, stdout: Any, stderr: Any, requests: Any, logs: Any, **kw: Any
) -> Any:
    for name, sock in (("stdout", stdout), ("stderr", stderr), ("comm", requests), ("logs", logs)):
        channels[sock.fileno()] = name
    return _orig_register(self, stdout, stderr, requests, logs, **kw)


_subprocess._PopenActivitySubprocess._register_pipe_readers = _register_pipe_readers  # type: ignore[method-assign]


def captured() -> dict[str, str]:
    """Each channel's bytes, base64-encoded (the report is JSON)."""
    chunks: dict[str, list[bytes]] = {name: [] for name in ("comm", "logs", "stdout", "stderr")}
    for fd, data in received:
        if fd in channels:
            chunks[channels[fd]].append(data)
    return {name: base64.b64encode(b"".join(parts)).decode() for name, parts in chunks.items()}


# Keep the supervisor's process object, to read final_state and reach the comm socket.
instances: list[Any] = []
_orig_start = _subprocess._PopenActivitySubprocess.start.__func__


def _start(cls: Any, **kwargs: Any) -> Any:
    proc = _orig_start(cls, **kwargs)
    instances.append(proc)
    return proc


_subprocess._PopenActivitySubprocess.start = classmethod(_start)  # type: ignore[method-assign]

# The native runner's process object (forked by ActivitySubprocess), for final_state.
native_instances: list[Any] = []
if NATIVE:
    from airflow.sdk.execution_time import supervisor as _supervisor

    _orig_native_start = _supervisor.ActivitySubprocess.start.__func__

    def _native_start(cls: Any, **kwargs: Any) -> Any:
        proc = _orig_native_start(cls, **kwargs)
        native_instances.append(proc)
        return proc

    _supervisor.ActivitySubprocess.start = classmethod(_native_start)  # type: ignore[method-assign]


# "startup_override": {"ti.id": "not-a-uuid", ...} replaces fields of the StartupDetails
# body as it leaves the real supervisor: a first frame it would never send by itself.
if scenario.get("startup_override"):
    _orig_serialize = _subprocess._PopenActivitySubprocess._serialize_response

    def _serialize(self: Any, msg: Any, **dump_opts: Any) -> dict[str, Any]:
        body: dict[str, Any] = _orig_serialize(self, msg, **dump_opts)
        if body.get("type") == "StartupDetails":
            for dotted, value in scenario["startup_override"].items():
                *parents, last = dotted.split(".")
                target = body
                for step in parents:
                    target = target[step]
                target[last] = value
        return body

    _subprocess._PopenActivitySubprocess._serialize_response = _serialize  # type: ignore[method-assign]


def runtime_pid() -> int | None:
    kids = psutil.Process().children()
    return kids[0].pid if kids else None


def after(delay: float, action: Any) -> None:
    def run() -> None:
        deadline = time.monotonic() + 30
        while not instances and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        action()

    threading.Thread(target=run, daemon=True).start()


if scenario.get("sigterm_after") is not None:

    def sigterm() -> None:
        pid = instances[0].pid if instances else runtime_pid()
        if pid:
            os.kill(pid, signal.SIGTERM)

    after(float(scenario["sigterm_after"]), sigterm)

if scenario.get("close_comm_after") is not None:

    def close_comm() -> None:
        import socket

        if instances:
            instances[0].stdin.shutdown(socket.SHUT_RDWR)

    after(float(scenario["close_comm_after"]), close_comm)


def when_file(path: str, action: Any) -> None:
    """Run ``action`` once ``path`` exists (the task writes it): no guessed delays."""

    def run() -> None:
        deadline = time.monotonic() + 60
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.01)
        action()

    threading.Thread(target=run, daemon=True).start()


# "<action>_on_file": PATH -- the action happens once the task has created PATH.
if scenario.get("sigterm_on_file"):
    when_file(scenario["sigterm_on_file"], lambda: os.kill(instances[0].pid, signal.SIGTERM))
if scenario.get("close_comm_on_file"):
    when_file(scenario["close_comm_on_file"], lambda: instances[0].stdin.shutdown(socket.SHUT_RDWR))
if scenario.get("sigkill_supervisor_on_file"):  # the supervisor dies: no report is printed
    when_file(scenario["sigkill_supervisor_on_file"], lambda: os.kill(os.getpid(), signal.SIGKILL))

client = Client(
    base_url="http://mock-execution-api/", token="tok", transport=httpx.MockTransport(handler)
)
ti = TaskInstance(
    id=uuid.UUID(TI_ID),
    task_id=TASK_ID,
    dag_id=DAG_ID,
    run_id=RUN_ID,
    try_number=int(scenario.get("try_number", 1)),
    dag_version_id=uuid.UUID("019a0000-0000-7000-8000-000000000002"),
    map_index=int(scenario.get("map_index", -1)),
    queue="default" if NATIVE else "trio-coord",
    # "context_carrier": {"traceparent": ...}: the W3C trace context Airflow hands the try.
    context_carrier=scenario.get("context_carrier"),
)
task_log = workdir / "task.log"
report: dict[str, Any] = {"workdir": str(workdir)}
t0 = time.monotonic()
try:
    report["exit_code"] = supervise_task(
        ti=ti,
        bundle_info=BundleInfo(name="b", version=None),
        dag_rel_path=scenario.get("dag_rel_path", "dags/x.py"),
        token="tok",
        client=client,
        log_path=str(task_log),
    )
except BaseException as exc:  # the point is to report what escapes the supervisor
    report["raised"] = f"{type(exc).__name__}: {exc}"
report["elapsed"] = time.monotonic() - t0
socket.socket.recv = _recv  # type: ignore[method-assign]
socket.socket.recv_into = _recv_into  # type: ignore[method-assign]
report["capture"] = captured()
report["task_log_raw"] = base64.b64encode(
    task_log.read_bytes() if task_log.exists() else b""
).decode()
if NATIVE and not instances:
    instances.extend(native_instances)
fs = instances[0].final_state if instances else None
report["final_state"] = None if fs is None else str(getattr(fs, "value", fs))
report["calls"] = calls
report["xcoms"] = xcoms
report["variables"] = variables
lines = task_log.read_text(errors="replace").splitlines() if task_log.exists() else []
report["task_log"] = [json.loads(line) for line in lines if line.strip()]
print("@@REPORT@@" + json.dumps(report, default=str))
