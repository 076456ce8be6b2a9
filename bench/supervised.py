"""One no-op task try under the REAL apache-airflow-task-sdk 1.3.2 supervisor, timed.

Usage: python supervised.py serve BUNDLE_SPEC | packed EXECUTABLES_ROOT

Same approach as tests/airflow_harness/driver.py: ``supervise_task`` with the Execution
API on an ``httpx.MockTransport``; the ``[sdk] coordinators`` entry picks trio-coord's
``TrioCoordinator`` (``python -m trio_coord serve``) or Airflow's own
``ExecutableCoordinator`` (a packed bundle). Prints one JSON line, in seconds:

* ``spawn_to_terminal``: from just before the supervisor starts the runtime process
  (``_PopenActivitySubprocess.start``) to the Execution API call that records the
  terminal state (``PATCH .../state``): what a task costs beyond its own work;
* ``spawn_to_connected``: to both sockets accepted (the supervisor's own accept loop);
* ``supervise_total``: the whole ``supervise_task`` call, process exit and log
  flushing included.
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
workdir = Path(tempfile.mkdtemp(prefix="trio-coord-bench-sup-"))
os.environ["AIRFLOW_HOME"] = str(workdir / "airflow_home")
if mode == "serve":
    coordinator: dict[str, Any] = {
        "classpath": "trio_coord.airflow_coordinator.TrioCoordinator",
        "kwargs": {"bundle": target},
    }
else:
    coordinator = {
        "classpath": "airflow.sdk.coordinators.executable.ExecutableCoordinator",
        "kwargs": {"executables_root": [target]},
    }
os.environ["AIRFLOW__SDK__COORDINATORS"] = json.dumps({"trio": coordinator})
os.environ["AIRFLOW__SDK__QUEUE_TO_COORDINATOR"] = json.dumps({"trio-coord": "trio"})

import httpx  # noqa: E402
from airflow.sdk.api.client import Client  # noqa: E402
from airflow.sdk.api.datamodels._generated import BundleInfo, TaskInstance  # noqa: E402
from airflow.sdk.coordinators import _subprocess  # noqa: E402
from airflow.sdk.execution_time.supervisor import supervise_task  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "airflow_harness"))
from run_context import ti_run_context  # noqa: E402

TI_ID = "019a0000-0000-7000-8000-0000000000b1"
marks: dict[str, float] = {}


def handler(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path.endswith("/run"):
        return httpx.Response(200, json=ti_run_context(dag_id="bench", run_id="r1"))
    if path.endswith("/state") and request.method == "PATCH":
        marks.setdefault("terminal", time.perf_counter())
        body = json.loads(request.content or b"{}")
        marks["state"] = body.get("state")  # type: ignore[assignment]
        return httpx.Response(204)
    if request.method in ("PATCH", "PUT", "POST", "DELETE"):
        return httpx.Response(204)
    return httpx.Response(200, json={})


_orig_start = _subprocess._PopenActivitySubprocess.start.__func__


def _start(cls: Any, **kwargs: Any) -> Any:
    marks.setdefault("spawn", time.perf_counter())
    return _orig_start(cls, **kwargs)


_subprocess._PopenActivitySubprocess.start = classmethod(_start)  # type: ignore[method-assign]
_orig_accept = _subprocess._accept_connections


def _accept(*args: Any, **kwargs: Any) -> Any:
    out = _orig_accept(*args, **kwargs)
    marks.setdefault("connected", time.perf_counter())
    return out


_subprocess._accept_connections = _accept

client = Client(
    base_url="http://mock-execution-api/", token="tok", transport=httpx.MockTransport(handler)
)
ti = TaskInstance(
    id=uuid.UUID(TI_ID),
    task_id="noop",
    dag_id="bench",
    run_id="r1",
    try_number=1,
    dag_version_id=uuid.UUID("019a0000-0000-7000-8000-0000000000b2"),
    map_index=-1,
    queue="trio-coord",
)
t0 = time.perf_counter()
code = supervise_task(
    ti=ti,
    bundle_info=BundleInfo(name="bench", version=None),
    dag_rel_path="dags/bench.py",
    token="tok",
    client=client,
    log_path=str(workdir / "task.log"),
)
total = time.perf_counter() - t0
print(
    json.dumps(
        {
            "mode": mode,
            "exit_code": code,
            "state": marks.get("state"),
            "spawn_to_connected": marks["connected"] - marks["spawn"],
            "spawn_to_terminal": marks["terminal"] - marks["spawn"],
            "supervise_total": total,
        }
    )
)
