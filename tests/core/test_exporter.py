"""TraceExporter wiring: settings precedence, spool bounds seen from export(), filtering,
several exporters of one sink in a process, and the handler feeding it through the SDK."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

from otel_bridge.delivery import FakeClock
from otel_bridge.exporter import TraceExporter, default_spool_dir
from otel_bridge.handler import OTelCallbackHandler
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.otlp_wire import encode_readable
from otel_bridge.sink import DeliveryReport, RetryableError
from tests import chains, contract
from tests.contract import make_spans
from tests.support.recording import metric_points


class MemorySink(contract.MemorySink):
    sink_name = "memtest"


class RootNameFilter(MemorySink):
    def accepts(self, trace: FinishedTrace) -> bool:
        return trace.root.name != "skip-me"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in (
        "OTEL_BRIDGE_SPOOL_DIR",
        "OTEL_BRIDGE_MEMTEST_SPOOL_DIR",
        "OTEL_BRIDGE_GRACE_PERIOD",
        "OTEL_BRIDGE_MEMTEST_GRACE_PERIOD",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return monkeypatch


def test_spool_dir_precedence(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, exporters: list[TraceExporter]
) -> None:
    default = MemorySink()
    exporters.append(default)
    assert default.spool.path == tmp_path / "cache" / "otel-bridge" / "spool" / "memtest.sqlite3"
    default.shutdown()

    clean_env.setenv("OTEL_BRIDGE_SPOOL_DIR", str(tmp_path / "generic"))
    assert default_spool_dir() == tmp_path / "generic"
    generic = MemorySink()
    exporters.append(generic)
    assert generic.spool.path.parent == tmp_path / "generic"
    generic.shutdown()

    clean_env.setenv("OTEL_BRIDGE_MEMTEST_SPOOL_DIR", str(tmp_path / "specific"))
    specific = MemorySink()
    exporters.append(specific)
    assert specific.spool.path.parent == tmp_path / "specific"
    specific.shutdown()

    argument = MemorySink(spool_dir=tmp_path / "argument", spool_name="custom")
    exporters.append(argument)
    assert argument.spool.path == tmp_path / "argument" / "custom.sqlite3"


def test_grace_period_precedence_and_bad_values(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, exporters: list[TraceExporter]
) -> None:
    clean_env.setenv("OTEL_BRIDGE_GRACE_PERIOD", "3")
    clean_env.setenv("OTEL_BRIDGE_MEMTEST_GRACE_PERIOD", "4")
    exporters.append(MemorySink(spool_dir=tmp_path / "a"))
    assert exporters[-1].grace_period == 4.0
    exporters.append(MemorySink(spool_dir=tmp_path / "b", grace_period=5.0))
    assert exporters[-1].grace_period == 5.0
    clean_env.delenv("OTEL_BRIDGE_MEMTEST_GRACE_PERIOD")
    exporters.append(MemorySink(spool_dir=tmp_path / "c"))
    assert exporters[-1].grace_period == 3.0
    clean_env.setenv("OTEL_BRIDGE_GRACE_PERIOD", "soon")
    with pytest.raises(ValueError, match="OTEL_BRIDGE_GRACE_PERIOD='soon'"):
        MemorySink(spool_dir=tmp_path / "d")
    with pytest.raises(ValueError, match="when_full"):
        MemorySink(spool_dir=tmp_path / "e", grace_period=1.0, when_full="drop_everything")  # type: ignore[arg-type]


def test_a_full_spool_rejects_logs_counts_and_reports_full(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, exporters: list[TraceExporter]
) -> None:
    reader = InMemoryMetricReader()
    first = make_spans()
    exporter = MemorySink(
        spool_dir=tmp_path,
        clock=FakeClock(),
        max_spool_bytes=sum(len(encode_readable(span)) for span in first) + 1,
        meter_provider=MeterProvider(metric_readers=[reader]),
    )
    exporters.append(exporter)
    assert exporter.export(first) is SpanExportResult.SUCCESS
    with caplog.at_level(logging.WARNING, logger="otel_bridge.exporter"):
        assert exporter.export(make_spans()) is SpanExportResult.FAILURE
    assert exporter.spool_full
    assert "spool full" in caplog.text and "rejected 3 span(s)" in caplog.text
    dropped = [
        (point.attributes["otel_bridge.reason"], point.value)
        for point in metric_points(reader, "otel_bridge.delivery.dropped")
    ]
    assert dropped == [("spool_full", 3)]
    assert exporter.force_flush(10_000)
    assert not exporter.spool_full
    assert [t.trace_id for t in exporter.delivered] == [first[0].context.trace_id]  # type: ignore[attr-defined]


def _records(spans: list[Any]) -> list[Any]:
    from otel_bridge.trace_tree import SpanRecord

    return [SpanRecord.from_readable(span) for span in spans]


def test_accepts_filters_traces(tmp_path: Path, exporters: list[TraceExporter]) -> None:
    exporter = RootNameFilter(spool_dir=tmp_path)
    exporters.append(exporter)
    kept, skipped = make_spans(("keep-me", "child")), make_spans(("skip-me", "child"))
    exporter.export(kept + skipped)
    assert exporter.force_flush(10_000)
    assert [t.root.name for t in exporter.delivered] == ["keep-me"]
    assert exporter.spool.counts().outbox == 0


def test_two_exporters_of_one_sink_in_one_process_get_their_own_spools(
    tmp_path: Path, exporters: list[TraceExporter]
) -> None:
    first, second = MemorySink(spool_dir=tmp_path), MemorySink(spool_dir=tmp_path)
    exporters.extend([first, second])
    assert first.spool.path != second.spool.path
    first.export(make_spans())
    second.export(make_spans())
    assert first.force_flush(10_000) and second.force_flush(10_000)
    assert len(first.delivered) == len(second.delivered) == 1


def test_grace_then_max_age_on_a_fake_clock(tmp_path: Path, exporters: list[TraceExporter]) -> None:
    clock = FakeClock()
    exporter = MemorySink(spool_dir=tmp_path, clock=clock, grace_period=2.0, max_trace_age=60.0)
    exporters.append(exporter)
    grandchild, child, root = make_spans()
    exporter.export([grandchild])
    exporter.export([root])
    clock.advance(1.0)
    exporter.export([child])  # late but inside the grace period
    clock.advance(1.0)
    from tests.support.waiting import wait_until

    wait_until(lambda: len(exporter.delivered) == 1)
    assert len(exporter.delivered[0].spans) == 3 and not exporter.delivered[0].partial

    _, orphan, _ = make_spans()
    exporter.export([orphan])
    clock.advance(59.0)
    assert exporter.spool.counts().pending_traces == 1
    clock.advance(1.0)
    wait_until(lambda: len(exporter.delivered) == 2)
    assert exporter.delivered[1].partial


def test_the_handler_feeds_the_exporter_through_a_batch_span_processor(
    tmp_path: Path, exporters: list[TraceExporter]
) -> None:
    """Real chain (fake LLM API), real handler, real BatchSpanProcessor, the exporter."""
    exporter = MemorySink(spool_dir=tmp_path)
    exporters.append(exporter)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    handler = OTelCallbackHandler(tracer_provider=provider)
    answer = chains.rag_chain().invoke(chains.QUESTION, {"callbacks": [handler]})
    assert answer == chains.RAG_ANSWER
    provider.force_flush()
    assert exporter.force_flush(10_000)
    (trace,) = exporter.delivered
    assert (trace.root_input(), trace.root_output()) == (chains.QUESTION, chains.RAG_ANSWER)
    assert trace.llm_calls()[0].model == "fake-rag-model"


def test_shutdown_delivers_finished_traces_without_waiting_for_grace(tmp_path: Path) -> None:
    exporter = MemorySink(spool_dir=tmp_path, grace_period=60.0)
    spans = make_spans()
    _, child, _ = make_spans()  # a trace whose root never ended stays in the spool
    exporter.export([*spans, child])
    exporter.shutdown()
    assert [t.trace_id for t in exporter.delivered] == [spans[0].context.trace_id]
    reopened = MemorySink(spool_dir=tmp_path, grace_period=60.0)
    try:
        assert reopened.spool.counts().pending_spans == 1
    finally:
        reopened.shutdown()


class DownSink(MemorySink):
    def deliver(self, traces: Sequence[FinishedTrace]) -> DeliveryReport:
        raise RetryableError("service unavailable")


def test_shutdown_with_a_down_sink_tries_once_and_keeps_the_rest(tmp_path: Path) -> None:
    import threading

    exporter = DownSink(spool_dir=tmp_path, shutdown_timeout=600.0)
    exporter.export(make_spans())
    stopper = threading.Thread(target=exporter.shutdown)
    stopper.start()
    stopper.join(30)
    assert not stopper.is_alive(), "shutdown waited for a sink that is down"
    reopened = MemorySink(spool_dir=tmp_path)
    try:
        assert reopened.force_flush(10_000)
        assert len(reopened.delivered) == 1
    finally:
        reopened.shutdown()


def test_a_restart_with_fewer_exporters_takes_over_the_extra_spools(tmp_path: Path) -> None:
    first = DownSink(spool_dir=tmp_path, shutdown_timeout=1.0)
    second = DownSink(spool_dir=tmp_path, shutdown_timeout=1.0)
    assert second.spool.path.name == "memtest.1.sqlite3"
    finished, unfinished = make_spans(), make_spans()
    second.export(finished)
    second.export(unfinished[:2])  # its root has not ended
    assert second.force_flush(300) is False
    second.export([unfinished[2]])
    first.shutdown()
    second.shutdown()

    only = MemorySink(spool_dir=tmp_path)
    try:
        assert only.spool.path.name == "memtest.sqlite3"
        assert not (tmp_path / "memtest.1.sqlite3").exists()
        assert only.force_flush(10_000)
        assert sorted(t.trace_id for t in only.delivered) == sorted(
            [finished[0].context.trace_id, unfinished[0].context.trace_id]
        )
        assert all(len(t.spans) == 3 for t in only.delivered)
    finally:
        only.shutdown()


class MixedSink(MemorySink):
    """Reports per trace by root name: ok, retry (once), reject."""

    def __init__(self, **options: Any) -> None:
        self.calls: list[list[str]] = []
        self.checked: list[list[str]] = []
        self.retried: set[int] = set()
        super().__init__(**options)

    def deliver(self, traces: Sequence[FinishedTrace]) -> DeliveryReport:
        self.calls.append(sorted(t.root.name for t in traces))
        delivered, retryable, permanent = set(), {}, {}
        for trace in traces:
            key = format(trace.trace_id, "032x")
            if trace.root.name == "reject":
                permanent[key] = "schema mismatch"
            elif trace.root.name == "retry" and trace.trace_id not in self.retried:
                self.retried.add(trace.trace_id)
                retryable[key] = "busy"
            else:
                delivered.add(key)
                self.delivered.append(trace)
        return DeliveryReport(frozenset(delivered), retryable, permanent, retry_after=5.0)

    def already_delivered(self, keys: Sequence[str]) -> set[str]:
        self.checked.append(sorted(keys))
        return set()


def test_a_mixed_report_is_applied_per_trace(tmp_path: Path) -> None:
    from tests.support.waiting import wait_until

    clock = FakeClock()
    exporter = MixedSink(spool_dir=tmp_path, clock=clock, grace_period=1.0)
    try:
        ok, retry, reject = (make_spans((name, "child")) for name in ("ok", "retry", "reject"))
        exporter.export(ok + retry + reject)
        clock.advance(1.0)
        wait_until(lambda: exporter.spool.counts().dead_letters == 1)
        assert exporter.calls == [["ok", "reject", "retry"]]
        assert [t.root.name for t in exporter.delivered] == ["ok"]
        (dead,) = exporter.spool.dead_letters()
        assert dead.reason == "schema mismatch"
        wait_until(lambda: exporter.spool.due(clock.now(), 10) == [])
        assert len(exporter.spool.due(clock.now() + 5.0, 10)) == 1  # Retry-After: 5
        clock.advance(5.0)
        wait_until(lambda: len(exporter.delivered) == 2)
        assert exporter.calls[-1] == ["retry"]
        assert exporter.checked == [[format(retry[0].context.trace_id, "032x")]]
    finally:
        exporter.shutdown()


class BrokenSink(MemorySink):
    def deliver(self, traces: Sequence[FinishedTrace]) -> DeliveryReport:
        self.delivered.extend(traces)
        return None  # type: ignore[return-value]


def test_a_sink_breaking_the_deliver_contract_is_retried_with_backoff(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.support.waiting import wait_until

    clock = FakeClock()
    exporter = BrokenSink(spool_dir=tmp_path, clock=clock, grace_period=1.0)
    try:
        exporter.export(make_spans())
        clock.advance(1.0)
        wait_until(lambda: exporter.delivered and exporter.spool.due(clock.now(), 10) == [])
        assert exporter.spool.counts().outbox == 1
        assert "not a DeliveryReport" in caplog.text
        assert len(exporter.delivered) == 1
    finally:
        exporter.shutdown()
