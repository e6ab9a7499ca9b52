"""The spool's trace assembly: spans waiting, grouped by trace, until their trace is finished,
then moved whole to the outbox; and the resend window, the ids of spans moved lately, so a copy
an OTLP client sends again is recognised and not delivered twice.

Every function runs inside a transaction the `Spool` opened on its one connection, so a trace
moves from pending to the outbox in one transaction, and keeps the spool's `Tally` in step.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from otel_bridge.spool_outbox import SQL_VARIABLES_PER_QUERY, Outbox, Tally, scalar
from otel_bridge.traces import SpanRecord

__all__ = ["AddResult", "AssembleResult", "SpansByTrace", "TraceAssembly"]

_logger = logging.getLogger("otel_bridge.spool")

# How long the ids of spans handed over to the outbox are kept to recognise resent copies:
# longer than an OTLP exporter keeps retrying one request (the SDKs back off up to ~64 s).
RESEND_WINDOW = 120.0

# A batch's new spans: trace id (hex) -> span id (hex) -> (stored text, is a local root).
SpansByTrace = dict[str, dict[str, tuple[str, bool]]]


@dataclass(frozen=True, slots=True)
class AddResult:
    """What happened to one batch of spans handed to `Spool.add`."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0  # not stored: the spool was full and when_full="drop_newest"
    evicted: int = 0  # older spans removed to make room (when_full="drop_oldest")
    early_traces: int = 0  # traces handed over early (partial) because a bound was reached
    traces_with_root: int = 0  # traces whose local root arrived in this batch
    new_traces: int = 0  # traces whose first spans arrived in this batch
    dead_letter_spans_evicted: int = 0  # spans of the oldest dead letters removed to make room


@dataclass(frozen=True, slots=True)
class AssembleResult:
    complete: int = 0
    partial: int = 0


@dataclass(frozen=True, slots=True)
class StoreResult:
    accepted: int = 0
    early_traces: int = 0
    traces_with_root: int = 0
    new_traces: int = 0


