"""The spool's outbox: finished traces waiting for delivery (due items, backoff, attempts), the
dead letters delivery gave up on, and the rows another spool file hands over when adopted.

Every function runs inside a transaction the `Spool` opened on its one connection, and keeps
the spool's `Tally` in step with the rows it writes.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from otel_bridge.otlp import trace_from_traces_data

if TYPE_CHECKING:
    from otel_bridge.langchain_views import FinishedTrace

__all__ = ["DeadLetter", "Outbox", "OutboxItem", "Tally"]

_logger = logging.getLogger("otel_bridge.spool")

# Stays far below SQLite's limit on bound variables in one statement.
SQL_VARIABLES_PER_QUERY = 500

# What adoption reads from another file and writes into this one, column for column.
_OUTBOX_COLUMNS = (
    "key, payload, bytes, span_count, partial, enqueued_at, attempts, first_attempt_at,"
    " next_attempt_at, last_error"
)
_DEAD_COLUMNS = "key, payload, bytes, span_count, partial, enqueued_at, attempts, reason, dead_at"


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A finished trace queued for delivery: `payload` is one OTLP `TracesData` message."""

    id: int
    key: str
    payload: bytes
    partial: bool
    enqueued_at: float
    attempts: int
    first_attempt_at: float | None

    def trace(self) -> FinishedTrace:
        """The trace decoded from its payload (raises on a payload that does not decode)."""
        return trace_from_traces_data(
            self.payload, partial=self.partial, trace_id=int(self.key, 16)
        )


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    key: str
    attempts: int
    reason: str
    dead_at: float


class Tally:
    """What the spool holds, counted as rows are written, so a bound is checked without a query:
    bytes held (dead letters included), of which dead letters, traces held (waiting, queued or
    dead), traces pending assembly, and ids in the resend window."""

    __slots__ = ("bytes", "dead_bytes", "handed", "held", "pending_traces")

    def __init__(self) -> None:
        self.bytes = self.dead_bytes = self.held = self.pending_traces = self.handed = 0

    def recount(self, db: sqlite3.Connection) -> None:
        self.dead_bytes = scalar(db, "SELECT COALESCE(SUM(bytes), 0) FROM dead_letters")
        self.bytes = (
            scalar(db, "SELECT COALESCE(SUM(bytes), 0) FROM pending_traces")
            + scalar(db, "SELECT COALESCE(SUM(bytes), 0) FROM outbox")
            + self.dead_bytes
        )
        self.pending_traces = scalar(db, "SELECT COUNT(*) FROM pending_traces")
        self.handed = scalar(db, "SELECT COUNT(*) FROM handed_over")
        self.held = (
            self.pending_traces
            + scalar(db, "SELECT COUNT(*) FROM outbox")
            + scalar(db, "SELECT COUNT(*) FROM dead_letters")
        )

    @property
    def live_bytes(self) -> int:
        """Bytes of spans and traces still to be delivered (everything but dead letters)."""
        return self.bytes - self.dead_bytes


