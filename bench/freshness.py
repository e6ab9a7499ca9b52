"""End-to-end freshness of the drop-in handlers: a trace's end -> the trace visible in the sink.

Every drop-in (`LabelStudioCallbackHandler`, `UpTrainCallbackHandler`, `ClearMLCallbackHandler`,
`SageMakerCallbackHandler`) is a `SinkCallbackHandler`; here that path feeds the file sink, so
"visible" means the trace's line is in the file (no network service: the figure is the bridge's
own delay, to which a sink adds its request time). Beside it, the baseline: the same sink attached
to a handler the generic way (`exporters=[...]`: the SDK's BatchSpanProcessor with its default
5 s schedule, the exporter's default 2 s grace period). Calls are made one at a time (the time to
the next call is the delay being measured), then in a burst of back-to-back calls (batching under
load). Prints p50/p95/max in ms. Usage: `python bench/freshness.py [--calls 20] [--burst 300]`."""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from otel_bridge.file_sink import FileSpanExporter
from otel_bridge.handler import OTelCallbackHandler
from otel_bridge.sink_handler import SinkCallbackHandler, drop_in_exporter_options
from otel_bridge.testing import FakeChatModel

CHAIN = (
    ChatPromptTemplate.from_messages([("human", "{q}")])
    | FakeChatModel(responses=["an answer"])
    | StrOutputParser()
)


def _call(handler: OTelCallbackHandler) -> str:
    """One traced call under a known trace id; returns the id as it appears in OTLP JSON."""
    trace_id = random.getrandbits(128) or 1
    parent = SpanContext(
        trace_id,
        random.getrandbits(64) or 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))
    try:
        CHAIN.invoke({"q": "question"}, {"callbacks": [handler]})
    finally:
        otel_context.detach(token)
    return format(trace_id, "032x")


class _Watcher:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: set[str] = set()
        self._offset = 0

    def _read(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as file:
            file.seek(self._offset)
            chunk = file.read()
        end = chunk.rfind(b"\n") + 1
        self._offset += end
        for line in chunk[:end].decode().splitlines():
            start = line.find('"traceId":"')
            while start != -1:
                self.seen.add(line[start + 11 : start + 43])
                start = line.find('"traceId":"', start + 1)

    def wait_for(self, trace_ids: list[str], timeout: float = 60.0) -> dict[str, float]:
        """Monotonic time at which each id was first seen."""
        found: dict[str, float] = {}
        deadline = time.monotonic() + timeout
        while len(found) < len(trace_ids) and time.monotonic() < deadline:
            self._read()
            now = time.monotonic()
            for trace_id in trace_ids:
                if trace_id not in found and trace_id in self.seen:
                    found[trace_id] = now
            time.sleep(0.002)
        return found


def _measure(
    make: Callable[[Path], OTelCallbackHandler], calls: int, burst: int
) -> tuple[list[float], list[float]]:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "out.jsonl"
        handler = make(path)
        watcher = _Watcher(path)
        single: list[float] = []
        for _ in range(calls):
            trace_id = _call(handler)
            ended = time.monotonic()
            seen = watcher.wait_for([trace_id])
            single.append((seen.get(trace_id, float("inf")) - ended) * 1000)
        ends: dict[str, float] = {}
        for _ in range(burst):
            trace_id = _call(handler)
            ends[trace_id] = time.monotonic()
        seen = watcher.wait_for(list(ends))
        bursty = [(seen.get(t, float("inf")) - ended) * 1000 for t, ended in ends.items()]
        shutdown = getattr(handler, "shutdown", None)
        if shutdown is not None:
            shutdown()
        return single, bursty


def _drop_in(path: Path) -> OTelCallbackHandler:
    exporter = FileSpanExporter(
        path=path, spool_dir=path.parent / "spool", **drop_in_exporter_options("file", None)
    )
    return SinkCallbackHandler(exporter)


def _generic(path: Path) -> OTelCallbackHandler:
    from opentelemetry.sdk.trace import TracerProvider

    exporter = FileSpanExporter(path=path, spool_dir=path.parent / "spool")
    return OTelCallbackHandler(tracer_provider=TracerProvider(), exporters=[exporter])


def _row(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return (
        f"{name:<62}{statistics.median(ordered):>9.0f}{p95:>9.0f}{ordered[-1]:>9.0f}"
        f"{len(values):>7}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--burst", type=int, default=300)
    args = parser.parse_args()
    print("trace end -> visible in the file sink, ms (loopback, one process)")
    print(f"{'path':<62}{'p50':>9}{'p95':>9}{'max':>9}{'n':>7}")
    for name, make, calls, burst in (
        ("drop-in handler (SinkCallbackHandler)", _drop_in, args.calls, args.burst),
        ("baseline: exporters=[...], SDK defaults", _generic, max(args.calls // 4, 3), args.burst),
    ):
        single, bursty = _measure(make, calls, burst)
        print(_row(f"{name}, one call at a time", single))
        print(_row(f"{name}, burst of {burst}", bursty))


if __name__ == "__main__":
    main()