class TraceAssembly:
    """The pending_spans, pending_traces and handed_over tables of one spool file."""

    def __init__(
        self,
        tally: Tally,
        outbox: Outbox,
        *,
        name: str,
        max_traces: int,
        max_spans_per_trace: int,
        handed_keep: int,
    ) -> None:
        self._tally = tally
        self._outbox = outbox
        self._name = name
        self.max_traces = max_traces
        self.max_spans_per_trace = max_spans_per_trace
        self._handed_keep = handed_keep

    # --- spans in ----------------------------------------------------------------------------

    def new_spans(
        self, db: sqlite3.Connection, records: Sequence[SpanRecord]
    ) -> tuple[SpansByTrace, int]:
        """The batch's spans by trace without those this spool holds or handed over lately,
        and how many spans were dropped as duplicates."""
        by_trace: SpansByTrace = {}
        duplicates = 0
        for record in records:
            spans = by_trace.setdefault(format(record.trace_id, "032x"), {})
            span_hex = format(record.span_id, "016x")
            if span_hex in spans:
                duplicates += 1
                continue
            spans[span_hex] = (record.to_json(), record.is_local_root)
        for trace_hex, spans in by_trace.items():
            # A resent span (an OTLP client retrying a request we did store) is either still
            # pending or was handed over in the last RESEND_WINDOW seconds.
            resent = _stored_span_ids(db, "handed_over", trace_hex, list(spans))
            resent |= _stored_span_ids(db, "pending_spans", trace_hex, list(spans))
            duplicates += len(resent)
            for span_hex in resent:
                del spans[span_hex]
        return by_trace, duplicates

    def store(self, db: sqlite3.Connection, by_trace: SpansByTrace, now: float) -> StoreResult:
        """Add the spans to their pending traces; a trace past a bound goes over early."""
        accepted = early = roots = new = 0
        for trace_hex, spans in by_trace.items():
            if not spans:
                continue
            pending = db.execute(
                "SELECT span_count FROM pending_traces WHERE trace_id = ?", (trace_hex,)
            ).fetchone()
            db.executemany(
                "INSERT INTO pending_spans (trace_id, span_id, record) VALUES (?, ?, ?)",
                [(trace_hex, span_hex, text) for span_hex, (text, _) in spans.items()],
            )
            count = len(spans)
            size = sum(len(text) for text, _ in spans.values())
            has_root = any(is_root for _, is_root in spans.values())
            accepted += count
            roots += has_root
            self._tally.bytes += size
            root_arrival = now if has_root else None
            if pending is None and not has_root and _handed_over(db, trace_hex):
                # A late piece of a trace already handed over (a retried request whose root
                # went in an earlier attempt, or a span that ended after its root): its root
                # will not come again, so it goes after the grace period, not max_trace_age
                # later.
                root_arrival = now
            if pending is None:
                if self._tally.pending_traces >= self.max_traces:
                    early += self._assemble_oldest(db, now)
                db.execute(
                    "INSERT INTO pending_traces"
                    " (trace_id, first_arrival, root_arrival, span_count, bytes)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (trace_hex, now, root_arrival, count, size),
                )
                self._tally.pending_traces += 1
                self._tally.held += 1
                new += 1
                total = count
            else:
                db.execute(
                    "UPDATE pending_traces SET span_count = span_count + ?, bytes = bytes + ?,"
                    " root_arrival = COALESCE(?, root_arrival) WHERE trace_id = ?",
                    (count, size, root_arrival, trace_hex),
                )
                total = pending[0] + count
            if total >= self.max_spans_per_trace:
                _logger.warning(
                    "spool %s: trace %s reached max_spans_per_trace=%d; handing its %d span(s)"
                    " over early, partial (later spans follow as another piece)",
                    self._name,
                    trace_hex,
                    self.max_spans_per_trace,
                    total,
                )
                self.assemble(db, trace_hex, partial=True, now=now)
                early += 1
        if early:
            self.trim_handed_over(db)
        return StoreResult(accepted, early, roots, new)

    # --- pending -> outbox -------------------------------------------------------------------

    def ready(
        self,
        db: sqlite3.Connection,
        now: float,
        *,
        grace_period: float,
        max_trace_age: float,
        flush: bool,
    ) -> list[str]:
        """Traces whose local root arrived `grace_period` ago (any time when flushing), or
        whose first span arrived `max_trace_age` ago; forgets resend ids past the window."""
        expired = db.execute("DELETE FROM handed_over WHERE at < ?", (now - RESEND_WINDOW,))
        self._tally.handed -= max(0, expired.rowcount)
        rows = db.execute(
            "SELECT trace_id FROM pending_traces WHERE"
            " (root_arrival IS NOT NULL AND (? OR root_arrival <= ?)) OR first_arrival <= ?",
            (flush, now - grace_period, now - max_trace_age),
        ).fetchall()
        return [row[0] for row in rows]

    def assemble_if_pending(
        self, db: sqlite3.Connection, trace_hex: str, now: float
    ) -> bool | None:
        """Move the trace to the outbox if it is still pending: partial (True) when its root
        never came, complete (False); None when it is no longer pending (a span added since
        handed it over early)."""
        row = db.execute(
            "SELECT root_arrival FROM pending_traces WHERE trace_id = ?", (trace_hex,)
        ).fetchone()
        if row is None:
            return None
        is_partial = row[0] is None
        self.assemble(db, trace_hex, partial=is_partial, now=now)
        return is_partial

    def assemble(
        self, db: sqlite3.Connection, trace_hex: str, *, partial: bool, now: float
    ) -> None:
        records = [
            row[0]
            for row in db.execute(
                "SELECT record FROM pending_spans WHERE trace_id = ?", (trace_hex,)
            ).fetchall()
        ]
        # A later piece of a trace handed over before is partial whatever its root's state.
        partial = partial or _handed_over(db, trace_hex)
        # Same layout as FinishedTrace.to_json, built from the stored span JSON without parsing.
        payload = (
            f'{{"trace_id":"{trace_hex}","partial":{"true" if partial else "false"},'
            f'"spans":[{",".join(records)}]}}'
        )
        size = scalar(db, "SELECT bytes FROM pending_traces WHERE trace_id = ?", trace_hex)
        handed = db.execute(
            "INSERT OR IGNORE INTO handed_over (trace_id, span_id, at)"
            " SELECT trace_id, span_id, ? FROM pending_spans WHERE trace_id = ?",
            (now, trace_hex),
        )
        self._tally.handed += max(0, handed.rowcount)
        db.execute("DELETE FROM pending_spans WHERE trace_id = ?", (trace_hex,))
        db.execute("DELETE FROM pending_traces WHERE trace_id = ?", (trace_hex,))
        self._tally.pending_traces -= 1
        self._outbox.enqueue(
            db,
            key=trace_hex,
            payload=payload,
            size=size,
            span_count=len(records),
            partial=partial,
            now=now,
        )

    def trim_handed_over(self, db: sqlite3.Connection) -> None:
        """Keep the resend window within its share of the limit, oldest ids out first."""
        excess = self._tally.handed - self._handed_keep
        if excess <= 0:
            return
        trimmed = db.execute(
            "DELETE FROM handed_over WHERE (trace_id, span_id) IN"
            " (SELECT trace_id, span_id FROM handed_over ORDER BY at LIMIT ?)",
            (excess,),
        )
        self._tally.handed -= max(0, trimmed.rowcount)

    # --- state -------------------------------------------------------------------------------

    def counts(self, db: sqlite3.Connection) -> tuple[int, int]:
        """Pending traces and pending spans."""
        return (
            scalar(db, "SELECT COUNT(*) FROM pending_traces"),
            scalar(db, "SELECT COUNT(*) FROM pending_spans"),
        )

    def has_rooted(self, db: sqlite3.Connection) -> bool:
        """Whether a trace whose root has arrived is waiting."""
        row = db.execute(
            "SELECT EXISTS (SELECT 1 FROM pending_traces WHERE root_arrival IS NOT NULL)"
        ).fetchone()
        return bool(row[0])

    def next_ready(
        self, db: sqlite3.Connection, *, grace_period: float, max_trace_age: float
    ) -> float | None:
        row = db.execute(
            "SELECT MIN(t) FROM (SELECT MIN(root_arrival) + ? AS t FROM pending_traces"
            " UNION ALL SELECT MIN(first_arrival) + ? FROM pending_traces)",
            (grace_period, max_trace_age),
        ).fetchone()
        return None if row[0] is None else float(row[0])

    # --- making room -------------------------------------------------------------------------

    def evict_oldest(self, db: sqlite3.Connection) -> tuple[int, int] | None:
        """Delete the pending trace that arrived first: (its spans, its bytes), or None."""
        trace = db.execute(
            "SELECT trace_id, span_count, bytes FROM pending_traces ORDER BY first_arrival LIMIT 1"
        ).fetchone()
        if trace is None:
            return None
        db.execute("DELETE FROM pending_spans WHERE trace_id = ?", (trace[0],))
        db.execute("DELETE FROM pending_traces WHERE trace_id = ?", (trace[0],))
        self._tally.pending_traces -= 1
        self._tally.held -= 1
        self._tally.bytes -= trace[2]
        return int(trace[1]), int(trace[2])

    # --- adoption ----------------------------------------------------------------------------

    @staticmethod
    def read_for_adoption(
        source: sqlite3.Connection,
    ) -> tuple[list[tuple[str, str, str]], list[tuple[str, float, float | None]]]:
        """Another spool file's pending spans and traces. Spans whose trace row was lost (a
        damaged file salvaged row by row) are still worth delivering: as traces first seen at
        time 0, they go at the next step, partial."""
        spans = source.execute("SELECT trace_id, span_id, record FROM pending_spans").fetchall()
        traces = source.execute(
            "SELECT trace_id, first_arrival, root_arrival FROM pending_traces"
        ).fetchall()
        known = {trace_hex for trace_hex, _, _ in traces}
        traces += [(t, 0.0, None) for t in sorted({s[0] for s in spans} - known)]
        return spans, traces

    @staticmethod
    def adopt(
        db: sqlite3.Connection,
        spans: Sequence[tuple[str, str, str]],
        traces: Sequence[tuple[str, float, float | None]],
    ) -> None:
        """Write another file's pending spans and traces here (the caller recounts the tally)."""
        db.executemany(
            "INSERT OR IGNORE INTO pending_spans (trace_id, span_id, record) VALUES (?, ?, ?)",
            spans,
        )
        for trace_hex, first_arrival, root_arrival in traces:
            db.execute(
                "INSERT INTO pending_traces"
                " (trace_id, first_arrival, root_arrival, span_count, bytes)"
                " VALUES (?, ?, ?, 0, 0) ON CONFLICT (trace_id) DO UPDATE SET"
                " first_arrival = MIN(first_arrival, excluded.first_arrival),"
                " root_arrival = COALESCE(root_arrival, excluded.root_arrival)",
                (trace_hex, first_arrival, root_arrival),
            )
            db.execute(
                "UPDATE pending_traces SET (span_count, bytes) = (SELECT COUNT(*),"
                " COALESCE(SUM(LENGTH(record)), 0) FROM pending_spans WHERE trace_id = ?)"
                " WHERE trace_id = ?",
                (trace_hex, trace_hex),
            )

    # --- private -----------------------------------------------------------------------------

    def _assemble_oldest(self, db: sqlite3.Connection, now: float) -> int:
        row = db.execute(
            "SELECT trace_id FROM pending_traces ORDER BY first_arrival LIMIT 1"
        ).fetchone()
        if row is None:
            return 0
        _logger.warning(
            "spool %s holds %d unfinished traces (max_traces): handing trace %s over early, partial",
            self._name,
            self.max_traces,
            row[0],
        )
        self.assemble(db, row[0], partial=True, now=now)
        return 1


