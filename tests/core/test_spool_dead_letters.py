"""Dead letters count toward the spool's byte bound and give way first when room is needed."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_bridge.delivery import FakeClock
from otel_bridge.exporter import TraceExporter
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.otlp_wire import encode_readable
from otel_bridge.sink import DeliveryReport, PermanentError
from otel_bridge.spool import Spool, WhenFull, spool_path
from otel_bridge.trace_tree import SpanRecord
from tests.contract import make_spans
from tests.support.recording import metric_points
from tests.support.spool_batches import batch, stored_size
from tests.support.waiting import wait_until

NOW = 1_700_000_000.0


def records(name: str = "root") -> list[SpanRecord]:
    return [SpanRecord.from_readable(span) for span in make_spans((name, "child", "grandchild"))]


def size_of(trace: Sequence[SpanRecord]) -> int:
    return sum(stored_size(record) for record in trace)


def key_of(trace: Sequence[SpanRecord]) -> str:
    return format(trace[0].trace_id, "032x")


def open_spool(
    path: Path, max_bytes: int = 10_000_000, when_full: WhenFull = "drop_newest"
) -> Spool:
    return Spool(
        path, max_bytes=max_bytes, max_traces=1000, max_spans_per_trace=1000, when_full=when_full
    )


def queue(spool: Spool, trace: list[SpanRecord], now: float) -> int:
    """Add one whole trace and move it to the outbox; returns its outbox id."""
    assert spool.add(batch(trace), now).accepted == len(trace)
    spool.assemble_ready(now, grace_period=0, max_trace_age=300)
    (item,) = [item for item in spool.due(now, 1000) if item.key == key_of(trace)]
    return item.id


def kill(spool: Spool, trace: list[SpanRecord], now: float) -> None:
    spool.dead_letter(queue(spool, trace, now), "HTTP 400", now)


def stored_bytes(path: Path) -> int:
    """The byte total straight from the file, as a fresh reader sees it."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return sum(
            db.execute(f"SELECT COALESCE(SUM(bytes), 0) FROM {table}").fetchone()[0]
            for table in ("pending_traces", "outbox", "dead_letters")
        )


@pytest.mark.parametrize("when_full", ["drop_newest", "drop_oldest"])
def test_the_oldest_dead_letters_give_way_before_anything_deliverable(
    tmp_path: Path, when_full: WhenFull, caplog: pytest.LogCaptureFixture
) -> None:
    oldest, older, waiting, pending, newest = (records(n) for n in ("a", "b", "c", "d", "e"))
    # Room for four traces: the fifth needs exactly one trace's worth freed.
    bound = sum(size_of(t) for t in (oldest, older, waiting, pending)) + 10
    path = spool_path(tmp_path, "dead")
    spool = open_spool(path, bound, when_full)
    # Dead-lettered out of id order: "oldest" is the one that died first.
    older_id = queue(spool, older, NOW)
    kill(spool, oldest, NOW + 1)
    spool.dead_letter(older_id, "HTTP 400", NOW + 2)
    queue(spool, waiting, NOW + 3)
    spool.add(batch(pending), NOW + 4)
    assert spool.bytes_used == bound - 10

    with caplog.at_level(logging.WARNING, logger="otel_bridge.spool"):
        result = spool.add(batch(newest), NOW + 5)

    assert (result.accepted, result.rejected, result.evicted) == (3, 0, 0)
    assert result.dead_letter_spans_evicted == 3
    assert [dead.key for dead in spool.dead_letters()] == [key_of(older)]
    assert [item.key for item in spool.due(NOW + 5, 10)] == [key_of(waiting)]
    assert spool.counts().pending_traces == 2
    assert spool.bytes_used == bound - 10 - size_of(oldest) + size_of(newest) == stored_bytes(path)
    (line,) = [r for r in caplog.records if r.name == "otel_bridge.spool"]
    assert line.levelno == logging.WARNING
    assert "1 oldest dead letter(s) (3 span(s)" in line.getMessage()
    assert str(path) in line.getMessage()


