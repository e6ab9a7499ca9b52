"""`max_spool_bytes` bounds every file of the spool on disk (database, WAL, shared memory), not
only the bytes of the spans it counts: SQLite's pages, indexes, the resend window and the WAL
take room of their own. Before, the same load left 9.0 MB on disk for a 6 MiB limit."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SpanExportResult

from otel_bridge.sink import DeliveryReport, RetryableError
from otel_bridge.traces import FinishedTrace, SpanRecord
from tests import contract
from tests.contract import make_spans

LIMIT = 6 * 1024 * 1024


class _DownSink(contract.MemorySink):
    """A sink that is down: everything accepted stays in the spool."""

    def deliver(self, traces: Sequence[FinishedTrace]) -> DeliveryReport:
        raise RetryableError("down")


def _on_disk(spool_path: Path) -> int:
    return sum(p.stat().st_size for p in spool_path.parent.glob(spool_path.name + "*"))


@pytest.mark.parametrize("when_full", ["drop_newest", "drop_oldest"])
def test_the_spool_files_stay_within_max_spool_bytes(tmp_path: Path, when_full: Any) -> None:
    sink = _DownSink(
        spool_dir=tmp_path,
        grace_period=0.0,
        max_spool_bytes=LIMIT,
        when_full=when_full,
        shutdown_timeout=1.0,
    )
    try:
        largest = 0
        results = []
        for _ in range(120):  # ~20 MiB of spans offered, more than three times the limit
            batch = [s for _ in range(40) for s in make_spans(("chain", "llm " + "x" * 2_000))]
            results.append(sink.export(batch))
            largest = max(largest, _on_disk(sink.spool.path))
        request = sum(len(SpanRecord.from_readable(span).to_json()) for span in batch)
        # Within the limit plus one request (what a single write may overshoot by).
        assert largest <= LIMIT + request, f"{largest:,} bytes on disk, limit {LIMIT:,}"
        if when_full == "drop_newest":
            assert SpanExportResult.FAILURE in results
            assert sink.spool_full
        else:
            assert set(results) == {SpanExportResult.SUCCESS}
        # Nothing was lost quietly: what was accepted is still there to deliver.
        counts = sink.spool.counts()
        assert counts.pending_traces + counts.outbox > 0
    finally:
        sink.shutdown()
