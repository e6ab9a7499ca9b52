"""The SpanExporter contract every sink exporter must keep, as a base class of tests.

A sink subclasses `ExporterContract` in exporters/<sink>/tests/test_contract.py and overrides
the `make_exporter` fixture with a factory building its exporter against its real service:

    class TestLabelStudioContract(ExporterContract):
        @pytest.fixture
        def make_exporter(self, label_studio_url) -> MakeExporter:
            def make(**options: Any) -> TraceExporter:
                return LabelStudioSpanExporter(url=label_studio_url, **options)
            return make

The factory must forward `**options` (spool_dir, grace_period, ...) to `TraceExporter.__init__`.
The suite watches delivery by wrapping the exporter's own `deliver` (the real one still runs).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import pytest
from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_bridge.exporter import TraceExporter
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.sink import DeliveryReport, RetryableError
from tests.support.forking import held_by_another_thread
from tests.support.recording import recording_provider
from tests.support.waiting import wait_until


class MemorySink(TraceExporter):
    """A sink that keeps every trace it is handed, in delivery order."""

    sink_name = "memory"

    def __init__(self, **options: Any) -> None:
        self.delivered: list[FinishedTrace] = []
        super().__init__(**options)

    def deliver(self, traces: Sequence[FinishedTrace]) -> DeliveryReport:
        self.delivered.extend(traces)
        return DeliveryReport.all_delivered(traces)


class SwitchableSink(MemorySink):
    """A `MemorySink` that fails every delivery, like a server that is down, while `down`."""

    def __init__(self, *, down: bool = False, **options: Any) -> None:
        self.down = down
        super().__init__(**options)

    def deliver(self, traces: Sequence[FinishedTrace]) -> DeliveryReport:
        if self.down:
            raise RetryableError("connection refused by the review server")
        return super().deliver(traces)


class MakeExporter(Protocol):
    def __call__(self, **options: Any) -> TraceExporter: ...


class DeliverySpy:
    """Records every batch the exporter's worker hands to `deliver`, then calls the real one.
    `block()` makes `deliver` wait until `release()` (a sink that hangs)."""

    def __init__(self, exporter: TraceExporter) -> None:
        self.batches: list[list[FinishedTrace]] = []
        self.threads: set[int] = set()
        self._real = exporter.deliver
        self._open = threading.Event()
        self._open.set()
        self.entered = threading.Event()
        self.fail_with: Exception | None = None
        exporter.deliver = self._deliver  # type: ignore[method-assign]

    def block(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    @property
    def traces(self) -> list[FinishedTrace]:
        return [trace for batch in self.batches for trace in batch]

    def _deliver(self, traces: Sequence[FinishedTrace]) -> DeliveryReport:
        self.threads.add(threading.get_ident())
        self.entered.set()
        self._open.wait()
        if self.fail_with is not None:
            raise self.fail_with
        self.batches.append(list(traces))
        return self._real(traces)


def make_spans(names: Sequence[str] = ("root", "child", "grandchild")) -> list[ReadableSpan]:
    """Real finished SDK spans of one trace, nested in `names` order (children end first)."""
    provider, memory = recording_provider()
    tracer = provider.get_tracer("otel-bridge.contract")

    def nest(remaining: Sequence[str]) -> None:
        if not remaining:
            return
        with tracer.start_as_current_span(remaining[0], attributes={"contract.name": remaining[0]}):
            nest(remaining[1:])

    nest(names)
    provider.shutdown()
    return list(memory.get_finished_spans())


class _GarbageSpan:
    """Quacks like a ReadableSpan badly: no context, nonsense everywhere."""

    name = 42
    context = None
    parent = "not a context"
    attributes = {"x": object()}


class ExporterContract:
    """Subclass and override `make_exporter`; every test below then runs against the sink."""

    @pytest.fixture
    def make_exporter(self) -> MakeExporter:
        raise NotImplementedError("override the make_exporter fixture in the sink's test class")

    @pytest.fixture
    def spool_dir(self, tmp_path: Path) -> Path:
        return tmp_path / "spool"

    @pytest.fixture
    def exporter(self, make_exporter: MakeExporter, spool_dir: Path) -> Iterator[TraceExporter]:
        exporter = make_exporter(spool_dir=spool_dir, grace_period=30.0)
        yield exporter
        exporter.shutdown()

    # --- export -----------------------------------------------------------------------------

    def test_export_never_raises_even_with_garbage(self, exporter: TraceExporter) -> None:
        spy = DeliverySpy(exporter)
        good = make_spans(("root",))
        garbage: list[Any] = [_GarbageSpan(), object(), None, *good]
        result = exporter.export(garbage)
        assert isinstance(result, SpanExportResult)
        assert exporter.export(None) is SpanExportResult.FAILURE  # type: ignore[arg-type]
        assert exporter.force_flush(20_000)
        assert [t.trace_id for t in spy.traces] == [good[0].context.trace_id]

    def test_export_after_shutdown_fails(self, exporter: TraceExporter) -> None:
        exporter.shutdown()
        assert exporter.export(make_spans()) is SpanExportResult.FAILURE

    def test_shutdown_is_idempotent(self, exporter: TraceExporter) -> None:
        exporter.shutdown()
        exporter.shutdown()
        assert exporter.force_flush(1000) is False

    def test_export_does_not_deliver_on_the_calling_thread(self, exporter: TraceExporter) -> None:
        spy = DeliverySpy(exporter)
        assert exporter.export(make_spans()) is SpanExportResult.SUCCESS
        assert exporter.force_flush(20_000)
        assert spy.threads and threading.get_ident() not in spy.threads

    # --- finished traces --------------------------------------------------------------------

    def test_spans_of_one_trace_in_several_exports_arrive_as_one_trace(
        self, exporter: TraceExporter
    ) -> None:
        spy = DeliverySpy(exporter)
        grandchild, child, root = make_spans()
        # Out of order and in three calls, as BatchSpanProcessor batches or OTLP requests do.
        assert exporter.export([child]) is SpanExportResult.SUCCESS
        assert exporter.export([root]) is SpanExportResult.SUCCESS
        assert exporter.export([grandchild]) is SpanExportResult.SUCCESS
        assert exporter.force_flush(20_000)
        assert len(spy.traces) == 1
        (delivered,) = spy.traces
        assert {s.name for s in delivered.spans} == {"root", "child", "grandchild"}
        assert delivered.root.name == "root"
        assert not delivered.partial

    def test_an_unfinished_trace_is_not_delivered_by_flush(self, exporter: TraceExporter) -> None:
        spy = DeliverySpy(exporter)
        _, child, _ = make_spans()
        exporter.export([child])  # its parent (the root) has not ended yet
        assert exporter.force_flush(20_000)
        assert spy.traces == []

    def test_each_trace_is_delivered_once(self, exporter: TraceExporter) -> None:
        spy = DeliverySpy(exporter)
        traces = [make_spans() for _ in range(5)]
        for spans in traces:
            exporter.export(spans)
        exporter.export(traces[0])  # a resent batch (an OTLP client retrying) changes nothing
        assert exporter.force_flush(20_000)
        exporter.export(traces[1])  # ... even after its trace was delivered
        assert exporter.force_flush(20_000)
        delivered = sorted(t.trace_id for t in spy.traces)
        assert delivered == sorted(spans[0].context.trace_id for spans in traces)
        assert all(len(t.spans) == 3 for t in spy.traces)

    # --- flush, shutdown and durability -----------------------------------------------------

    def test_force_flush_honours_its_timeout_when_the_sink_blocks(
        self, exporter: TraceExporter
    ) -> None:
        spy = DeliverySpy(exporter)
        spy.block()
        exporter.export(make_spans())
        outcome: list[bool] = []
        flusher = threading.Thread(target=lambda: outcome.append(exporter.force_flush(200)))
        flusher.start()
        flusher.join(20)
        try:
            assert not flusher.is_alive(), "force_flush ignored its timeout"
            assert outcome == [False]
        finally:
            spy.release()

    def test_shutdown_returns_while_the_sink_blocks(
        self, make_exporter: MakeExporter, spool_dir: Path
    ) -> None:
        exporter = make_exporter(spool_dir=spool_dir, grace_period=0.0, shutdown_timeout=0.5)
        spy = DeliverySpy(exporter)
        spy.block()
        exporter.export(make_spans())
        assert spy.entered.wait(20)
        stopper = threading.Thread(target=exporter.shutdown)
        stopper.start()
        stopper.join(20)
        spy.release()
        assert not stopper.is_alive(), "shutdown hung behind a blocked deliver()"

    def test_what_is_not_delivered_survives_a_restart(
        self, make_exporter: MakeExporter, spool_dir: Path
    ) -> None:
        first = make_exporter(spool_dir=spool_dir, grace_period=30.0, shutdown_timeout=1.0)
        failing = DeliverySpy(first)
        failing.fail_with = RetryableError("sink is down")
        spans = make_spans()
        assert first.export(spans) is SpanExportResult.SUCCESS
        assert first.force_flush(500) is False
        first.shutdown()

        second = make_exporter(spool_dir=spool_dir, grace_period=30.0)
        try:
            spy = DeliverySpy(second)
            wait_until(lambda: second.force_flush(1000), what="the left-over trace delivered")
            assert [t.trace_id for t in spy.traces] == [spans[0].context.trace_id]
        finally:
            second.shutdown()

    def test_spool_full_is_false_when_empty(self, exporter: TraceExporter) -> None:
        assert exporter.spool_full is False

    def test_works_behind_a_batch_span_processor(self, exporter: TraceExporter) -> None:
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        spy = DeliverySpy(exporter)
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        tracer = provider.get_tracer("otel-bridge.contract")
        with tracer.start_as_current_span("request") as root, tracer.start_as_current_span("llm"):
            pass
        # The processor hands its queue to export(); the exporter's own flush delivers it.
        assert provider.force_flush(20_000)
        assert exporter.force_flush(20_000)
        assert len(spy.traces) == 1
        assert spy.traces[0].trace_id == root.get_span_context().trace_id
        assert trace_api.get_current_span() is trace_api.INVALID_SPAN


class ForkContract:
    """What every sink's `_after_fork_in_child` must do, as a base class of tests.

    The core runs the hook in a real forked child, before the child's worker starts
    (tests/core/test_exporter_fork_hook.py). In it a sink drops what its process shares with the
    parent (network clients whose keep-alive sockets the parent holds too) and replaces its
    locks, which a thread of the parent may have held at the fork and which no thread of the
    child would ever release. A sink subclasses this in exporters/<sink>/tests/test_fork.py
    (pytest binds a class's fixtures to the test's instance, so a fixture may keep on `self`
    what `delivered` reads):

        class TestLabelStudioFork(ForkContract):
            @pytest.fixture
            def fork_exporter(self, make_exporter): return make_exporter(mode="chat")
            def deliver_one(self, exporter): chat_trace(exporter); flushed(exporter)
            def delivered(self, exporter): ...   # traces the real service holds
            def renewed(self, exporter): return (exporter._transport._client,)
            def locks(self, exporter): return (exporter._target_lock,)
    """

    @pytest.fixture
    def fork_exporter(self) -> TraceExporter:
        raise NotImplementedError("override the fork_exporter fixture in the sink's test class")

    def deliver_one(self, exporter: Any) -> None:
        """Trace one call into `exporter` and wait until it is delivered."""
        raise NotImplementedError

    def delivered(self, exporter: Any) -> int:
        """How many traces of `exporter` the sink's service holds."""
        raise NotImplementedError

    def renewed(self, exporter: Any) -> tuple[object, ...]:
        """What must be built anew after the hook (read after a delivery)."""
        return ()

    def kept(self, exporter: Any) -> tuple[object, ...]:
        """What the child must keep (the same objects before and after the hook)."""
        return ()

    def locks(self, exporter: Any) -> tuple[Any, ...]:
        """The locks the hook must replace."""
        raise NotImplementedError

    def check_after(self, exporter: Any) -> None:
        """Anything else the sink promises once it delivered again after the hook."""

    def test_after_the_hook_it_delivers_through_new_clients_and_new_free_locks(
        self, fork_exporter: TraceExporter
    ) -> None:
        exporter = fork_exporter
        self.deliver_one(exporter)
        renewed, kept, locks = self.renewed(exporter), self.kept(exporter), self.locks(exporter)
        assert locks, "a sink with no lock to replace has nothing to check here"
        # As at a fork in the middle of a delivery: a thread of the parent holds every lock.
        with held_by_another_thread(*locks):
            exporter._after_fork_in_child()
            new_locks = self.locks(exporter)
            assert all(new is not old for new, old in zip(new_locks, locks, strict=True))
            assert not any(lock.locked() for lock in new_locks)
            self.deliver_one(exporter)

        after = self.renewed(exporter)
        assert all(new is not old for new, old in zip(after, renewed, strict=True)), after
        assert all(now is then for now, then in zip(self.kept(exporter), kept, strict=True))
        assert self.delivered(exporter) == 2
        self.check_after(exporter)
