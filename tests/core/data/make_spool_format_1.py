"""Writes a spool with otel-bridge 0.1.0's code (spool format 1): pending spans with and without
their root, queued traces (one attempted), a dead letter, a resend window. Run with that release
on the path, then dump the file (sqlite3 iterdump) to spool_format_1.sql:

    PYTHONPATH=<0.1.0 checkout> python tests/core/data/make_spool_format_1.py /tmp/v1.sqlite3
"""

# ruff: noqa: I001 -- it imports 0.1.0's otel_bridge.traces, which is not in this tree
import json
import sys
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_bridge.spool import Spool
from otel_bridge.traces import SpanRecord

NOW = 1_700_000_000.0
memory = InMemorySpanExporter()
provider = TracerProvider(
    resource=Resource({"service.name": "upgrade-app", "deployment.environment": "test"})
)
provider.add_span_processor(SimpleSpanProcessor(memory))
tracer = provider.get_tracer("otel-bridge.upgrade", "1.0")
other = provider.get_tracer("other.scope")


def trace(label: str, with_error: bool = False) -> list[SpanRecord]:
    attributes = {
        "langchain.run.type": "chain",
        "langchain.input": '{"question": "why ' + label + '?"}',
        "n": 3,
        "ratio": 0.5,
        "ok": True,
        "tags": ("a", "b"),
    }
    model = {"gen_ai.request.model": "fake", "gen_ai.usage.input_tokens": 12}
    with tracer.start_as_current_span(f"{label}-root", kind=SpanKind.SERVER, attributes=attributes):
        from opentelemetry import trace as api

        api.get_current_span().add_event("langchain.run.event", {"data": "payload é"})
        with (
            tracer.start_as_current_span(f"{label}-llm", kind=SpanKind.CLIENT, attributes=model),
            other.start_as_current_span(f"{label}-inner") as inner,
        ):
            if with_error:
                inner.set_status(Status(StatusCode.ERROR, "boom"))
    spans = [SpanRecord.from_readable(span) for span in memory.get_finished_spans()]
    memory.clear()
    return spans


def root_name(payload: str) -> str:
    return next(s["name"] for s in json.loads(payload)["spans"] if s["name"].endswith("-root"))


spool = Spool(
    Path(sys.argv[1]),
    max_bytes=10_000_000,
    max_traces=1000,
    max_spans_per_trace=1000,
    destination={"project": "upgrade"},
)
spool.add(trace("queued") + trace("attempted") + trace("dead", with_error=True), NOW)
spool.assemble_ready(NOW + 10, grace_period=2, max_trace_age=300)
by_root = {root_name(item.payload): item for item in spool.due(NOW + 10, 10)}
spool.mark_attempted([by_root["attempted-root"].id, by_root["dead-root"].id], NOW + 11)
spool.reschedule(by_root["attempted-root"].id, NOW + 40, "HTTP 503")
spool.dead_letter(by_root["dead-root"].id, "HTTP 400: bad request", NOW + 12)
complete = trace("pending")  # root arrived, grace not over
rootless = [r for r in trace("rootless") if not r.is_local_root]  # its root never came
spool.add(complete + rootless, NOW + 20)
spool.close()
