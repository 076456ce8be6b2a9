"""OpenTelemetry trace context: the task's span, and the carrier on each request.

Airflow hands the try a W3C trace context (``StartupDetails.ti.context_carrier``: a
``traceparent`` and maybe a ``tracestate``) when its tracing is on. The runtime then runs
the task in a span whose parent is that context, as Airflow's own runner does, so spans
the task makes hang under the task instance's trace; and every request sent while the span
is current carries the W3C carrier as the frame's third element (``[id, body, carrier]``),
which the supervisor attaches while it calls the API server for that request.

OpenTelemetry is optional (the ``otel`` extra). It is imported only when the try came with
a carrier *and* ``opentelemetry`` can be found: a try without a carrier, or an installation
without the package, imports nothing of it and sends two-element frames, as before.
``TRIO_COORD_OTEL=off`` turns it off whatever Airflow sends. The span goes to the global
tracer provider, which the deployment configures (an SDK provider with an exporter);
with none, the span records nothing but still links the requests to Airflow's trace.

W3C trace context is used explicitly, not the globally configured propagators: it is the
format of both ends of the protocol.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, Final

from ..protocol.messages import Inbound, Request, StartupDetails

__all__ = ["OTEL_ENV", "TaskTracing", "start"]

#: ``off`` (or ``0``/``false``/``no``) disables trace propagation.
OTEL_ENV: Final = "TRIO_COORD_OTEL"
_OFF: Final = frozenset({"off", "0", "false", "no"})
#: The tracer's instrumentation scope name.
TRACER_NAME: Final = "trio_coord"

log = logging.getLogger("trio_coord.runtime")

Send = Callable[..., Awaitable[Inbound | None]]


def _parent_carrier(details: StartupDetails) -> dict[str, str] | None:
    carrier = details.ti.context_carrier
    if not isinstance(carrier, Mapping):
        return None
    out = {k: v for k, v in carrier.items() if isinstance(k, str) and isinstance(v, str)}
    return out if out.get("traceparent") else None


def _installed() -> bool:
    try:
        return importlib.util.find_spec("opentelemetry") is not None
    except (ImportError, ValueError):
        return False


class TaskTracing:
    """The span of one try and the carrier its requests send."""

    def __init__(self, details: StartupDetails, parent: dict[str, str]) -> None:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._trace = trace
        self._propagator = TraceContextTextMapPropagator()
        self._parent = self._propagator.extract(parent)
        self._details = details
        self._span: Any = None
        self._carrier: dict[str, str] | None = None

    def span_name(self) -> str:
        ti = self._details.ti
        index = ti.map_index if ti.map_index is not None else -1
        return f"worker.{ti.task_id}" + (f"[{index}]" if index >= 0 else "")

    @contextlib.contextmanager
    def task_span(self) -> Iterator[None]:
        """Make the task's span current for the code run inside (Trio tasks and worker
        threads started inside inherit it with the context)."""
        ti = self._details.ti
        tracer = self._trace.get_tracer(TRACER_NAME)
        with tracer.start_as_current_span(
            self.span_name(), context=self._parent, record_exception=False
        ) as span:
            span.set_attributes(
                {
                    "airflow.dag_id": ti.dag_id,
                    "airflow.task_id": ti.task_id,
                    "airflow.dag_run.run_id": ti.run_id,
                    "airflow.task_instance.try_number": ti.try_number,
                    "airflow.task_instance.map_index": -1 if ti.map_index is None else ti.map_index,
                }
            )
            self._span = span
            self._carrier = self._inject()
            try:
                yield
            finally:
                self._span = None

    def _inject(self) -> dict[str, str] | None:
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier)
        return carrier or None

    def carrier(self) -> dict[str, str] | None:
        """The W3C carrier of the current span: a span the task started, else the task's
        own (a worker thread's callback may not see the task's context); None outside the
        task's span."""
        if self._span is None:
            return None
        current = self._trace.get_current_span()
        if current.get_span_context().is_valid and current is not self._span:
            return self._inject()
        return self._carrier

    def task_carrier(self) -> dict[str, str] | None:
        """The task span's carrier (for the terminal message, sent once the span ended)."""
        return self._carrier

    def wrap(self, send: Send) -> Send:
        """``send`` that adds the carrier to every request sent inside the task's span."""

        async def traced(msg: Request) -> Inbound | None:
            return await send(msg, carrier=self.carrier())

        return traced


def start(details: StartupDetails, environ: Mapping[str, str] = os.environ) -> TaskTracing | None:
    """The tracing of this try, or None: no parent carrier, switched off, or OpenTelemetry
    not installed (nothing of it imported then)."""
    if environ.get(OTEL_ENV, "").strip().lower() in _OFF:
        return None
    parent = _parent_carrier(details)
    if parent is None or not _installed():
        return None
    try:
        return TaskTracing(details, parent)
    except ImportError as exc:  # a partial installation: run untraced, and say so
        log.warning("OpenTelemetry is installed but cannot be used (%s); not tracing", exc)
        return None
