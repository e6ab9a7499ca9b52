"""Where the file sink's CPU goes, in process, on the request shape of bench/receiver.py: the
whole path per span (`export_request` on the calling thread, then the delivery worker) beside
the part spent in `FileSpanExporter.deliver` (and, within it, the OTLP JSON line), so the
sink's share and the spool's are printed in the same run, for `format: json` and `format:
proto`, with `lines: request` (the receiver's default: each request written at once, no spool)
and `lines: trace` (spooled, one line per finished trace). Then what the sink keeps to write
each span once: memory per span remembered, the time a restart takes to read it back from the
file it wrote, and what a request costs once that window is full (each trace written forgets
the oldest), beside the same requests while it is not.

    .venv/bin/python bench/file_sink.py [--requests 100] [--spans-per-request 256]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from receiver import _fresh, _machine, _request_body

import otel_bridge.file_sink
import otel_bridge.otlp_json
from otel_bridge import otlp
from otel_bridge.file_sink import FileSpanExporter
from otel_bridge.langchain_views import FinishedTrace


class _MeasuredFileSink(FileSpanExporter):
    """The file sink, counting the CPU time of its own thread in `deliver` and in the JSON line."""

    deliver_seconds = 0.0
    json_seconds = 0.0

    def deliver(self, traces: Sequence[FinishedTrace]) -> Any:
        started = time.thread_time()
        try:
            return super().deliver(traces)
        finally:
            type(self).deliver_seconds += time.thread_time() - started


def _count_json_lines() -> None:
    encode = otel_bridge.file_sink.traces_data_json

    def measured(message: Any) -> str:
        started = time.thread_time()
        try:
            return encode(message)
        finally:
            _MeasuredFileSink.json_seconds += time.thread_time() - started

    otel_bridge.file_sink.traces_data_json = measured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--spans-per-request", type=int, default=256)
    args = parser.parse_args()
    _count_json_lines()
    body = _request_body(args.spans_per_request)
    print(f"machine: {_machine()}")
    print(f"load: {args.requests} requests of {args.spans_per_request} spans, in process")
    native = otel_bridge.otlp_json._native_spans_json
    # format: json with each byte walk: the C one (otel_bridge_speedups) when it is installed,
    # and the Python one it stands in for.
    walks = ([("C walk", native)] if native is not None else []) + [("Python walk", None)]
    for lines in ("request", "trace"):
        for file_format, (walk, function) in [
            *(("json", walk) for walk in walks),
            ("proto", ("", None)),
        ]:
            otel_bridge.otlp_json._native_spans_json = function
            requests = [
                ExportTraceServiceRequest.FromString(_fresh(body)) for _ in range(args.requests)
            ]
            _measure(file_format, walk, lines, requests, args.requests * args.spans_per_request)
    otel_bridge.otlp_json._native_spans_json = native
    _measure_full_window(body, 400)
    return 0


def _measure_full_window(body: bytes, count: int) -> None:
    """export_request's CPU per span with `lines: request`, format json, while the window of
    remembered spans is nearly empty and once it is full (filled first with 2-span traces, as
    `serve` fills it after a few seconds of load)."""
    figures = []
    for full in (False, True):
        requests = [ExportTraceServiceRequest.FromString(_fresh(body)) for _ in range(count)]
        with tempfile.TemporaryDirectory(prefix="bench-file-sink-") as scratch:
            sink = FileSpanExporter(Path(scratch) / "out", spool_dir=scratch)
            if full:
                written = sink._written_spans()
                for number in range(sink.remembered_spans // 2):
                    written.add(number, number.to_bytes(16, "big"))
            spans = 0
            started = time.thread_time()
            for request in requests:
                sink.export_request(request)
                spans += otlp.span_count(request)
            figures.append((time.thread_time() - started) / spans * 1e6)
            sink.shutdown()
    print(
        f"lines: request, export_request: {figures[0]:.1f} us/span with the window of remembered"
        f" spans nearly empty, {figures[1]:.1f} us/span once it is full"
        f" ({FileSpanExporter.remembered_spans:,} spans)"
    )


def _measure(
    file_format: str, walk: str, lines: str, requests: list[ExportTraceServiceRequest], spans: int
) -> None:
    _MeasuredFileSink.deliver_seconds = _MeasuredFileSink.json_seconds = 0.0
    with tempfile.TemporaryDirectory(prefix="bench-file-sink-") as scratch:
        path = Path(scratch) / "out"
        sink = _MeasuredFileSink(
            path,
            format=file_format,
            lines=lines,
            spool_dir=scratch,
            grace_period=0.5,
            max_trace_age=3600.0,
        )
        cpu_before, thread_before = time.process_time(), time.thread_time()
        for request in requests:
            sink.export_request(request)
        export_cpu = time.thread_time() - thread_before
        assert sink.force_flush(600_000)
        total = time.process_time() - cpu_before
        remembered = sink._written
        sink.shutdown()
        read_seconds = 0.0
        for again, measure_memory in ((1, False), (2, True)):
            if measure_memory:
                tracemalloc.start()
            restarted = FileSpanExporter(
                path, format=file_format, spool_dir=Path(scratch) / f"again-{again}"
            )
            read_started = time.perf_counter()
            restarted.already_delivered(["0" * 32])  # reads the file back
            read_seconds = read_seconds or time.perf_counter() - read_started
            held = tracemalloc.get_traced_memory()[0]
            tracemalloc.stop()
            restarted.shutdown()
        size = path.stat().st_size

    def per_span(seconds: float) -> str:
        return f"{seconds / spans * 1e6:8.1f} us/span"

    deliver = _MeasuredFileSink.deliver_seconds
    print(f"format: {file_format}{f' ({walk})' if walk else ''}, lines: {lines}")
    print(f"whole durable path, CPU of every thread       {per_span(total)}")
    what = "(write the file)  " if lines == "request" else "(decode, spool)   "
    print(f"  export_request {what}calling th. {per_span(export_cpu)}")
    print(f"  delivery worker: spool (assemble, outbox)   {per_span(total - export_cpu - deliver)}")
    print(
        f"  delivery worker: FileSpanExporter.deliver   {per_span(deliver)}  ({deliver / total:.0%})"
    )
    if file_format == "json":
        print(
            f"    of which the OTLP JSON line (otlp_json.py) {per_span(_MeasuredFileSink.json_seconds)}"
        )
    print(
        f"spans remembered to write each once: {len(remembered or ())}"
        f" (at most {FileSpanExporter.remembered_spans:,}); a restart read them back from the"
        f" {size / 1e6:.0f} MB file in {read_seconds:.2f} s, holding {held / spans:.0f} bytes/span"
    )


if __name__ == "__main__":
    sys.exit(main())