class Outbox:
    """The outbox and dead-letter tables of one spool file."""

    def __init__(self, tally: Tally) -> None:
        self._tally = tally

    # --- in ----------------------------------------------------------------------------------

    def enqueue_many(
        self, db: sqlite3.Connection, rows: Sequence[tuple[str, bytes, int, int, bool]], now: float
    ) -> None:
        """Finished traces, each (key, payload, bytes, span count, partial), due now. Their
        bytes and places in `held` move with them from assembly, so the tally changes only
        where the caller says."""
        db.executemany(
            "INSERT INTO outbox (key, payload, bytes, span_count, partial, enqueued_at,"
            " next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(*row, now, now) for row in rows],
        )

    # --- delivery ----------------------------------------------------------------------------

    def due(
        self, db: sqlite3.Connection, now: float, limit: int, *, ignore_backoff: bool
    ) -> list[OutboxItem]:
        """Up to `limit` items whose next attempt is due, oldest first, at most one per key (a
        report is keyed by trace key, so two pieces of one trace never share a batch)."""
        rows = db.execute(
            "SELECT id, key, payload, partial, enqueued_at, attempts, first_attempt_at"
            " FROM outbox WHERE ? OR next_attempt_at <= ? ORDER BY id LIMIT ?",
            (ignore_backoff, now, limit * 2),
        ).fetchall()
        items: dict[str, OutboxItem] = {}
        for row in rows:
            if row[1] not in items and len(items) < limit:
                items[row[1]] = OutboxItem(row[0], row[1], row[2], bool(row[3]), *row[4:])
        return list(items.values())

    def next_due(self, db: sqlite3.Connection) -> float | None:
        row = db.execute("SELECT MIN(next_attempt_at) FROM outbox").fetchone()
        return None if row[0] is None else float(row[0])

    def mark_attempted(self, db: sqlite3.Connection, ids: Sequence[int], now: float) -> None:
        db.executemany(
            "UPDATE outbox SET attempts = attempts + 1,"
            " first_attempt_at = COALESCE(first_attempt_at, ?) WHERE id = ?",
            [(now, item_id) for item_id in ids],
        )

    def reschedule(
        self, db: sqlite3.Connection, item_id: int, next_attempt_at: float, reason: str
    ) -> None:
        db.execute(
            "UPDATE outbox SET next_attempt_at = ?, last_error = ? WHERE id = ?",
            (next_attempt_at, reason, item_id),
        )

    def delete(self, db: sqlite3.Connection, item_ids: Sequence[int]) -> None:
        rows = rows_where_in(db, "DELETE FROM outbox", "id", item_ids, "RETURNING bytes")
        self._tally.held -= len(rows)
        self._tally.bytes -= sum(row[0] for row in rows)

    def totals(self, db: sqlite3.Connection) -> tuple[int, int]:
        """Traces and spans queued for delivery."""
        row = db.execute("SELECT COUNT(*), COALESCE(SUM(span_count), 0) FROM outbox").fetchone()
        return int(row[0]), int(row[1])

    # --- dead letters ------------------------------------------------------------------------

    def dead_letter(self, db: sqlite3.Connection, item_id: int, reason: str, now: float) -> None:
        size = db.execute("SELECT bytes FROM outbox WHERE id = ?", (item_id,)).fetchone()
        if size is None:
            return
        db.execute(
            f"INSERT INTO dead_letters ({_DEAD_COLUMNS})"
            " SELECT key, payload, bytes, span_count, partial, enqueued_at, attempts, ?, ?"
            " FROM outbox WHERE id = ?",
            (reason, now, item_id),
        )
        self.delete(db, [item_id])
        # The bytes stay in the file, now as a dead letter.
        self._tally.held += 1
        self._tally.bytes += size[0]
        self._tally.dead_bytes += size[0]

    def dead_letters(self, db: sqlite3.Connection) -> list[DeadLetter]:
        rows = db.execute(
            "SELECT id, key, attempts, reason, dead_at FROM dead_letters ORDER BY id"
        ).fetchall()
        return [DeadLetter(*row) for row in rows]

    def requeue_dead_letters(self, db: sqlite3.Connection, now: float) -> int:
        """Move every dead letter back to the outbox, due now. Attempts are kept, so the sink's
        `already_delivered` check runs before the item is sent again."""
        rows = db.execute(
            "SELECT id, key, payload, bytes, span_count, partial, enqueued_at, attempts"
            " FROM dead_letters"
        ).fetchall()
        for dead_id, key, payload, size, span_count, partial, enqueued_at, attempts in rows:
            db.execute(
                "INSERT INTO outbox (key, payload, bytes, span_count, partial, enqueued_at,"
                " attempts, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, payload, size, span_count, partial, enqueued_at, attempts, now),
            )
            db.execute("DELETE FROM dead_letters WHERE id = ?", (dead_id,))
            self._tally.dead_bytes -= size
        return len(rows)

    def evict_dead_letters(self, db: sqlite3.Connection, needed: int, *, spool: str) -> int:
        """Free up to `needed` bytes by deleting the oldest dead letters: they already failed
        and are kept only for a human to replay, so they go before anything still deliverable.
        Returns the number of spans they held."""
        victims: list[int] = []
        freed = spans = 0
        oldest_first = db.execute(
            "SELECT id, span_count, bytes FROM dead_letters ORDER BY dead_at, id"
        )
        for dead_id, span_count, size in oldest_first:
            victims.append(dead_id)
            spans += span_count
            freed += size
            if freed >= needed:
                break
        oldest_first.close()
        for offset in range(0, len(victims), SQL_VARIABLES_PER_QUERY):
            chunk = victims[offset : offset + SQL_VARIABLES_PER_QUERY]
            db.execute(
                f"DELETE FROM dead_letters WHERE id IN ({','.join('?' * len(chunk))})", chunk
            )
        self._tally.bytes -= freed
        self._tally.dead_bytes -= freed
        self._tally.held -= len(victims)
        _logger.warning(
            "spool %s: discarded the %d oldest dead letter(s) (%d span(s), %d bytes) to make room"
            " under max_spool_bytes; they can no longer be replayed",
            spool,
            len(victims),
            spans,
            freed,
        )
        return spans

    def evict_oldest(self, db: sqlite3.Connection) -> tuple[int, int] | None:
        """Delete the oldest queued item: (its spans, its bytes), or None if the outbox is
        empty."""
        row = db.execute("SELECT id, span_count, bytes FROM outbox ORDER BY id LIMIT 1").fetchone()
        if row is None:
            return None
        self.delete(db, [row[0]])
        return int(row[1]), int(row[2])

    # --- adoption ----------------------------------------------------------------------------

    @staticmethod
    def read_for_adoption(
        source: sqlite3.Connection,
    ) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        """Every queued item and dead letter of another spool file, as `adopt` writes them."""
        outbox = source.execute(f"SELECT {_OUTBOX_COLUMNS} FROM outbox").fetchall()
        dead = source.execute(f"SELECT {_DEAD_COLUMNS} FROM dead_letters").fetchall()
        return outbox, dead

    @staticmethod
    def adopt(
        db: sqlite3.Connection,
        outbox: Sequence[tuple[object, ...]],
        dead: Sequence[tuple[object, ...]],
    ) -> None:
        """Write another file's items here (the caller recounts the tally). Marked attempted:
        the sink's already_delivered check runs before sending, in case a crash between this
        commit and the other file's deletion repeats the adoption."""
        db.executemany(
            f"INSERT INTO outbox ({_OUTBOX_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, MAX(?, 1), ?, ?, ?)",
            outbox,
        )
        db.executemany(
            f"INSERT INTO dead_letters ({_DEAD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            dead,
        )


def rows_where_in(
    db: sqlite3.Connection,
    statement: str,
    column: str,
    values: Iterable[object],
    returning: str = "",
) -> list[tuple[Any, ...]]:
    """`statement WHERE column IN (values) returning`, run in chunks SQLite's variable limit
    allows, and every row it returned (read to the end: a RETURNING statement left unfinished
    would keep the transaction open)."""
    values = list(values)
    rows: list[tuple[Any, ...]] = []
    for offset in range(0, len(values), SQL_VARIABLES_PER_QUERY):
        chunk = values[offset : offset + SQL_VARIABLES_PER_QUERY]
        marks = ",".join("?" * len(chunk))
        rows += db.execute(f"{statement} WHERE {column} IN ({marks}) {returning}", chunk)
    return rows


def scalar(db: sqlite3.Connection, sql: str, *params: object) -> int:
    row = db.execute(sql, params).fetchone()
    return 0 if row is None or row[0] is None else int(row[0])
