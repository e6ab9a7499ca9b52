"""A spool written by otel-bridge 0.1.0 (spool format 1: spans and traces as JSON) is rewritten as
OTLP protobuf when opened, and every span it had accepted is delivered, each once: pending traces
(with and without their root), a queued trace, one attempted before (attempts and backoff kept)
and a dead letter, for the destination it recorded.

The file is made from tests/core/data/spool_format_1.sql, an SQL dump of a spool that 0.1.0's own
code wrote (tests/core/data/make_spool_format_1.py, run with that release on the path).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from otel_bridge.delivery import FakeClock
from otel_bridge.exporter import spool_file_stem
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.spool import Spool, SpoolDestinationError, SpoolFormatError, spool_path
from otel_bridge.trace_tree import SpanRecord
from tests import contract
from tests.support.waiting import wait_until

DUMP = Path(__file__).parent / "data" / "spool_format_1.sql"
DESTINATION = {"project": "upgrade"}
NOW = 1_700_000_000.0


def write_format_1(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.executescript(DUMP.read_text(encoding="utf-8"))
    db.close()


def accepted_by_format_1() -> dict[str, list[SpanRecord]]:
    """Every span the dumped spool held, by trace id (hex), read with 0.1.0's JSON format."""
    db = sqlite3.connect(":memory:")
    db.executescript(DUMP.read_text(encoding="utf-8"))
    spans: dict[str, list[SpanRecord]] = {}
    for (text,) in db.execute("SELECT record FROM pending_spans"):
        record = SpanRecord.from_json(text)
        spans.setdefault(format(record.trace_id, "032x"), []).append(record)
    for table in ("outbox", "dead_letters"):
        for (text,) in db.execute(f"SELECT payload FROM {table}"):
            trace = FinishedTrace.from_json(text)
            spans.setdefault(format(trace.trace_id, "032x"), []).extend(trace.spans)
    return spans


def by_id(spans: list[SpanRecord]) -> list[SpanRecord]:
    return sorted(spans, key=lambda span: span.span_id)


def test_a_format_1_spool_is_rewritten_and_every_span_it_held_comes_out_once(
    tmp_path: Path,
) -> None:
    path = spool_path(tmp_path, "upgrade")
    write_format_1(path)
    expected = accepted_by_format_1()
    assert len(expected) == 5 and sum(map(len, expected.values())) == 14

    spool = Spool(
        path, max_bytes=10_000_000, max_traces=100, max_spans_per_trace=100, destination=DESTINATION
    )
    try:
        counts = spool.counts()
        assert (counts.pending_traces, counts.pending_spans) == (2, 5)
        assert (counts.outbox, counts.dead_letters) == (2, 1)
        (dead,) = spool.dead_letters()
        assert (dead.reason, dead.attempts) == ("HTTP 400: bad request", 1)
        # The attempted item keeps its attempts and its backoff (due at NOW + 40).
        queued = spool.due(NOW + 39, 10)
        assert [item.attempts for item in queued] == [0]
        assert sorted(item.attempts for item in spool.due(NOW + 40, 10)) == [0, 1]

        assert spool.requeue_dead_letters(NOW + 50) == 1
        # The rootless trace goes partial at its max age, the other with its root.
        result = spool.assemble_ready(NOW + 400, grace_period=2, max_trace_age=300)
        assert (result.complete, result.partial) == (1, 1)
        items = spool.due(NOW + 400, 100)
        delivered = {item.key: item.trace() for item in items}
        assert {key: by_id(list(t.spans)) for key, t in delivered.items()} == {
            key: by_id(spans) for key, spans in expected.items()
        }
        partial = {item.key for item in items if item.partial}
        assert [len(expected[key]) for key in partial] == [2]  # the trace without its root
        spool.remove([item.id for item in items])
        assert spool.drained()
    finally:
        spool.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (2,)
    db.close()


def test_the_upgraded_spool_stays_its_recorded_destinations(tmp_path: Path) -> None:
    path = spool_path(tmp_path, "upgrade")
    write_format_1(path)
    with pytest.raises(SpoolDestinationError):
        Spool(path, max_bytes=10**7, max_traces=10, max_spans_per_trace=10, destination={"x": "y"})
    # The refusal happened after the rewrite, which is kept; the file is still whole.
    spool = Spool(path, max_bytes=10**7, max_traces=10, max_spans_per_trace=10)
    try:
        assert spool.destination == DESTINATION
        assert spool.counts().pending_spans == 5
    finally:
        spool.close()


def test_an_exporter_delivers_what_0_1_0_accepted_after_the_upgrade(tmp_path: Path) -> None:
    """The exporter for the recorded destination finds the old file by its name and delivers
    every trace, each once."""

    class UpgradeSink(contract.MemorySink):
        sink_name = "upgrade"

        def destination_identity(self) -> dict[str, str]:
            return DESTINATION

    write_format_1(spool_path(tmp_path, spool_file_stem("upgrade", DESTINATION)))
    expected = accepted_by_format_1()
    # Past every backoff, and past max_trace_age for the trace whose root never came.
    clock = FakeClock(NOW + 400)
    exporter = UpgradeSink(spool_dir=tmp_path, clock=clock, grace_period=2, max_trace_age=300)
    try:
        exporter.spool.requeue_dead_letters(clock.now())
        assert exporter.force_flush(20_000)
        wait_until(lambda: len(exporter.delivered) == 5, what="five traces delivered")
        delivered = {format(t.trace_id, "032x"): by_id(list(t.spans)) for t in exporter.delivered}
        assert delivered == {key: by_id(spans) for key, spans in expected.items()}
        assert len(exporter.delivered) == 5
    finally:
        exporter.shutdown()


def test_a_spool_of_an_unknown_format_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = spool_path(tmp_path, "future")
    write_format_1(path)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 9")
    db.close()
    with pytest.raises(SpoolFormatError, match="format 9"):
        Spool(path, max_bytes=10**7, max_traces=10, max_spans_per_trace=10)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (9,)
        assert db.execute("SELECT COUNT(*) FROM pending_spans").fetchone() == (5,)
    db.close()


def test_the_dump_is_what_format_1_wrote() -> None:
    """Guards the fixture: format 1's tables and JSON rows, not something already converted."""
    db = sqlite3.connect(":memory:")
    db.executescript(DUMP.read_text(encoding="utf-8"))
    assert db.execute("PRAGMA user_version").fetchone() == (1,)
    (text,) = db.execute("SELECT record FROM pending_spans LIMIT 1").fetchone()
    assert json.loads(text)["trace_id"]
