"""Tasks traced with OpenTelemetry, for the real-supervisor tests of trace propagation.

With ``TRIO_COORD_TEST_SPANS`` set, the bundle installs an SDK tracer provider whose
exporter appends each finished span to that file as a JSON line (the test reads them).
"""

from __future__ import annotations

import json
import os

import trio_coord

bundle = trio_coord.Bundle("otel", version="1.0.0")
d1 = bundle.dag("d1")

_SPANS = os.environ.get("TRIO_COORD_TEST_SPANS")
if _SPANS:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class _FileExporter(SpanExporter):
        def export(self, spans):  # type: ignore[no-untyped-def]
            with open(_SPANS, "a", encoding="utf-8") as f:
                for s in spans:
                    f.write(
                        json.dumps(
                            {
                                "name": s.name,
                                "trace_id": f"{s.context.trace_id:032x}",
                                "span_id": f"{s.context.span_id:016x}",
                                "parent": None if s.parent is None else f"{s.parent.span_id:016x}",
                                "attributes": dict(s.attributes or {}),
                            }
                        )
                        + "\n"
                    )
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_FileExporter()))
    trace.set_tracer_provider(provider)


@d1.task
async def traced(client):
    await client.get_variable("outer", default=None)
    from opentelemetry import trace

    with trace.get_tracer("test").start_as_current_span("inner"):
        await client.get_variable("inner", default=None)
    return 1


@d1.task
def traced_sync(client):
    client.get_variable("from_thread", default=None)
    return 2