def fit(by_trace: SpansByTrace, room: int) -> int:
    """Keep, in arrival order, the spans that fit in `room` bytes; remove the rest from
    `by_trace` and return how many went."""
    rejected = 0
    for spans in by_trace.values():
        for span_hex, (text, _) in list(spans.items()):
            if len(text) <= room:
                room -= len(text)
            else:
                del spans[span_hex]
                rejected += 1
    return rejected


def _handed_over(db: sqlite3.Connection, trace_hex: str) -> bool:
    """Whether spans of this trace were handed over within the resend window."""
    row = db.execute("SELECT 1 FROM handed_over WHERE trace_id = ? LIMIT 1", (trace_hex,))
    return row.fetchone() is not None


def _stored_span_ids(
    db: sqlite3.Connection, table: str, trace_hex: str, span_ids: list[str]
) -> set[str]:
    stored: set[str] = set()
    for offset in range(0, len(span_ids), SQL_VARIABLES_PER_QUERY):
        chunk = span_ids[offset : offset + SQL_VARIABLES_PER_QUERY]
        rows = db.execute(
            f"SELECT span_id FROM {table} WHERE trace_id = ? AND span_id IN"
            f" ({','.join('?' * len(chunk))})",
            (trace_hex, *chunk),
        )
        stored.update(row[0] for row in rows)
    return stored
