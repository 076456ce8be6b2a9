"""Airflow's public REST API (``/api/v2``), the way a user or an operator drives a deployment.

The throw-away deployment uses the simple auth manager with every user an admin, so the
API server authorises requests itself and no token is needed. Every request is bounded.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import httpx

REQUEST_TIMEOUT_S = 30.0
#: An idempotent request answered "Database error" (SQLite busy) is tried this many more times.
DB_ERROR_RETRIES = 3
DB_ERROR_PAUSE_S = 1.0
IDEMPOTENT = frozenset({"GET", "PATCH", "PUT", "DELETE"})


class ApiError(RuntimeError):
    """A request failed or answered with an error status; the message has the body."""


class Api:
    """A small synchronous client of one API server."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.Client(base_url=base, timeout=REQUEST_TIMEOUT_S)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        # The metadata database is SQLite: a write that meets another component's lock
        # answers 500 "Database error". An idempotent request is tried again, a bounded
        # number of times; anything else is reported at once.
        for attempt in range(DB_ERROR_RETRIES + 1):
            try:
                r = self.http.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                raise ApiError(f"{method} {path}: {exc!r}") from exc
            locked = r.status_code == 500 and "Database error" in r.text
            if locked and method in IDEMPOTENT and attempt < DB_ERROR_RETRIES:
                time.sleep(DB_ERROR_PAUSE_S)
                continue
            if r.status_code >= 400:
                raise ApiError(f"{method} {path}: HTTP {r.status_code}: {r.text[:2000]}")
            return r.json() if r.content else None
        raise ApiError(f"{method} {path}: no answer")  # unreachable: the loop returns or raises

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, json=body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, json=body)

    # -- DAGs and runs ------------------------------------------------------------------

    def wait_dag(self, dag_id: str, timeout: float) -> dict[str, Any]:
        """The DAG once the DAG processor has parsed it; raises with the import errors if not."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return dict(self.get(f"/api/v2/dags/{quote(dag_id)}"))
            except ApiError as exc:
                if time.monotonic() > deadline:
                    errors = self.get("/api/v2/importErrors").get("import_errors", [])
                    raise ApiError(
                        f"DAG {dag_id!r} did not appear within {timeout:.0f}s ({exc}); "
                        f"import errors: {errors}"
                    ) from exc
            time.sleep(1)

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.patch(f"/api/v2/dags/{quote(dag_id)}", {"is_paused": paused})

    def trigger(self, dag_id: str, run_id: str) -> dict[str, Any]:
        body = {"dag_run_id": run_id, "logical_date": None}
        return dict(self.post(f"/api/v2/dags/{quote(dag_id)}/dagRuns", body))

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.get(f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}"))

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        """task id -> task instance (unmapped tasks only, which is all the e2e DAGs have)."""
        body = self.get(f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances")
        return {ti["task_id"]: ti for ti in body["task_instances"]}

    def ti_path(self, dag_id: str, run_id: str, task_id: str) -> str:
        return (
            f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances/{quote(task_id)}"
        )

    def wait_run(self, dag_id: str, run_id: str, timeout: float) -> dict[str, Any]:
        """The run once it is finished (success or failed); raises with the TI states if not."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(dag_id, run_id)
            if run["state"] in ("success", "failed"):
                return run
            if time.monotonic() > deadline:
                states = {t: ti["state"] for t, ti in self.task_instances(dag_id, run_id).items()}
                raise ApiError(
                    f"run {dag_id}/{run_id} still {run['state']!r} after {timeout:.0f}s; "
                    f"task states: {states}"
                )
            time.sleep(0.5)

    def log_text(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        """The task log of one try, as one text: every event and its fields, one per line."""
        body = self.get(
            f"{self.ti_path(dag_id, run_id, task_id)}/logs/{try_number}", full_content="true"
        )
        content = body.get("content", [])
        if isinstance(content, str):
            return content
        lines = []
        for entry in content:
            if isinstance(entry, dict):
                lines.append(" ".join(f"{k}={v}" for k, v in entry.items()))
            else:
                lines.append(str(entry))
        return "\n".join(lines)

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        return self.get(f"{self.ti_path(dag_id, run_id, task_id)}/xcomEntries/{quote(key)}")[
            "value"
        ]

    # -- mapped instances, runs of a DAG, asset events, state store ----------------------

    def mapped_instances(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        """Every expanded instance of a mapped task, in map index order."""
        body = self.get(f"{self.ti_path(dag_id, run_id, task_id)}/listMapped", limit=100)
        return sorted(body["task_instances"], key=lambda ti: ti["map_index"])

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        """The runs of a DAG (the first hundred)."""
        return list(self.get(f"/api/v2/dags/{quote(dag_id)}/dagRuns", limit=100)["dag_runs"])

    def asset_events(self, **filters: Any) -> list[dict[str, Any]]:
        """Asset events, filtered as the API allows (``source_dag_id=``, ``source_run_id=``...)."""
        return list(self.get("/api/v2/assets/events", limit=100, **filters)["asset_events"])

    def task_state(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        """The task state store of an (unmapped) task instance: key -> value."""
        body = self.get(f"{self.ti_path(dag_id, run_id, task_id)}/state-store")
        return {e["key"]: e["value"] for e in body["task_state_store"]}

    # -- human in the loop ("Required actions") -----------------------------------------

    def hitl_details(self, dag_id: str, run_id: str, **filters: Any) -> list[dict[str, Any]]:
        """The questions HITL tasks of a run asked (``task_id=``, ``response_received=``...)."""
        path = f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/hitlDetails"
        return list(self.get(path, limit=100, **filters)["hitl_details"])

    def answer_hitl(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        chosen_options: list[str],
        params_input: dict[str, Any] | None = None,
        map_index: int = -1,
    ) -> dict[str, Any]:
        """Answer a question as a person would; Airflow then resumes the awaiting task."""
        body = {"chosen_options": chosen_options, "params_input": params_input or {}}
        return dict(
            self.patch(f"{self.ti_path(dag_id, run_id, task_id)}/{map_index}/hitlDetails", body)
        )
