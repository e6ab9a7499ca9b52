"""The spool's trace assembly: spans waiting, grouped by trace, until their trace is finished,
then moved whole to the outbox; and the resend window, the ids of spans moved lately, so a copy
an OTLP client sends again is recognised and not delivered twice.

Every function runs inside a transaction the `Spool` opened on its one connection, so a trace
moves from pending to the outbox in one transaction, and keeps the spool's `Tally` in step.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from otel_bridge import otlp
from otel_bridge.otlp_wire import (
    FLAGS_IS_REMOTE,
    encode_readable_with_ids,
    length_delimited,
    resource_part_of,
    scope_part_of,
    span_field,
    split_span_fields,
    traces_data,
)
from otel_bridge.spool_outbox import Outbox, Tally, rows_where_in, scalar

if TYPE_CHECKING:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["AddResult", "AssembleResult", "SpanBatch", "SpansByTrace", "TraceAssembly"]

_logger = logging.getLogger("otel_bridge.spool")

# How long the ids of spans handed over to the outbox are kept to recognise resent copies:
# longer than an OTLP exporter keeps retrying one request (the SDKs back off up to ~64 s).
RESEND_WINDOW = 120.0

# A batch's new spans: trace id -> span id -> (scope row id, `Span` bytes, is a local root).
SpansByTrace = dict[bytes, dict[bytes, tuple[int, bytes, bool]]]

# Once this many resource/scope pairs are known, those no pending span uses are deleted (then
# again at twice the number left).
_SCOPES_TIDY_FROM = 256


@dataclass(slots=True)
class SpanBatch:
    """Spans for `Spool.add`, as OTLP protobuf. `scopes` holds each distinct (resource part,
    scope part) pair (see otlp_wire); every span is (trace id, span id, is a local root, index
    of its pair in `scopes`, `Span` bytes), ids as 16 and 8 big-endian bytes."""

    scopes: list[tuple[bytes, bytes]] = field(default_factory=list)
    spans: list[tuple[bytes, bytes, bool, int, bytes]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.spans)

    @classmethod
    def from_readable(
        cls, spans: Iterable[ReadableSpan], malformed: Callable[[object, Exception], None]
    ) -> SpanBatch:
        """SDK spans encoded as OTLP protobuf; a span that cannot be is passed to `malformed`
        and left out."""
        batch = cls()
        scopes: dict[tuple[int, int], int] = {}
        append = batch.spans.append
        for span in spans:
            try:
                resource = span.resource
                scope = span.instrumentation_scope
                key = (id(resource), id(scope))
                index = scopes.get(key)
                if index is None:
                    index = scopes[key] = len(batch.scopes)
                    batch.scopes.append((resource_part_of(resource), scope_part_of(scope)))
                trace_id, span_id, is_root, message = encode_readable_with_ids(span)
                append((trace_id, span_id, is_root, index, message))
            except Exception as error:
                malformed(span, error)
        return batch

    @classmethod
    def from_request(
        cls, request: ExportTraceServiceRequest, *, ids_checked: bool = False
    ) -> SpanBatch:
        """The spans of a decoded OTLP request, each re-serialized alone (spans with invalid
        ids are left out: the receiver rejected them already; `ids_checked`: none is left)."""
        check = not ids_checked
        batch = cls()
        append = batch.spans.append
        for resource_spans in request.resource_spans:
            resource = length_delimited(b"\x0a", resource_spans.resource.SerializeToString())
            if resource_spans.schema_url:
                resource += length_delimited(b"\x1a", resource_spans.schema_url.encode())
            for scope_spans in resource_spans.scope_spans:
                scope = length_delimited(b"\x0a", scope_spans.scope.SerializeToString())
                if scope_spans.schema_url:
                    scope += length_delimited(b"\x1a", scope_spans.schema_url.encode())
                index = len(batch.scopes)
                batch.scopes.append((resource, scope))
                for span in scope_spans.spans:
                    if check and otlp.invalid_ids(span):
                        continue
                    parent = span.parent_span_id
                    append(
                        (
                            span.trace_id,
                            span.span_id,
                            not any(parent) or bool(span.flags & FLAGS_IS_REMOTE),
                            index,
                            span.SerializeToString(),
                        )
                    )
        return batch


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
    """The pending_chunks, pending_traces and handed_over tables of one spool file."""

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
        # The scopes table, both ways: a batch's pairs are looked up here, not in the file.
        self._scope_ids: dict[tuple[bytes, bytes], int] = {}
        self._scope_pairs: dict[int, tuple[bytes, bytes]] = {}
        self._tidy_scopes_at = _SCOPES_TIDY_FROM
        # What new_spans found for the batch that store then writes (same transaction).
        self._pending_counts: dict[bytes, int] = {}
        self._handed_traces: set[bytes] = set()

    def load(self, db: sqlite3.Connection) -> None:
        """Read the scopes table again (at open, and after a rollback may have undone rows
        the caches hold)."""
        self._scope_ids.clear()
        self._scope_pairs.clear()
        for scope_id, resource, scope in db.execute("SELECT id, resource, scope FROM scopes"):
            self._scope_ids[(resource, scope)] = scope_id
            self._scope_pairs[scope_id] = (resource, scope)

    # --- spans in ----------------------------------------------------------------------------

    def new_spans(self, db: sqlite3.Connection, batch: SpanBatch) -> tuple[SpansByTrace, int]:
        """The batch's spans by trace without those this spool holds or handed over lately,
        and how many spans were dropped as duplicates."""
        scope_ids = [self._scope_id(db, resource, scope) for resource, scope in batch.scopes]
        by_trace: SpansByTrace = {}
        duplicates = 0
        for trace_id, span_id, is_root, scope_index, span in batch.spans:
            spans = by_trace.get(trace_id)
            if spans is None:
                spans = by_trace[trace_id] = {}
            elif span_id in spans:
                duplicates += 1
                continue
            spans[span_id] = (scope_ids[scope_index], span, is_root)
        # A resent span (an OTLP client retrying a request we did store) is either still
        # pending or was handed over in the last RESEND_WINDOW seconds; only spans of traces
        # the spool has seen can be. Three queries for the batch.
        pending = dict(_rows_for(db, "SELECT trace_id, span_count FROM pending_traces", by_trace))
        stored = _rows_for(db, "SELECT trace_id, span_ids FROM handed_over", by_trace)
        if pending:
            stored += _rows_for(db, "SELECT trace_id, span_ids FROM pending_chunks", pending)
        for trace_id, span_ids in stored:
            spans = by_trace[trace_id]
            for offset in range(0, len(span_ids), 8):
                if spans.pop(span_ids[offset : offset + 8], None) is not None:
                    duplicates += 1
        self._pending_counts = pending
        self._handed_traces = {trace_id for trace_id, _ in stored if trace_id not in pending}
        return by_trace, duplicates

    def store(self, db: sqlite3.Connection, by_trace: SpansByTrace, now: float) -> StoreResult:
        """Add the spans to their pending traces, one chunk per trace and scope; a trace past
        a bound goes over early. Runs right after `new_spans`, in the same transaction."""
        tally = self._tally
        pending = self._pending_counts
        accepted = early = roots = 0
        chunks = []
        updates = []
        inserts = []
        totals = []
        for trace_id, spans in by_trace.items():
            if not spans:
                continue
            by_scope: dict[int, tuple[list[bytes], list[bytes]]] = {}
            size = 0
            has_root = False
            for span_id, (scope, span, is_root) in spans.items():
                ids, fields = by_scope.get(scope) or by_scope.setdefault(scope, ([], []))
                ids.append(span_id)
                fields.append(span_field(span))
                size += len(span)
                has_root = has_root or is_root
            for scope, (ids, fields) in by_scope.items():
                chunks.append((trace_id, scope, b"".join(ids), b"".join(fields)))
            count = len(spans)
            accepted += count
            roots += has_root
            tally.bytes += size
            # A late piece of a trace already handed over (a retried request whose root went
            # in an earlier attempt, or a span that ended after its root): its root will not
            # come again, so it goes after the grace period, not max_trace_age later.
            root_arrival = now if has_root or trace_id in self._handed_traces else None
            before = pending.get(trace_id)
            if before is None:
                inserts.append((trace_id, now, root_arrival, count, size))
                totals.append((trace_id, count))
            else:
                updates.append((count, size, root_arrival, trace_id))
                totals.append((trace_id, before + count))
        db.executemany(
            "INSERT INTO pending_chunks (trace_id, scope, span_ids, spans) VALUES (?, ?, ?, ?)",
            chunks,
        )
        if updates:
            db.executemany(
                "UPDATE pending_traces SET span_count = span_count + ?, bytes = bytes + ?,"
                " root_arrival = COALESCE(?, root_arrival) WHERE trace_id = ?",
                updates,
            )
        insert = (
            "INSERT INTO pending_traces (trace_id, first_arrival, root_arrival, span_count, bytes)"
            " VALUES (?, ?, ?, ?, ?)"
        )
        if tally.pending_traces + len(inserts) <= self.max_traces:
            db.executemany(insert, inserts)
            tally.pending_traces += len(inserts)
        else:
            for row in inserts:
                if tally.pending_traces >= self.max_traces:
                    early += self._assemble_oldest(db, now)
                db.execute(insert, row)
                tally.pending_traces += 1
        tally.held += len(inserts)
        for trace_id, total in totals:
            if total >= self.max_spans_per_trace:
                _logger.warning(
                    "spool %s: trace %s reached max_spans_per_trace=%d; handing its %d span(s)"
                    " over early, partial (later spans follow as another piece)",
                    self._name,
                    trace_id.hex(),
                    self.max_spans_per_trace,
                    total,
                )
                self.assemble(db, trace_id, partial=True, now=now)
                early += 1
        if early:
            self.trim_handed_over(db)
        return StoreResult(accepted, early, roots, len(inserts))

    # --- pending -> outbox -------------------------------------------------------------------

    def ready(
        self,
        db: sqlite3.Connection,
        now: float,
        *,
        grace_period: float,
        max_trace_age: float,
        flush: bool,
    ) -> list[bytes]:
        """Traces whose local root arrived `grace_period` ago (any time when flushing), or
        whose first span arrived `max_trace_age` ago; forgets resend ids past the window."""
        window_start = now - RESEND_WINDOW
        self._tally.handed -= _id_count(db, "handed_over WHERE at < ?", window_start)
        db.execute("DELETE FROM handed_over WHERE at < ?", (window_start,))
        if len(self._scope_ids) >= self._tidy_scopes_at:
            self._tidy_scopes(db)
        rows = db.execute(
            "SELECT trace_id FROM pending_traces WHERE"
            " (root_arrival IS NOT NULL AND (? OR root_arrival <= ?)) OR first_arrival <= ?",
            (flush, now - grace_period, now - max_trace_age),
        ).fetchall()
        return [row[0] for row in rows]

    def assemble_pending(
        self, db: sqlite3.Connection, trace_ids: Sequence[bytes], now: float
    ) -> tuple[int, int]:
        """Move those of the traces still pending (a span added since may have handed one over
        early) to the outbox, in the order given; returns how many went complete and how many
        partial (their root never came)."""
        rows = _rows_for(db, "SELECT trace_id, root_arrival, bytes FROM pending_traces", trace_ids)
        found = {trace_id: (root_arrival is None, size) for trace_id, root_arrival, size in rows}
        traces = {t: found[t] for t in trace_ids if t in found}
        self._move_to_outbox(db, traces, now)
        partial = sum(is_partial for is_partial, _ in traces.values())
        return len(traces) - partial, partial

    def assemble(
        self, db: sqlite3.Connection, trace_id: bytes, *, partial: bool, now: float
    ) -> None:
        """Move one pending trace to the outbox (`partial`: whatever its root's state)."""
        size = scalar(db, "SELECT bytes FROM pending_traces WHERE trace_id = ?", trace_id)
        self._move_to_outbox(db, {trace_id: (partial, size)}, now)

    def _move_to_outbox(
        self, db: sqlite3.Connection, traces: dict[bytes, tuple[bool, int]], now: float
    ) -> None:
        """Move pending traces (trace id -> (partial, bytes)) to the outbox, each as one
        `TracesData` message joined from its stored pieces without decoding them. A handful of
        statements for all of them, not a handful a trace: the spool's lock, which `export()`
        waits for, is held for less."""
        if not traces:
            return
        chunks = _rows_for(
            db, "SELECT id, trace_id, scope, span_ids, spans FROM pending_chunks", traces
        )
        chunks.sort()  # in the order stored
        by_trace: dict[bytes, list[tuple[int, bytes, bytes]]] = {}
        for _, trace_id, scope, span_ids, spans in chunks:
            by_trace.setdefault(trace_id, []).append((scope, span_ids, spans))
        # A later piece of a trace handed over before is partial whatever its root's state.
        handed = {
            row[0] for row in _rows_for(db, "SELECT DISTINCT trace_id FROM handed_over", traces)
        }
        handed_rows = []
        outbox_rows = []
        for trace_id, (partial, size) in traces.items():
            by_scope: dict[int, list[bytes]] = {}
            span_ids = []
            for scope, ids, spans in by_trace.get(trace_id, ()):
                by_scope.setdefault(scope, []).append(spans)
                span_ids.append(ids)
            by_resource: dict[bytes, list[tuple[bytes, bytes]]] = {}
            for scope, pieces in by_scope.items():
                resource_part, scope_part = self._scope_parts(db, scope)
                by_resource.setdefault(resource_part, []).append((scope_part, b"".join(pieces)))
            ids = b"".join(span_ids)
            handed_rows.append((trace_id, ids, now))
            self._tally.handed += len(ids) // 8
            outbox_rows.append(
                (
                    trace_id.hex(),
                    traces_data(by_resource.items()),
                    size,
                    len(ids) // 8,
                    partial or trace_id in handed,
                )
            )
        db.executemany(
            "INSERT INTO handed_over (trace_id, span_ids, at) VALUES (?, ?, ?)", handed_rows
        )
        _rows_for(db, "DELETE FROM pending_chunks", traces)
        _rows_for(db, "DELETE FROM pending_traces", traces)
        self._tally.pending_traces -= len(traces)
        self._outbox.enqueue_many(db, outbox_rows, now)

    def trim_handed_over(self, db: sqlite3.Connection) -> None:
        """Keep the resend window within its share of the limit, oldest traces out first."""
        excess = self._tally.handed - self._handed_keep
        if excess <= 0:
            return
        victims = []
        oldest_first = db.execute(
            "SELECT id, LENGTH(span_ids) / 8 FROM handed_over ORDER BY at, id"
        )
        for row_id, count in oldest_first:
            victims.append(row_id)
            excess -= count
            self._tally.handed -= count
            if excess <= 0:
                break
        oldest_first.close()
        rows_where_in(db, "DELETE FROM handed_over", "id", victims)

    # --- state -------------------------------------------------------------------------------

    def counts(self, db: sqlite3.Connection) -> tuple[int, int]:
        """Pending traces and pending spans."""
        return (
            scalar(db, "SELECT COUNT(*) FROM pending_traces"),
            _id_count(db, "pending_chunks"),
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
        db.execute("DELETE FROM pending_chunks WHERE trace_id = ?", (trace[0],))
        db.execute("DELETE FROM pending_traces WHERE trace_id = ?", (trace[0],))
        self._tally.pending_traces -= 1
        self._tally.held -= 1
        self._tally.bytes -= trace[2]
        return int(trace[1]), int(trace[2])

    # --- adoption ----------------------------------------------------------------------------

    @staticmethod
    def read_for_adoption(
        source: sqlite3.Connection,
    ) -> tuple[list[_AdoptedChunk], list[tuple[bytes, float, float | None]]]:
        """Another spool file's pending chunks (trace id, resource part, scope part, span ids,
        spans) and traces. Spans whose trace row was lost (a damaged file salvaged row by row)
        are still worth delivering: as traces first seen at time 0, they go at the next step,
        partial."""
        chunks = source.execute(
            "SELECT c.trace_id, COALESCE(s.resource, X''), COALESCE(s.scope, X''), c.span_ids,"
            " c.spans FROM pending_chunks AS c LEFT JOIN scopes AS s ON s.id = c.scope"
            " ORDER BY c.id"
        ).fetchall()
        traces = source.execute(
            "SELECT trace_id, first_arrival, root_arrival FROM pending_traces"
        ).fetchall()
        known = {trace_id for trace_id, _, _ in traces}
        traces += [(t, 0.0, None) for t in sorted({c[0] for c in chunks} - known)]
        return chunks, traces

    def adopt(
        self,
        db: sqlite3.Connection,
        chunks: Sequence[_AdoptedChunk],
        traces: Sequence[tuple[bytes, float, float | None]],
    ) -> None:
        """Write another file's pending spans and traces here, but spans already pending here
        (an adoption repeated after a crash); the caller recounts the tally."""
        held: dict[bytes, set[bytes]] = {}
        for trace_id, span_ids in _rows_for(
            db, "SELECT trace_id, span_ids FROM pending_chunks", {c[0]: None for c in chunks}
        ):
            held.setdefault(trace_id, set()).update(_ids(span_ids))
        for trace_id, resource, scope, span_ids, spans in chunks:
            known = held.setdefault(trace_id, set())
            ids = _ids(span_ids)
            if known.intersection(ids):
                fields = split_span_fields(spans)
                keep = [(i, f) for i, f in zip(ids, fields, strict=False) if i not in known]
                span_ids = b"".join(i for i, _ in keep)
                spans = b"".join(f for _, f in keep)
                ids = [i for i, _ in keep]
            if not ids:
                continue
            known.update(ids)
            db.execute(
                "INSERT INTO pending_chunks (trace_id, scope, span_ids, spans) VALUES (?, ?, ?, ?)",
                (trace_id, self._scope_id(db, resource, scope), span_ids, spans),
            )
        for trace_id, first_arrival, root_arrival in traces:
            db.execute(
                "INSERT INTO pending_traces"
                " (trace_id, first_arrival, root_arrival, span_count, bytes)"
                " VALUES (?, ?, ?, 0, 0) ON CONFLICT (trace_id) DO UPDATE SET"
                " first_arrival = MIN(first_arrival, excluded.first_arrival),"
                " root_arrival = COALESCE(root_arrival, excluded.root_arrival)",
                (trace_id, first_arrival, root_arrival),
            )
            recount_trace(db, trace_id)

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
            row[0].hex(),
        )
        self.assemble(db, row[0], partial=True, now=now)
        return 1

    def _scope_id(self, db: sqlite3.Connection, resource: bytes, scope: bytes) -> int:
        key = (resource, scope)
        scope_id = self._scope_ids.get(key)
        if scope_id is None:
            db.execute("INSERT OR IGNORE INTO scopes (resource, scope) VALUES (?, ?)", key)
            scope_id = scalar(
                db, "SELECT id FROM scopes WHERE resource = ? AND scope = ?", resource, scope
            )
            self._scope_ids[key] = scope_id
            self._scope_pairs[scope_id] = key
        return scope_id

    def _scope_parts(self, db: sqlite3.Connection, scope_id: int) -> tuple[bytes, bytes]:
        pair = self._scope_pairs.get(scope_id)
        if pair is None:
            row = db.execute(
                "SELECT resource, scope FROM scopes WHERE id = ?", (scope_id,)
            ).fetchone()
            # A row a damaged file lost: the spans go without their resource and scope.
            pair = (bytes(row[0]), bytes(row[1])) if row is not None else (b"", b"")
        return pair

    def _tidy_scopes(self, db: sqlite3.Connection) -> None:
        """Delete the resource/scope pairs no pending span uses any more (a receiver whose
        clients each send their own resource would otherwise collect them for good)."""
        db.execute("DELETE FROM scopes WHERE id NOT IN (SELECT DISTINCT scope FROM pending_chunks)")
        self.load(db)
        self._tidy_scopes_at = max(_SCOPES_TIDY_FROM, 2 * len(self._scope_ids))


# A pending chunk as adoption carries it: trace id, resource part, scope part, span ids, spans.
_AdoptedChunk = tuple[bytes, bytes, bytes, bytes, bytes]


def recount_trace(db: sqlite3.Connection, trace_id: bytes) -> None:
    """Set a pending trace's span count and bytes from its chunks."""
    count, size = 0, 0
    for span_ids, spans in db.execute(
        "SELECT span_ids, spans FROM pending_chunks WHERE trace_id = ?", (trace_id,)
    ):
        count += len(span_ids) // 8
        size += sum(len(field) for field in split_span_fields(spans, payload_only=True))
    db.execute(
        "UPDATE pending_traces SET span_count = ?, bytes = ? WHERE trace_id = ?",
        (count, size, trace_id),
    )


def fit(by_trace: SpansByTrace, room: int) -> int:
    """Keep, in arrival order, the spans that fit in `room` bytes; remove the rest from
    `by_trace` and return how many went."""
    rejected = 0
    for spans in by_trace.values():
        for span_id, (_, span, _) in list(spans.items()):
            if len(span) <= room:
                room -= len(span)
            else:
                del spans[span_id]
                rejected += 1
    return rejected


def _ids(span_ids: bytes) -> list[bytes]:
    return [span_ids[offset : offset + 8] for offset in range(0, len(span_ids), 8)]


def _id_count(db: sqlite3.Connection, where: str, *params: object) -> int:
    return scalar(db, f"SELECT COALESCE(SUM(LENGTH(span_ids)), 0) / 8 FROM {where}", *params)


def _rows_for(
    db: sqlite3.Connection, statement: str, trace_ids: Iterable[bytes]
) -> list[tuple[Any, ...]]:
    """`statement ... WHERE trace_id IN (trace_ids)` in chunks, and the rows it returned."""
    return rows_where_in(db, statement, "trace_id", trace_ids)
