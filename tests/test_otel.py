"""OpenTelemetry trace context (protocol.md §3.6) under the real 1.3.2 supervisor.

With a parent carrier in ``StartupDetails.ti.context_carrier`` and OpenTelemetry
installed, the task runs in a span whose parent is that context, and each request frame
the supervisor receives is ``[id, body, carrier]`` with the current span's traceparent.
Without OpenTelemetry (its import blocked in the runtime process), or without a parent
carrier, frames keep two elements and nothing of OpenTelemetry is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from airflow_harness.harness import Report, supervise

BUNDLE = f"{Path(__file__).parent / 'airflow_harness' / 'bundle_otel.py'}:bundle"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"
PARENT = {"traceparent": f"00-{TRACE_ID}-{PARENT_SPAN}-01", "tracestate": "vendor=x"}

# Blocks ``import opentelemetry`` in the runtime process only (its argv has --comm=), as
# if the package were not installed; the supervisor, which needs it, is left alone.
BLOCKER = """
import os, sys
if os.environ.get("TRIO_COORD_TEST_BLOCK_OTEL") and any(
    a.startswith("--comm") for a in getattr(sys, "orig_argv", [])
):
    sys.modules["opentelemetry"] = None
"""


def frames(r: Report) -> list[list[Any]]:
    """Every frame the runtime sent on the comm channel, decoded."""
    data, out = r.captured("comm"), []
    while data:
        size = int.from_bytes(data[:4], "big")
        out.append(msgspec.msgpack.decode(data[4 : 4 + size]))
        data = data[4 + size :]
    return out


def _by_type(r: Report) -> dict[str, list[Any]]:
    got: dict[str, list[Any]] = {}
    for f in frames(r):
        got.setdefault(f[1]["type"], []).append(f)
    return got


def _span_id(carrier: dict[str, str]) -> str:
    version, trace_id, span_id, flags = carrier["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
    return span_id


@pytest.fixture
def spans_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "spans.jsonl"
    monkeypatch.setenv("TRIO_COORD_TEST_SPANS", str(path))
    return path


def _spans(path: Path) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in map(json.loads, path.read_text().splitlines())}


@pytest.mark.supervisor
def test_requests_carry_the_current_span_under_the_startup_parent(spans_file: Path) -> None:
    r = supervise("traced", bundle=BUNDLE, context_carrier=PARENT)
    assert (r.exit_code, r.final_state) == (0, "success"), r.events()
    spans = _spans(spans_file)
    task, inner = spans["worker.traced"], spans["inner"]
    # The task span's parent is the startup carrier's span, in the same trace.
    assert (task["trace_id"], task["parent"]) == (TRACE_ID, PARENT_SPAN)
    assert task["attributes"]["airflow.task_id"] == "traced"
    assert task["attributes"]["airflow.task_instance.map_index"] == -1
    assert inner["parent"] == task["span_id"]
    sent = _by_type(r)
    outer_var, inner_var = sent["GetVariable"]
    assert len(outer_var) == 3 and _span_id(outer_var[2]) == task["span_id"]
    assert _span_id(inner_var[2]) == inner["span_id"]
    (push,) = sent["SetXCom"]
    (done,) = sent["SucceedTask"]
    assert _span_id(push[2]) == task["span_id"] and _span_id(done[2]) == task["span_id"]
    assert all(set(f[2]) <= {"traceparent", "tracestate"} for f in frames(r))


@pytest.mark.supervisor
def test_a_sync_task_sends_the_task_span_from_its_thread(spans_file: Path) -> None:
    r = supervise("traced_sync", bundle=BUNDLE, context_carrier=PARENT)
    assert r.final_state == "success", r.events()
    task = _spans(spans_file)["worker.traced_sync"]
    (var,) = _by_type(r)["GetVariable"]
    assert _span_id(var[2]) == task["span_id"]


@pytest.mark.supervisor
def test_no_parent_carrier_means_two_element_frames() -> None:
    r = supervise("traced_sync", bundle=BUNDLE)
    assert r.final_state == "success", r.events()
    assert frames(r) and all(len(f) == 2 for f in frames(r))


@pytest.mark.supervisor
def test_without_opentelemetry_frames_have_two_elements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.setenv("TRIO_COORD_TEST_BLOCK_OTEL", "1")
    r = supervise("traced_sync", bundle=BUNDLE, context_carrier=PARENT)
    assert r.final_state == "success", r.events()
    assert frames(r) and all(len(f) == 2 for f in frames(r))


@pytest.mark.supervisor
def test_switched_off_frames_have_two_elements(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIO_COORD_OTEL", "off")
    r = supervise("traced_sync", bundle=BUNDLE, context_carrier=PARENT)
    assert r.final_state == "success", r.events()
    assert all(len(f) == 2 for f in frames(r))


PROBE = """
import sys
{block}
from trio_coord.protocol.messages import StartupDetails
from trio_coord.runtime import serve, telemetry
details = StartupDetails.__new__(StartupDetails)
class TI:
    context_carrier = {carrier!r}
    task_id = "t"; map_index = -1
object.__setattr__(details, "ti", TI())
tracing = telemetry.start(details, {{}})
loaded = [m for m, v in sys.modules.items() if m.startswith("opentelemetry") and v is not None]
print(tracing is not None, sorted(loaded))
"""


def _probe(carrier: Any, *, block: bool) -> str:
    code = PROBE.format(
        carrier=carrier, block='sys.modules["opentelemetry"] = None' if block else ""
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout.strip()


def test_no_opentelemetry_module_is_imported_without_it_or_without_a_carrier() -> None:
    """In a fresh interpreter: the runtime's modules import nothing of OpenTelemetry; a
    carrier with OpenTelemetry importable enables tracing; blocked, it does not."""
    assert _probe(None, block=False) == "False []"
    assert _probe(PARENT, block=True) == "False []"
    enabled, modules = _probe(PARENT, block=False).split(" ", 1)
    assert enabled == "True" and "opentelemetry.trace" in modules
