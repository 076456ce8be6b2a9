"""DAG runs in ``trio-coord run``: the runs a try triggers, kept in memory.

``TriggerDagRun`` records the run (refusing an existing run id unless ``reset_dag_run``,
as the API server does); nothing runs it, so its state reads ``success`` straight away,
which lets ``wait_for_completion`` finish. The try's own run reads ``running``; any other
run is unknown (a 404 from the API, as the real supervisor reports it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..protocol.messages import (
    DagRunStateResult,
    ErrorResponse,
    GetDagRunState,
    OKResponse,
    TriggerDagRun,
)

__all__ = ["LocalDagRuns"]


@dataclass
class LocalDagRuns:
    """Triggered runs by ``(dag_id, run_id)``, in the order triggered."""

    own: tuple[str, str]
    triggered: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def trigger(self, msg: TriggerDagRun) -> tuple[Any, Any]:
        key = (msg.dag_id, msg.run_id)
        if key in self.triggered or key == self.own:
            if not msg.reset_dag_run:
                return ErrorResponse(error="DAGRUN_ALREADY_EXISTS"), None
            self.triggered.setdefault(key, {})["cleared"] = True
            return OKResponse(ok=True), None
        self.triggered[key] = {
            "conf": dict(msg.conf or {}),
            "logical_date": msg.logical_date,
            "run_after": msg.run_after,
        }
        return OKResponse(ok=True), None

    def state(self, msg: GetDagRunState) -> tuple[Any, Any]:
        key = (msg.dag_id, msg.run_id)
        if key == self.own:
            return DagRunStateResult(state="running"), None
        if key in self.triggered:
            return DagRunStateResult(state="success"), None
        return None, ErrorResponse(
            error="API_SERVER_ERROR",
            detail={"status_code": 404, "message": f"no run {msg.run_id} of {msg.dag_id}"},
        )

    def summary(self) -> list[str]:
        """One line per triggered run, for the summary."""
        out = []
        for (dag_id, run_id), info in self.triggered.items():
            line = f"{dag_id} {run_id}"
            if info.get("conf"):
                line += f" conf={info['conf']}"
            if info.get("cleared"):
                line += " (existing run cleared)"
            out.append(line)
        return out
