"""The SQLite spool: assembly of finished traces, bounds, dead letters, persistence, locking."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.spool import Spool, SpoolFormatError, SpoolLockedError, spool_path
from otel_bridge.trace_tree import SpanRecord
from tests.contract import make_spans
from tests.support.spool_batches import batch, stored_size

NOW = 1_700_000_000.0


def records(names: tuple[str, ...] = ("root", "child", "grandchild")) -> list[SpanRecord]:
    """Real SDK spans of one trace, detached; order: grandchild, child, root (end order)."""
    return [SpanRecord.from_readable(span) for span in make_spans(names)]


def open_spool(tmp_path: Path, **bounds: object) -> Spool:
    options: dict[str, object] = {
        "max_bytes": 10_000_000,
        "max_traces": 1000,
        "max_spans_per_trace": 1000,
    }
    options.update(bounds)
    return Spool(spool_path(tmp_path, "test"), **options)  # type: ignore[arg-type]


def outbox_traces(spool: Spool, now: float = NOW + 10_000) -> list[FinishedTrace]:
    return [item.trace() for item in spool.due(now, 1000)]


def test_a_trace_is_ready_grace_after_its_root_arrived(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    grandchild, child, root = records()
    spool.add(batch([grandchild, child]), NOW)
    assert spool.assemble_ready(NOW + 100, grace_period=2, max_trace_age=300).complete == 0
    spool.add(batch([root]), NOW + 100)
    assert spool.assemble_ready(NOW + 101, grace_period=2, max_trace_age=300).complete == 0
    assert spool.next_wakeup(grace_period=2, max_trace_age=300) == NOW + 102
    assert spool.assemble_ready(NOW + 102, grace_period=2, max_trace_age=300).complete == 1
    (trace,) = outbox_traces(spool)
    assert {s.name for s in trace.spans} == {"root", "child", "grandchild"}
    assert not trace.partial
    assert spool.counts().pending_spans == 0


def test_a_trace_without_root_is_delivered_partial_at_max_age(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    _, child, _ = records()
    spool.add(batch([child]), NOW)
    assert spool.assemble_ready(NOW + 299, grace_period=2, max_trace_age=300).partial == 0
    assert spool.assemble_ready(NOW + 300, grace_period=2, max_trace_age=300).partial == 1
    (trace,) = outbox_traces(spool)
    assert trace.partial
    assert [s.name for s in trace.spans] == ["child"]


def test_flush_ignores_grace_but_not_missing_roots(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    spool.add(batch(records()), NOW)
    spool.add(batch(records()[:1]), NOW)  # another trace, root not ended
    result = spool.assemble_ready(NOW, grace_period=2, max_trace_age=300, flush=True)
    assert (result.complete, result.partial) == (1, 0)
    assert spool.counts().pending_traces == 1


def test_a_span_with_a_remote_parent_is_a_root(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    (server,) = records(("server",))
    remote_child = dataclasses.replace(server, parent_span_id=0x1234, parent_is_remote=True)
    local_orphan = dataclasses.replace(server, span_id=server.span_id + 1, parent_span_id=0x99)
    spool.add(batch([local_orphan]), NOW)
    assert spool.assemble_ready(NOW + 5, grace_period=2, max_trace_age=300).complete == 0
    spool.add(batch([remote_child]), NOW)
    assert spool.assemble_ready(NOW + 5, grace_period=2, max_trace_age=300).complete == 1


def test_duplicate_spans_are_stored_once(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    spans = records()
    assert spool.add(batch(spans), NOW).accepted == 3
    again = spool.add(batch(spans), NOW)
    assert (again.accepted, again.duplicates) == (0, 3)
    assert spool.counts().pending_spans == 3


def test_drop_newest_rejects_what_does_not_fit_and_reports_full(tmp_path: Path) -> None:
    one_trace = records()
    size = sum(stored_size(r) for r in one_trace)
    spool = open_spool(tmp_path, max_bytes=size + 10)
    assert spool.add(batch(one_trace), NOW).rejected == 0
    second = spool.add(batch(records()), NOW)
    assert second.rejected == 3 and second.accepted == 0
    assert spool.full
    assert spool.counts().pending_spans == 3
    spool.assemble_ready(NOW + 10, grace_period=2, max_trace_age=300)
    (item,) = spool.due(NOW + 10, 10)
    spool.remove([item.id])
    assert not spool.full
    assert spool.bytes_used == 0


def test_a_span_refused_while_full_and_resent_after_its_root_left_goes_after_grace(
    tmp_path: Path,
) -> None:
    """A full spool takes the root of a request and refuses its child; the sender retries
    after the trace was handed over (root only). The child is a late piece of that trace: it
    goes after the grace period, marked partial, not max_trace_age later (it never waited an
    hour before: acknowledged spans stayed out of the sink for that long)."""
    grandchild, child, root = records()
    largest = max(stored_size(root), stored_size(child))
    spool = open_spool(tmp_path, max_bytes=largest + 10)  # one span fits, not two
    refused = spool.add(batch([root, child]), NOW)
    assert (refused.accepted, refused.rejected) == (1, 1)  # the root fits, the child does not
    assert spool.assemble_ready(NOW + 2, grace_period=2, max_trace_age=3600).complete == 1
    (item,) = spool.due(NOW + 2, 10)
    spool.remove([item.id])

    again = spool.add(batch([root, child]), NOW + 3)  # the retried request
    assert (again.accepted, again.duplicates) == (1, 1)
    assert spool.next_wakeup(grace_period=2, max_trace_age=3600) == NOW + 5
    assert spool.assemble_ready(NOW + 5, grace_period=2, max_trace_age=3600).complete == 1
    (piece,) = outbox_traces(spool)
    assert [span.name for span in piece.spans] == ["child"]
    assert piece.partial
    # The grandchild arriving later still is one more late piece of the same trace.
    spool.remove([item.id for item in spool.due(NOW + 5, 10)])
    spool.add(batch([grandchild]), NOW + 6)
    assert spool.assemble_ready(NOW + 8, grace_period=2, max_trace_age=3600).complete == 1


def test_drop_oldest_evicts_the_oldest_queued_trace(tmp_path: Path) -> None:
    first = records()
    size = sum(stored_size(r) for r in first)
    spool = open_spool(tmp_path, max_bytes=size + 10, when_full="drop_oldest")
    spool.add(batch(first), NOW)
    spool.assemble_ready(NOW + 10, grace_period=2, max_trace_age=300)
    second = records()
    result = spool.add(batch(second), NOW + 20)
    assert (result.evicted, result.accepted, result.rejected) == (3, 3, 0)
    spool.assemble_ready(NOW + 30, grace_period=2, max_trace_age=300)
    (trace,) = outbox_traces(spool)
    assert trace.trace_id == second[0].trace_id


def test_spans_per_trace_bound_hands_the_trace_over_early(tmp_path: Path) -> None:
    spool = open_spool(tmp_path, max_spans_per_trace=2)
    grandchild, child, root = records()
    assert spool.add(batch([grandchild]), NOW).early_traces == 0
    assert spool.add(batch([child]), NOW).early_traces == 1
    spool.add(batch([root]), NOW)
    counts = spool.counts()
    assert (counts.outbox, counts.pending_spans) == (1, 1)
    (trace,) = outbox_traces(spool)
    assert trace.partial and len(trace.spans) == 2


def test_traces_bound_hands_the_oldest_over_early(tmp_path: Path) -> None:
    spool = open_spool(tmp_path, max_traces=2)
    oldest = records(("a",))
    spool.add(batch(oldest), NOW)
    spool.add(batch(records(("b",))), NOW + 1)
    result = spool.add(batch(records(("c",))), NOW + 2)
    assert result.early_traces == 1
    (trace,) = outbox_traces(spool)
    assert trace.trace_id == oldest[0].trace_id
    assert spool.counts().pending_traces == 2


def test_one_item_per_trace_key_in_a_batch(tmp_path: Path) -> None:
    spool = open_spool(tmp_path, max_spans_per_trace=1)
    for record in records():
        spool.add(batch([record]), NOW)  # three one-span pieces of the same trace
    assert spool.counts().outbox == 3
    assert len(spool.due(NOW, 10)) == 1


def test_dead_letters_keep_reason_and_attempts_and_can_be_requeued(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    spool.add(batch(records()), NOW)
    spool.assemble_ready(NOW, grace_period=0, max_trace_age=300)
    (item,) = spool.due(NOW, 10)
    spool.mark_attempted([item.id], NOW)
    stored = spool.bytes_used
    spool.dead_letter(item.id, "HTTP 400: bad payload", NOW + 1)
    assert spool.due(NOW + 100, 10) == []
    (dead,) = spool.dead_letters()
    assert (dead.key, dead.reason, dead.attempts) == (item.key, "HTTP 400: bad payload", 1)
    # A dead letter still takes its room in the spool, no more and no less.
    assert stored > 0 and spool.bytes_used == stored
    assert spool.requeue_dead_letters(NOW + 2) == 1
    assert spool.bytes_used == stored
    (again,) = spool.due(NOW + 2, 10)
    assert again.attempts == 1 and again.payload == item.payload
    assert spool.dead_letters() == []


def test_everything_survives_close_and_reopen(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    spool.add(batch(records()), NOW)
    spool.add(batch(records()[:2]), NOW)
    spool.assemble_ready(NOW + 5, grace_period=2, max_trace_age=300)
    before = spool.counts()
    spool.close()
    reopened = open_spool(tmp_path)
    assert reopened.counts() == before
    assert reopened.bytes_used == before.bytes_used > 0


def test_the_file_uses_wal(tmp_path: Path) -> None:
    spool = open_spool(tmp_path)
    with sqlite3.connect(spool.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_second_writer_is_locked_out(tmp_path: Path) -> None:
    first = open_spool(tmp_path)
    with pytest.raises(SpoolLockedError, match="in use"):
        open_spool(tmp_path)
    first.close()
    open_spool(tmp_path).close()


def test_a_spool_of_another_format_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    open_spool(tmp_path).close()
    with sqlite3.connect(spool_path(tmp_path, "test")) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(SpoolFormatError, match="has format 99"):
        open_spool(tmp_path)
    open_spool(tmp_path / "elsewhere").close()  # the lock was released


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_interleaving_loses_and_duplicates_nothing(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """Spans of several traces, shuffled into batches (some resent), with assembly running at
    random moments: every span ends up in exactly one delivered piece."""
    traces = [records(("root", "a", "b")[: data.draw(st.integers(1, 3))]) for _ in range(3)]
    spans = [span for trace in traces for span in trace]
    order = data.draw(st.permutations(spans))
    resent = data.draw(st.lists(st.sampled_from(spans), max_size=3))
    spool = open_spool(
        tmp_path_factory.mktemp("spool"), max_spans_per_trace=data.draw(st.integers(2, 5))
    )
    now = NOW
    for record in [*order, *resent]:
        spool.add(batch([record]), now)
        now += 1
        if data.draw(st.booleans()):
            spool.assemble_ready(
                now, grace_period=data.draw(st.sampled_from([0, 2])), max_trace_age=300
            )
    spool.assemble_ready(now + 1000, grace_period=0, max_trace_age=300)
    pieces: list[FinishedTrace] = []
    while items := spool.due(now + 1000, 1000):  # at most one piece per trace key per batch
        pieces.extend(item.trace() for item in items)
        spool.remove([item.id for item in items])
    delivered_spans = [(s.trace_id, s.span_id) for piece in pieces for s in piece.spans]
    assert sorted(delivered_spans) == sorted((s.trace_id, s.span_id) for s in spans)
    spool.close()


def test_adopted_spans_whose_trace_row_was_lost_go_at_the_next_step_partial(
    tmp_path: Path,
) -> None:
    """A salvaged file can hold spans whose trace row was unreadable. Adopted as they were,
    they sat in the spool with no trace to assemble them (found salvaging a spool damaged by
    hand: "recovered 0 trace(s)" from 21 readable spans); now each becomes a trace first seen
    at time 0, handed over at the next step, partial."""
    donor = Spool(
        spool_path(tmp_path, "donor"), max_bytes=10_000_000, max_traces=100, max_spans_per_trace=100
    )
    grandchild, child, _ = records()
    donor.add(batch([grandchild, child]), NOW)
    donor.close()
    with sqlite3.connect(spool_path(tmp_path, "donor")) as db:
        db.execute("DELETE FROM pending_traces")
    spool = open_spool(tmp_path)
    assert spool.adopt(spool_path(tmp_path, "donor")) == 2
    assert spool.assemble_ready(NOW, grace_period=2, max_trace_age=300).partial == 1
    (trace,) = outbox_traces(spool)
    assert trace.partial and {s.name for s in trace.spans} == {"child", "grandchild"}
