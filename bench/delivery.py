"""Delivery benchmark: finished traces per second through TraceExporter with a no-op sink, and the
cost of export() per span, beside the SDK's BatchSpanProcessor with a no-op exporter, same run.

    .venv/bin/python bench/delivery.py [--traces 2000] [--spans-per-trace 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_bridge.exporter import TraceExporter
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.sink import DeliveryReport


class NoOpExporter(SpanExporter):
    """The baseline: the SDK's processor with an exporter that does nothing."""

    def __init__(self) -> None:
        self.spans = 0
        self.seconds = 0.0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        started = time.perf_counter()
        self.spans += len(spans)
        self.seconds += time.perf_counter() - started
        return SpanExportResult.SUCCESS


class NoOpSink(TraceExporter):
    sink_name = "bench"

    def __init__(self, **options: Any) -> None:
        self.delivered = 0
        super().__init__(**options)

    def deliver(self, traces: Sequence[FinishedTrace]) -> DeliveryReport:
        self.delivered += len(traces)
        return DeliveryReport.all_delivered(traces)


class TimedExport(SpanExporter):
    """Wraps an exporter to add up the time spent inside export() (on the processor thread)."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.spans = 0
        self.seconds = 0.0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        started = time.perf_counter()
        result = self.inner.export(spans)
        self.seconds += time.perf_counter() - started
        self.spans += len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(
                line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    return (
        f"{platform.platform()} | {model} | {os.cpu_count()} CPUs | Python"
        f" {platform.python_version()} | opentelemetry-sdk {version('opentelemetry-sdk')} |"
        f" SQLite {sqlite3.sqlite_version}"
    )


def make_traces(count: int, spans_per_trace: int) -> list[list[ReadableSpan]]:
    """Finished spans of `count` traces, each a root with spans_per_trace - 1 children."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    for _ in range(count):
        with tracer.start_as_current_span("chain", attributes={"langchain.run.type": "chain"}):
            for index in range(spans_per_trace - 1):
                with tracer.start_as_current_span(
                    f"step-{index}", attributes={"langchain.input": '"x"' * 50}
                ):
                    pass
    by_trace: dict[int, list[ReadableSpan]] = {}
    for span in memory.get_finished_spans():
        by_trace.setdefault(span.context.trace_id, []).append(span)
    return list(by_trace.values())


def app_thread_cost(
    exporter: SpanExporter, traces: int, spans_per_trace: int
) -> tuple[float, float]:
    """ns per span spent on the app's thread creating and ending spans behind a
    BatchSpanProcessor(exporter); returns (ns/span, seconds until everything was exported)."""
    provider = TracerProvider()
    processor = BatchSpanProcessor(exporter, max_queue_size=traces * spans_per_trace + 1)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")
    started = time.perf_counter()
    for _ in range(traces):
        with tracer.start_as_current_span("chain"):
            for index in range(spans_per_trace - 1):
                with tracer.start_as_current_span(f"step-{index}"):
                    pass
    app_seconds = time.perf_counter() - started
    provider.force_flush(600_000)
    exporter.force_flush(600_000)
    total = time.perf_counter() - started
    provider.shutdown()
    return app_seconds / (traces * spans_per_trace) * 1e9, total


def export_throughput(
    traces: list[list[ReadableSpan]], batch: int, spool_dir: str
) -> tuple[float, float, float, float]:
    """Feed pre-made spans to export() in processor-sized batches until every trace is
    delivered, while the worker assembles and delivers; returns (finished traces/s, export()
    us/span of wall time on the calling thread, of that thread's CPU time, seconds). The wall
    time includes waiting for the GIL while the worker runs; the CPU time is export()'s own."""
    sink = NoOpSink(spool_dir=spool_dir, grace_period=0.0)
    spans = [span for trace in traces for span in trace]
    export_seconds = export_cpu = 0.0
    started = time.perf_counter()
    for offset in range(0, len(spans), batch):
        before, before_cpu = time.perf_counter(), time.thread_time()
        sink.export(spans[offset : offset + batch])
        export_seconds += time.perf_counter() - before
        export_cpu += time.thread_time() - before_cpu
    sink.force_flush(600_000)
    elapsed = time.perf_counter() - started
    assert sink.delivered == len(traces), (sink.delivered, len(traces))
    sink.shutdown()
    per_span = 1e6 / len(spans)
    return len(traces) / elapsed, export_seconds * per_span, export_cpu * per_span, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--traces", type=int, default=2000)
    parser.add_argument("--spans-per-trace", type=int, default=5)
    parser.add_argument("--batch", type=int, default=512, help="spans per export() call")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    print(f"machine: {machine()}")
    print(
        f"workload: {args.traces} traces x {args.spans_per_trace} spans,"
        f" export batches of {args.batch} spans, median of {args.repeat} runs\n"
    )
    traces = make_traces(args.traces, args.spans_per_trace)
    spans = args.traces * args.spans_per_trace

    ours_rate, ours_cost, ours_cpu, baseline_rate, baseline_cost = [], [], [], [], []
    ours_app, baseline_app, ours_pipeline = [], [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as spool_dir:
            rate, cost, cpu, _ = export_throughput(traces, args.batch, spool_dir)
            ours_rate.append(rate)
            ours_cost.append(cost)
            ours_cpu.append(cpu)

            sink = NoOpSink(spool_dir=spool_dir, spool_name="app", grace_period=0.0)
            timed_ours = TimedExport(sink)
            app_ns, seconds = app_thread_cost(timed_ours, args.traces, args.spans_per_trace)
            assert sink.delivered == args.traces, (sink.delivered, args.traces)
            ours_app.append(app_ns)
            ours_pipeline.append(args.traces / seconds)
            timed_ours.shutdown()

        noop = NoOpExporter()
        timed_noop = TimedExport(noop)
        app_ns, seconds = app_thread_cost(timed_noop, args.traces, args.spans_per_trace)
        baseline_app.append(app_ns)
        baseline_rate.append(args.traces / seconds)
        baseline_cost.append(timed_noop.seconds / max(1, timed_noop.spans) * 1e6)

    median = statistics.median
    rows = [
        (
            "traces/s, app spans -> processor -> exporter",
            f"{median(ours_pipeline):,.0f} delivered",
            f"{median(baseline_rate):,.0f} exported",
        ),
        ("traces/s, export() -> deliver(), spans ready", f"{median(ours_rate):,.0f}", "n/a"),
        (
            "export() cost per span (processor thread)",
            f"{median(ours_cost):.1f} us",
            f"{median(baseline_cost):.2f} us",
        ),
        (
            "  of which the processor thread's own CPU",
            f"{median(ours_cpu):.1f} us",
            "n/a",
        ),
        (
            "app thread: start+end one span",
            f"{median(ours_app) / 1000:.2f} us",
            f"{median(baseline_app) / 1000:.2f} us",
        ),
    ]
    print(f"{'':44}{'TraceExporter (no-op sink)':>28}{'BatchSpanProcessor + no-op':>30}")
    for label, ours, baseline in rows:
        print(f"{label:44}{ours:>28}{baseline:>30}")
    print(
        f"\n{spans} spans per run. Both pipelines are a TracerProvider + BatchSpanProcessor; the"
        " baseline's exporter does nothing, ours persists every span to SQLite (WAL) before"
        " export() returns, then assembles finished traces and calls the sink's deliver()."
        f" Load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs."
    )


if __name__ == "__main__":
    main()
