"""TraceExporter across os.fork() (gunicorn --preload, multiprocessing "fork"): the child delivers
what it exports through a spool and worker of its own; the parent's spool, lock and queue are
left exactly as they were, and the parent goes on delivering its own."""

from __future__ import annotations

import gc
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_bridge.delivery import RetryPolicy
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.sink import DeliveryReport, RetryableError
from otel_bridge.spool import Spool, SpoolLockedError
from tests.contract import make_spans
from tests.support.forking import ProcessLogSink, held_by_another_thread, run_in_child
from tests.support.waiting import wait_until

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")

_DEADLINE = 30.0


class FileSink(ProcessLogSink):
    """A `ProcessLogSink` whose deliveries fail (retried an hour later) in the process that
    built it until `gate` is set, so the parent still holds its trace when it forks."""

    sink_name = "forktest"

    def __init__(self, log: Path, **options: Any) -> None:
        self.creator = os.getpid()
        self.gate = threading.Event()
        self.refused = 0
        super().__init__(log, **options)

    def deliver(self, traces: Sequence[FinishedTrace]) -> DeliveryReport:
        if os.getpid() == self.creator and not self.gate.is_set():
            self.refused += 1
            raise RetryableError("gate closed")
        return super().deliver(traces)


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[FileSink]:
    made = FileSink(
        tmp_path / "delivered.log",
        spool_dir=tmp_path / "spool",
        grace_period=0.0,
        retry=RetryPolicy(initial_backoff=3600.0, max_backoff=3600.0, jitter=0.0),
        shutdown_timeout=10.0,
    )
    yield made
    made.gate.set()
    made.shutdown()


def _trace_id(spans: Sequence[ReadableSpan]) -> str:
    context = spans[0].context
    assert context is not None
    return f"{context.trace_id:032x}"


def _export_and_shut_down(exporter: FileSink, spans: Sequence[ReadableSpan]) -> Callable[[], int]:
    parent_spool = exporter.spool.path

    def child() -> int:
        if exporter.spool.path == parent_spool or exporter.spool.closed:
            return 3
        if exporter.export(spans) is not SpanExportResult.SUCCESS:
            return 4
        exporter.shutdown()
        return 0

    return child


def _parent_holds_a_trace(exporter: FileSink) -> str:
    spans = make_spans(("parent-root", "parent-child"))
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    # Attempted once and refused: it waits in the parent's outbox, an hour of backoff away.
    wait_until(lambda: exporter.refused >= 1, _DEADLINE, what="a refused export")
    assert exporter.spool.counts().outbox == 1
    return _trace_id(spans)


def test_child_delivers_its_trace_and_parent_its_own(exporter: FileSink) -> None:
    parent_trace = _parent_holds_a_trace(exporter)
    child_spans = make_spans(("child-root", "child-child"))

    child_pid, code = run_in_child(_export_and_shut_down(exporter, child_spans))

    assert code == 0
    assert exporter.deliveries() == [(child_pid, _trace_id(child_spans))]
    exporter.gate.set()
    assert exporter.force_flush(int(_DEADLINE * 1000))
    assert sorted(exporter.deliveries()) == sorted(
        [(child_pid, _trace_id(child_spans)), (os.getpid(), parent_trace)]
    )


def test_child_leaves_parent_spool_intact_and_locked(exporter: FileSink) -> None:
    parent_trace = _parent_holds_a_trace(exporter)
    parent_path = exporter.spool.path
    child_path = parent_path.with_name("forktest.1.sqlite3")

    _, code = run_in_child(_export_and_shut_down(exporter, make_spans(("child-root",))))

    assert code == 0
    with sqlite3.connect(f"file:{parent_path}?mode=ro", uri=True) as check:
        assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert check.execute("SELECT key FROM outbox").fetchall() == [(parent_trace,)]
    check.close()
    bounds: dict[str, Any] = {"max_bytes": 1 << 20, "max_traces": 10, "max_spans_per_trace": 10}
    # The child closed its copy of the lock file without unlocking: the parent still owns it.
    with pytest.raises(SpoolLockedError):
        Spool(parent_path, **bounds)
    # The child's own spool is released and empty, there for the next exporter to take over.
    left = Spool(child_path, **bounds)
    try:
        assert left.counts().outbox == left.counts().pending_spans == 0
    finally:
        left.close()
    # The parent carries on with its own spool and worker.
    later = make_spans(("parent-later",))
    assert exporter.export(later) is SpanExportResult.SUCCESS
    exporter.gate.set()
    assert exporter.force_flush(int(_DEADLINE * 1000))
    mine = {trace for pid, trace in exporter.deliveries() if pid == os.getpid()}
    assert mine == {parent_trace, _trace_id(later)}


def test_fork_while_another_thread_holds_the_exporter_locks(exporter: FileSink) -> None:
    """A fork in the middle of an export or a shutdown: the locks those threads held are copied
    held into the child, where no thread will ever release them."""
    with held_by_another_thread(exporter.spool._lock, exporter._shutdown_lock):
        child_spans = make_spans(("child-root",))
        child_pid, code = run_in_child(_export_and_shut_down(exporter, child_spans))

    assert code == 0
    assert exporter.deliveries() == [(child_pid, _trace_id(child_spans))]


def test_exporter_shut_down_before_the_fork_stays_shut_down(exporter: FileSink) -> None:
    exporter.shutdown()
    spans = make_spans(("child-root",))

    def child() -> int:
        if exporter.export(spans) is not SpanExportResult.FAILURE:
            return 3
        exporter.shutdown()
        return 0

    _, code = run_in_child(child)

    assert code == 0
    assert exporter.deliveries() == []
    assert not exporter.spool.path.with_name("forktest.1.sqlite3").exists()


def test_fork_hook_does_not_keep_the_exporter_alive(tmp_path: Path) -> None:
    made = FileSink(tmp_path / "delivered.log", spool_dir=tmp_path / "spool")
    made.shutdown()
    alive = weakref.ref(made)
    del made
    gc.collect()

    assert alive() is None
    _, code = run_in_child(lambda: 0)  # the hook of a collected exporter does nothing
    assert code == 0
