"""The few lines a developer reads after a local run, or one JSON object for a script."""

from __future__ import annotations

import json
from typing import Any, Final

from ..runtime.masking import Masker
from .dag_runner import DagRunReport
from .session import Report, describe_exit

__all__ = ["render_dag_json", "render_dag_text", "render_json", "render_text"]

#: XCom and variable values are cut here: the summary is for glancing, --json has them whole.
_MAX_VALUE: Final = 120
#: The last error line is the reason the try failed: keep nearly all of it.
_MAX_ERROR: Final = 500


def _clip(text: str, limit: int = _MAX_VALUE) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def render_text(report: Report, masker: Masker) -> str:
    """The summary as aligned ``name: value`` lines, masked like the logs."""
    where = f"{report.dag_id}.{report.task_id}"
    if report.map_index >= 0:
        where += f"[{report.map_index}]"
    rows: list[tuple[str, str]] = [
        ("task", f"{where}  (run {report.run_id}, try {report.try_number})"),
        ("state", report.state + (f"  ({report.note})" if report.note else "")),
        (
            "exit code",
            "none (the process never started)"
            if report.exit_code is None
            else str(report.exit_code)
            if report.exit_code >= 0
            else f"{report.exit_code} ({describe_exit(report.exit_code)})",
        ),
        ("terminal", report.terminal or "none"),
    ]
    if report.xcoms:
        rows += [("xcom", f"{key} = {_clip(_json(v))}") for key, v in report.xcoms.items()]
    else:
        rows.append(("xcoms", "none pushed"))
    counts = ", ".join(f"{name} {n}" for name, n in report.requests.items())
    rows.append(("requests", f"{report.request_count}" + (f" ({counts})" if counts else "")))
    rows += [
        ("variable", f"{key} = {_clip(_json(v))}" if v is not None else f"{key} deleted")
        for key, v in report.variables_set.items()
    ]
    rows += [("asset event", _clip(_json(e))) for e in report.outlet_events]
    rows += [("triggered", _clip(line)) for line in report.triggered_runs]
    rows += [("hitl request", _clip(_json(h))) for h in report.hitl_requests]
    if report.skipped_downstream:
        rows.append(("skipped downstream", ", ".join(report.skipped_downstream)))
    if report.retry_reason is not None:
        rows.append(("retry reason", _clip(report.retry_reason, _MAX_ERROR)))
    if report.retry_delay_seconds is not None:
        rows.append(("retry delay", f"{report.retry_delay_seconds:g} s"))
    if report.rendered_map_index is not None:
        rows.append(("map label", report.rendered_map_index))
    if report.last_error and report.state != "success":
        rows.append(("last error", _clip(report.last_error, _MAX_ERROR)))
    rows += [("defect", d) for d in report.defects]
    rows += [("hint", h) for h in report.hints]
    rows.append(("time", f"{report.duration:.2f} s"))
    width = max(len(name) for name, _ in rows) + 1
    lines = ["--- trio-coord run summary ---"]
    lines += [f"{name + ':':<{width}} {value}" for name, value in rows]
    return "".join(masker.mask(line) + "\n" for line in lines)


def render_json(report: Report, masker: Masker) -> str:
    """The summary as one JSON object on one line (values whole, strings masked)."""
    doc: dict[str, Any] = {
        "dag_id": report.dag_id,
        "task_id": report.task_id,
        "run_id": report.run_id,
        "try_number": report.try_number,
        "map_index": report.map_index,
        "state": report.state,
        "note": report.note,
        "exit_code": report.exit_code,
        "terminal": report.terminal,
        "xcoms": report.xcoms,
        "requests": report.requests,
        "request_count": report.request_count,
        "variables_set": report.variables_set,
        "rendered_map_index": report.rendered_map_index,
        "outlet_events": report.outlet_events,
        "triggered_runs": report.triggered_runs,
        "skipped_downstream": report.skipped_downstream,
        "hitl_requests": report.hitl_requests,
        "retry_reason": report.retry_reason,
        "retry_delay_seconds": report.retry_delay_seconds,
        "secrets_masked": report.secrets_masked,
        "last_error": report.last_error,
        "defects": report.defects,
        "hints": report.hints,
        "log_lines": report.log_lines,
        "duration_s": round(report.duration, 3),
        "status": report.status,
    }
    return json.dumps(masker.redact(doc), ensure_ascii=False, default=str) + "\n"


def _dag_rows(report: DagRunReport) -> list[str]:
    head = ("task", "map", "state", "tries", "time")
    rows = [
        (
            ti.task_id,
            str(ti.map_index) if ti.map_index >= 0 else "",
            ti.state,
            str(ti.tries),
            f"{ti.duration:.2f} s",
        )
        for ti in report.task_instances
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(head, widths, strict=True)).rstrip()]
    for ti, row in zip(report.task_instances, rows, strict=True):
        line = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        if ti.note:
            line += f"  ({_clip(ti.note, _MAX_ERROR)})"
        lines.append(line)
    return lines


def render_dag_text(report: DagRunReport, masker: Masker) -> str:
    """The whole-DAG summary: one row per task instance, then the run's state."""
    lines = ["--- trio-coord run summary (whole DAG) ---"]
    lines.append(f"dag: {report.dag_id}  (run {report.run_id})")
    lines += _dag_rows(report)
    if report.stopped:
        lines.append(f"stopped: {report.stopped}")
    lines.append(f"dag run: {report.state}  ({report.duration:.2f} s)")
    return "".join(masker.mask(line) + "\n" for line in lines)


def render_dag_json(report: DagRunReport, masker: Masker) -> str:
    """The whole-DAG summary as one JSON object on one line."""
    doc: dict[str, Any] = {
        "dag_id": report.dag_id,
        "run_id": report.run_id,
        "state": report.state,
        "stopped": report.stopped,
        "duration_s": round(report.duration, 3),
        "status": report.status,
        "task_instances": [
            {
                "task_id": ti.task_id,
                "map_index": ti.map_index,
                "state": ti.state,
                "tries": ti.tries,
                "duration_s": round(ti.duration, 3),
                "note": ti.note,
                "xcoms": ti.xcoms,
            }
            for ti in report.task_instances
        ],
    }
    return json.dumps(masker.redact(doc), ensure_ascii=False, default=str) + "\n"
