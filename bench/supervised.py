"""One no-op task try under the REAL apache-airflow-task-sdk 1.3.2 supervisor, timed.

Usage: python supervised.py serve BUNDLE_SPEC | packed EXECUTABLES_ROOT | native DAG_FOLDER
       [--trace] [--preload]

Same approach as tests/airflow_harness/driver.py: ``supervise_task`` with the Execution
API on an ``httpx.MockTransport``; the ``[sdk] coordinators`` entry picks trio-coord's
``TrioCoordinator`` (``python -m trio_coord serve``) or Airflow's own
``ExecutableCoordinator`` (a packed bundle). ``native`` is the baseline: no coordinator,
so the supervisor forks Airflow's own Python task runner, which parses ``bench_native.py``
from a local DAG bundle over DAG_FOLDER and runs its no-op ``@task``. Prints one JSON
line, in seconds:

* ``spawn_to_terminal``: from just before the supervisor starts the runtime process
  (``_PopenActivitySubprocess.start``) to the Execution API call that records the
  terminal state (``PATCH .../state``): what a task costs beyond its own work;
* ``spawn_to_connected``: to both sockets accepted (the supervisor's own accept loop;
  ``null`` for ``native``, whose forked child inherits its sockets);
* ``supervise_total``: the whole ``supervise_task`` call, process exit and log
  flushing included.

With ``--trace`` it adds ``timeline``: milliseconds after spawn of the runtime's own phases
(``TRIO_COORD_TRACE_FILE``, trio-coord only) interleaved with the supervisor's steps
(``StartupDetails`` sent, each request it handled, each Execution API call), to show
whose time the stretch from "connected" to "terminal" is.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

mode, target = sys.argv[1], sys.argv[2]
trace = "--trace" in sys.argv[3:]
#: Import, before timing, what the supervisor imports lazily on a coordinator runtime's
#: first request (the schema-version migrator and the request-model index, ~1 s on a
#: loaded 2-core machine): a worker process that has run one such task has them already.
preload = "--preload" in sys.argv[3:]
workdir = Path(tempfile.mkdtemp(prefix="trio-coord-bench-sup-"))
trace_file = workdir / "runtime-trace.txt"
if trace:
    os.environ["TRIO_COORD_TRACE_FILE"] = str(trace_file)
os.environ["AIRFLOW_HOME"] = str(workdir / "airflow_home")
if mode == "serve":
    coordinator: dict[str, Any] = {
        "classpath": "trio_coord.airflow_coordinator.TrioCoordinator",
        "kwargs": {"bundle": target},
    }
elif mode == "packed":
    coordinator = {
        "classpath": "airflow.sdk.coordinators.executable.ExecutableCoordinator",
        "kwargs": {"executables_root": [target]},
    }
elif mode == "native":
    os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(
        [
            {
                "name": "bench",
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": target},
            }
        ]
    )
else:
    sys.exit(f"unknown mode {mode!r}: serve, packed or native")
if mode != "native":
    os.environ["AIRFLOW__SDK__COORDINATORS"] = json.dumps({"trio": coordinator})
    os.environ["AIRFLOW__SDK__QUEUE_TO_COORDINATOR"] = json.dumps({"trio-coord": "trio"})

import httpx  # noqa: E402
from airflow.sdk.api.client import Client  # noqa: E402
from airflow.sdk.api.datamodels._generated import BundleInfo, TaskInstance  # noqa: E402
from airflow.sdk.coordinators import _subprocess  # noqa: E402
from airflow.sdk.execution_time import supervisor  # noqa: E402
from airflow.sdk.execution_time.supervisor import supervise_task  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "airflow_harness"))
from run_context import ti_run_context  # noqa: E402

TI_ID = "019a0000-0000-7000-8000-0000000000b1"
marks: dict[str, float] = {}


timeline: list[tuple[float, str]] = []


def note(what: str) -> None:
    if trace:
        timeline.append((time.monotonic(), "supervisor: " + what))


def handler(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    note(f"API {request.method} {path.rsplit('/', 1)[-1]}")
    if path.endswith("/run"):
        return httpx.Response(
            200,
            json=ti_run_context(
                dag_id="bench_native" if mode == "native" else "bench", run_id="r1"
            ),
        )
    if path.endswith("/state") and request.method == "PATCH":
        marks.setdefault("terminal", time.perf_counter())
        body = json.loads(request.content or b"{}")
        marks["state"] = body.get("state")  # type: ignore[assignment]
        return httpx.Response(204)
    if request.method in ("PATCH", "PUT", "POST", "DELETE"):
        return httpx.Response(204)
    return httpx.Response(200, json={})


def _mark_spawn(cls: type) -> None:
    """Mark "spawn" when ``cls.start`` (a classmethod) is entered."""
    orig = cls.start.__func__  # type: ignore[attr-defined]

    def start(klass: Any, **kwargs: Any) -> Any:
        marks.setdefault("spawn", time.perf_counter())
        note("spawn")
        return orig(klass, **kwargs)

    cls.start = classmethod(start)  # type: ignore[attr-defined]


_mark_spawn(_subprocess._PopenActivitySubprocess)  # a coordinator's child (serve, packed)
_mark_spawn(supervisor.ActivitySubprocess)  # the native runner, forked
_orig_accept = _subprocess._accept_connections


def _accept(*args: Any, **kwargs: Any) -> Any:
    out = _orig_accept(*args, **kwargs)
    marks.setdefault("connected", time.perf_counter())
    note("both sockets accepted")
    return out


_subprocess._accept_connections = _accept

if trace:
    _orig_send = supervisor.ActivitySubprocess.send_msg
    _orig_handle = supervisor.ActivitySubprocess._handle_request

    def _send(self: Any, msg: Any, *args: Any, **kwargs: Any) -> Any:
        note(f"sending {type(msg).__name__}")
        return _orig_send(self, msg, *args, **kwargs)

    def _handle(self: Any, msg: Any, *args: Any, **kwargs: Any) -> Any:
        note(f"handling {type(msg).__name__}")
        try:
            return _orig_handle(self, msg, *args, **kwargs)
        finally:
            note(f"handled {type(msg).__name__}")

    supervisor.ActivitySubprocess.send_msg = _send  # type: ignore[method-assign]

    def _noted(cls: Any, name: str) -> None:
        orig = getattr(cls, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            note(f"{name} begins")
            return orig(*args, **kwargs)

        setattr(cls, name, wrapper)

    from airflow.sdk.api.client import TaskInstanceOperations

    _noted(supervisor.ActivitySubprocess, "_register_pipe_readers")
    _noted(supervisor.ActivitySubprocess, "_on_child_started")
    _noted(TaskInstanceOperations, "start")
    _noted(TaskInstanceOperations, "succeed")
    supervisor.ActivitySubprocess._handle_request = _handle  # type: ignore[method-assign]

if preload:
    from airflow.sdk.execution_time.schema import get_schema_version_migrator, resolve_body_class

    get_schema_version_migrator()
    resolve_body_class({"type": "SucceedTask"})

client = Client(
    base_url="http://mock-execution-api/", token="tok", transport=httpx.MockTransport(handler)
)
ti = TaskInstance(
    id=uuid.UUID(TI_ID),
    task_id="noop",
    dag_id="bench_native" if mode == "native" else "bench",
    run_id="r1",
    try_number=1,
    dag_version_id=uuid.UUID("019a0000-0000-7000-8000-0000000000b2"),
    map_index=-1,
    queue="default" if mode == "native" else "trio-coord",
)
t0 = time.perf_counter()
code = supervise_task(
    ti=ti,
    bundle_info=BundleInfo(name="bench", version=None),
    dag_rel_path="bench_native.py" if mode == "native" else "dags/bench.py",
    token="tok",
    client=client,
    log_path=str(workdir / "task.log"),
)
total = time.perf_counter() - t0
note("supervise_task returned")
extra: dict[str, Any] = {}
if trace:
    if trace_file.exists():
        for line in trace_file.read_text().splitlines():
            stamp, _, phase = line.partition(" ")
            timeline.append((float(stamp), "runtime: " + phase))
    timeline.sort()
    zero = timeline[0][0]
    extra["timeline"] = [[round((t - zero) * 1000, 1), what] for t, what in timeline]
print(
    json.dumps(
        {
            "mode": mode,
            "exit_code": code,
            "state": marks.get("state"),
            "spawn_to_connected": marks["connected"] - marks["spawn"]
            if "connected" in marks
            else None,
            "spawn_to_terminal": marks["terminal"] - marks["spawn"],
            "supervise_total": total,
            **extra,
        }
    )
)