def test_no_dead_letter_is_discarded_while_there_is_room(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = open_spool(spool_path(tmp_path, "dead"))
    kill(spool, records(), NOW)
    with caplog.at_level(logging.WARNING, logger="otel_bridge.spool"):
        assert spool.add(batch(records()), NOW + 1).dead_letter_spans_evicted == 0
    assert len(spool.dead_letters()) == 1
    assert caplog.records == []


def test_dead_letters_alone_do_not_make_the_spool_full(tmp_path: Path) -> None:
    first, second = records("a"), records("b")
    spool = open_spool(spool_path(tmp_path, "dead"), size_of(first) + 10)
    kill(spool, first, NOW)
    assert spool.bytes_used == size_of(first) >= spool.max_bytes * 0.95
    # Pushing back (receiver 429) would never end: only an add discards dead letters.
    assert not spool.full
    result = spool.add(batch(second), NOW + 1)
    assert (result.accepted, result.rejected, result.dead_letter_spans_evicted) == (3, 0, 3)
    assert spool.full  # now the bytes are deliverable ones
    assert spool.dead_letters() == []


def test_drop_newest_discards_dead_letters_then_rejects_what_still_does_not_fit(
    tmp_path: Path,
) -> None:
    dead, live = records("a"), records("b")
    incoming = records("c") + records("d")
    path = spool_path(tmp_path, "dead")
    spool = open_spool(path, size_of(dead) + size_of(live) + 10)
    kill(spool, dead, NOW)
    spool.add(batch(live), NOW)
    result = spool.add(batch(incoming), NOW + 1)
    assert result.dead_letter_spans_evicted == 3
    assert result.rejected > 0 and result.accepted + result.rejected == 6
    assert spool.dead_letters() == []
    assert spool.full
    assert spool.bytes_used == stored_bytes(path) <= spool.max_bytes


def test_dead_lettering_and_requeueing_move_bytes_without_changing_the_total(
    tmp_path: Path,
) -> None:
    path = spool_path(tmp_path, "dead")
    spool = open_spool(path)
    first, second = records("a"), records("b")
    queue(spool, first, NOW)
    spool.add(batch(second), NOW)
    total = size_of(first) + size_of(second)
    assert spool.bytes_used == total
    spool.dead_letter(spool.due(NOW, 10)[0].id, "HTTP 400", NOW)
    assert spool.bytes_used == total == stored_bytes(path)
    assert spool.counts().bytes_used == total
    assert spool.requeue_dead_letters(NOW + 1) == 1
    assert spool.bytes_used == total == stored_bytes(path)
    spool.dead_letter(spool.due(NOW + 1, 10)[0].id, "HTTP 400 again", NOW + 2)
    spool.close()
    reopened = open_spool(path)
    assert reopened.bytes_used == total
    assert [item.key for item in reopened.due(NOW + 3, 10)] == []
    assert reopened.requeue_dead_letters(NOW + 3) == 1
    (item,) = reopened.due(NOW + 3, 10)
    reopened.remove([item.id])
    assert reopened.bytes_used == size_of(second) == stored_bytes(path)


def test_adopting_a_spool_adds_its_dead_letters_bytes_exactly(tmp_path: Path) -> None:
    donor_path, own_path = spool_path(tmp_path, "sink.1"), spool_path(tmp_path, "sink")
    donor = open_spool(donor_path)
    kill(donor, records("donor-dead"), NOW)
    queue(donor, records("donor-queued"), NOW)
    donor.add(batch(records("donor-pending")[:2]), NOW)
    donor_bytes = donor.bytes_used
    donor.close()
    own = open_spool(own_path)
    kill(own, records("own-dead"), NOW)
    own.add(batch(records("own-pending")), NOW)
    own_bytes = own.bytes_used

    assert own.adopt(donor_path) == 1 + 1 + 2
    assert own.counts().dead_letters == 2
    assert own.bytes_used == own_bytes + donor_bytes == stored_bytes(own_path)
    assert own.requeue_dead_letters(NOW + 1) == 2
    assert own.bytes_used == own_bytes + donor_bytes
    own.close()
    assert open_spool(own_path).bytes_used == own_bytes + donor_bytes


class RejectingSink(TraceExporter):
    """A sink whose every delivery is refused for good, like a misconfigured project."""

    sink_name = "rejecting"

    def __init__(self, **options: Any) -> None:
        self.calls = 0
        super().__init__(**options)

    def deliver(self, traces: Sequence[FinishedTrace]) -> DeliveryReport:
        self.calls += 1
        raise PermanentError("HTTP 400: project does not exist")


def dropped(reader: InMemoryMetricReader) -> dict[str, int]:
    return {
        str(point.attributes["otel_bridge.reason"]): int(point.value)
        for point in metric_points(reader, "otel_bridge.delivery.dropped")
    }


def test_a_sink_rejecting_everything_keeps_the_spool_bounded_and_accepting(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    batches = [make_spans((f"trace-{n}", "child", "grandchild")) for n in range(12)]
    sizes = [sum(len(encode_readable(s)) for s in b) for b in batches]
    bound = 3 * max(sizes) + max(sizes) // 2  # three dead letters fit, a fourth does not
    reader = InMemoryMetricReader()
    clock = FakeClock()
    exporter = RejectingSink(
        spool_dir=tmp_path,
        clock=clock,
        grace_period=1.0,
        max_spool_bytes=bound,
        meter_provider=MeterProvider(metric_readers=[reader]),
    )
    try:
        with caplog.at_level(logging.WARNING, logger="otel_bridge.spool"):
            for number, spans in enumerate(batches, start=1):
                assert not exporter.spool_full
                assert exporter.export(spans) is SpanExportResult.SUCCESS
                assert exporter.spool.bytes_used <= bound
                clock.advance(1.0)
                key = format(spans[0].context.trace_id, "032x")
                wait_until(
                    lambda key=key: key in {dead.key for dead in exporter.spool.dead_letters()},
                    what=f"trace {number} dead-lettered",
                )
                assert exporter.spool.bytes_used <= bound
                assert exporter.spool.counts().dead_letters == min(number, 3)
        kept = [format(spans[0].context.trace_id, "032x") for spans in batches[-3:]]
        assert [dead.key for dead in exporter.spool.dead_letters()] == kept
        assert exporter.spool.bytes_used == stored_bytes(exporter.spool.path) <= bound
        assert exporter.calls == len(batches)
        assert dropped(reader) == {"dead_letter_evicted": 3 * (len(batches) - 3)}
        discards = [r for r in caplog.records if r.name == "otel_bridge.spool"]
        assert len(discards) == len(batches) - 3
        assert all(str(exporter.spool.path) in r.getMessage() for r in discards)
    finally:
        exporter.shutdown()
