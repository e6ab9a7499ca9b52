"""An application sending traces to a Collector over OTLP/gRPC, for the Collector tests.

In process, `make_traces` + `export_each` send traces one request each and say which the
Collector acknowledged. As its own process (`python -m tests.support.collector_app ...`) it is an
ordinary OpenTelemetry app: a TracerProvider with a BatchSpanProcessor and the OTLP exporter.
It sends `--traces` traces in two halves (waiting for the file `--resume-after` to exist
in between, so a test can act mid-run) and writes the ids of every span the Collector
acknowledged to `--report` as JSON: {"acknowledged": {trace id hex: [span id hex, ...]},
"failed_exports": n}.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

Trace = list[ReadableSpan]


def add_trace(tracer: Tracer, number: int, padding: int = 0) -> None:
    """A chain with 1-3 LLM calls, the last one with a tool call under it (2-4 spans); the root
    carries `padding` bytes of filler when asked."""
    attributes: dict[str, str | int] = {"langchain.run.type": "chain", "test.trace_number": number}
    if padding:
        attributes["test.padding"] = "x" * padding
    with tracer.start_as_current_span("chain", attributes=attributes):
        for call in range(1 + number % 3):
            with tracer.start_as_current_span("llm", attributes={"langchain.run.type": "llm"}):
                if call == number % 3:
                    with tracer.start_as_current_span(
                        "tool", attributes={"langchain.run.type": "tool"}
                    ):
                        pass


def make_traces(count: int, service: str = "collector-test", padding: int = 0) -> list[Trace]:
    """`count` traces made by the SDK, each a list of its finished spans."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("otel-bridge.tests.collector")
    for number in range(count):
        add_trace(tracer, number, padding)
    provider.shutdown()
    return group_by_trace(memory.get_finished_spans())


def group_by_trace(spans: Sequence[ReadableSpan]) -> list[Trace]:
    by_trace: dict[int, Trace] = {}
    for span in spans:
        assert span.context is not None
        by_trace.setdefault(span.context.trace_id, []).append(span)
    return list(by_trace.values())


def export_each(grpc_port: int, traces: Sequence[Trace]) -> None:
    """One OTLP request per trace; fails unless the Collector acknowledged every one."""
    exporter = OTLPSpanExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True)
    try:
        for spans in traces:
            assert exporter.export(spans) is SpanExportResult.SUCCESS, "the Collector refused"
    finally:
        exporter.shutdown()


def trace_id(trace: Trace) -> int:
    assert trace[0].context is not None
    return trace[0].context.trace_id


def span_ids(trace: Trace) -> set[int]:
    return {span.context.span_id for span in trace if span.context is not None}


class _RecordingExporter(SpanExporter):
    """The OTLP exporter, remembering which spans the Collector acknowledged."""

    def __init__(self, delegate: SpanExporter) -> None:
        self._delegate = delegate
        self._lock = threading.Lock()
        self.acknowledged: dict[str, list[str]] = {}
        self.failed_exports = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self._delegate.export(spans)
        with self._lock:
            if result is SpanExportResult.SUCCESS:
                for span in spans:
                    assert span.context is not None
                    self.acknowledged.setdefault(f"{span.context.trace_id:032x}", []).append(
                        f"{span.context.span_id:016x}"
                    )
            else:
                self.failed_exports += 1
        return result

    def shutdown(self) -> None:
        self._delegate.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._delegate.force_flush(timeout_millis)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoint", required=True, help="the Collector's OTLP/gRPC host:port")
    parser.add_argument("--traces", type=int, required=True)
    parser.add_argument("--service", default="collector-test-app")
    parser.add_argument("--resume-after", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    args = parser.parse_args()

    exporter = _RecordingExporter(OTLPSpanExporter(endpoint=args.endpoint, insecure=True))
    provider = TracerProvider(resource=Resource.create({"service.name": args.service}))
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=100))
    tracer = provider.get_tracer("otel-bridge.tests.collector")
    half = args.traces // 2
    for number in range(half):
        add_trace(tracer, number)
    provider.force_flush()
    while not args.resume_after.exists():
        time.sleep(0.05)
    for number in range(half, args.traces):
        add_trace(tracer, number)
    provider.shutdown()
    report = {"acknowledged": exporter.acknowledged, "failed_exports": exporter.failed_exports}
    args.report.write_text(json.dumps(report), encoding="utf-8")


if __name__ == "__main__":
    main()
