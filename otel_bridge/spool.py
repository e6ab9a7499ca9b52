"""The durable per-sink queue: a SQLite file (WAL) holding spans awaiting assembly, finished
traces awaiting delivery (the outbox) and dead letters, so a crash or an outage loses nothing.

Tables: `pending_chunks` + `pending_traces` (spans grouped by trace id until the trace is
finished), `outbox` (one row per finished trace, an OTLP `TracesData` message), `dead_letters`,
`handed_over` (ids of recently assembled spans, so a resent copy is not delivered twice) and
`meta`, which records the destination every item in the file was accepted for: a spool holds
one destination's items, and opening it for another destination fails (`SpoolDestinationError`),
so nothing queued for one project, run or server is ever delivered to another.
Every method is one transaction under one lock, so `export()` threads and the delivery worker
can share the spool; a second process opening the same file is kept out by a file lock
(spool_lock). This module opens the file, bounds it on disk and admits spans; trace assembly
(spool_assembly) and the outbox (spool_outbox) work on its one connection, inside its
transactions.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from otel_bridge.spool_assembly import AddResult, AssembleResult, SpanBatch, TraceAssembly, fit
from otel_bridge.spool_files import HELD_SUFFIX, SpoolFile, open_checked, private_directory
from otel_bridge.spool_lock import (
    FairLock,
    SpoolLock,
    SpoolLockedError,
    abandon_connection,
    spool_in_use,
)
from otel_bridge.spool_outbox import DeadLetter, Outbox, OutboxItem, Tally, scalar
from otel_bridge.spool_upgrade import SpoolFormatError, upgrade

__all__ = [
    "AddResult",
    "AssembleResult",
    "DeadLetter",
    "OutboxItem",
    "SpanBatch",
    "Spool",
    "SpoolClosedError",
    "SpoolCounts",
    "SpoolDestinationError",
    "SpoolFormatError",
    "SpoolLockedError",
    "WhenFull",
    "spool_in_use",
    "spool_path",
]

_logger = logging.getLogger(__name__)

WhenFull = Literal["drop_newest", "drop_oldest"]

# A batch that would overflow the spool is rejected (drop_newest), so the bytes in use rarely
# reach the limit exactly; reporting "full" a little earlier lets the receiver push back
# (429/503) before it has to reject anything.
_FULL_FRACTION = 0.95
# Traces moved from pending to the outbox per transaction (see assemble_ready). Each touches
# pages all over three random-keyed tables, and a transaction's pages all go to the WAL: 128
# traces a transaction wrote up to 2.9 MiB of WAL at an 8 MiB limit, 32 write about a quarter
# of that, at the same throughput (bench/spool_limit.py).
_ASSEMBLE_PER_TRANSACTION = 32

# Files SQLite (WAL) and our lock keep beside a spool file.
_SIDE_FILES = ("-wal", "-shm", ".lock", HELD_SUFFIX)

# SQLite checkpoints the WAL every N pages and truncates it to N pages afterwards: N is a
# sixteenth of max_bytes, between 64 pages and SQLite's default of 1000 (~4 MiB). A write
# transaction past a checkpoint (assembling many traces at once) can take the WAL well past it
# (measured: 7.5 MiB with 1000 pages, 4.9 MiB with 512, under bench/spool_limit.py): the spool
# keeps three times N pages of room for it, at least _WAL_ROOM_MIN, at most a third of the limit,
# to begin with (then the largest WAL seen, see _DiskHeadroom), and checkpoints with truncation
# after a commit that took the WAL past that room.
_WAL_PAGES_MIN, _WAL_PAGES_MAX = 64, 1000
# One transaction alone can write a few MiB to the WAL (measured 3.5 MiB at a 16 MiB limit).
_WAL_ROOM_MIN = 4 * 1024 * 1024

# Below this many bytes held, the spool's byte count is its budget as is; above, the budget is
# scaled by what the database really takes per byte held (pages, indexes, the resend window)
# and leaves room for the WAL, so `max_bytes` bounds every file of the spool together.
_DISK_FACTOR_FROM_BYTES = 1024 * 1024
_MAX_DISK_FACTOR = 8.0

# What one span id of the resend window (`handed_over`) takes in the database, with its share of
# its trace's row and index entries (a row per trace: ~20 bytes an id on 5-span traces, ~90 on
# 1-span traces; the larger counts). The window is not held data, yet it takes pages: at a few
# thousand spans a second its 120 s are MiBs. It counts against the limit, and may take at most a
# quarter of it: past that, the oldest ids go first (a resend older than that is still caught by
# the sink's already_delivered check, where the sink has one).
_HANDED_ROW_BYTES = 96
_HANDED_SHARE = 0.25
# Like the disk factor, the window counts once it is large enough to matter (1 MiB), and it
# keeps at least this many ids whatever the limit.
_HANDED_MIN_ROWS = _DISK_FACTOR_FROM_BYTES // _HANDED_ROW_BYTES

# The disk itself: the spool's files may take what they take now plus the filesystem's free
# space, less a reserve (a fiftieth of the filesystem, between these bounds), when that is less
# than max_bytes. The reserve is for everyone else on the disk, and for SQLite: a WAL that
# filled the disk cannot be checkpointed (the database would have to grow) nor take the delete
# of a delivered trace, so delivery would stall for good (seen on a 3 MiB tmpfs: 26 traces
# accepted, then the WAL at 3 MiB and nothing delivered, before or after a restart). Read again
# at every write and, while full, at most once a second.
_DISK_RESERVE_MIN = 512 * 1024
_DISK_RESERVE_MAX = 64 * 1024 * 1024
_DISK_REREAD_SECONDS = 1.0

# Bumped on any incompatible change of the tables below (stored in PRAGMA user_version). A
# spool of an earlier format is migrated when opened (spool_upgrade).
_SCHEMA_VERSION = 2

# Spans are stored as OTLP protobuf, grouped per trace: a `pending_chunks` row holds the spans
# of one trace and one resource/scope that came in one batch, as the encoded `spans` field of a
# `ScopeSpans` message, with their span ids (8 bytes each) for recognising resent copies; the
# resource and scope are kept once in `scopes` (the other fields of the `ResourceSpans` and
# `ScopeSpans` they came in). A finished trace in the outbox is one `TracesData` message. A row
# per span cost 5-8 us of SQLite per span (a row and an index entry each, their pages all
# rewritten in the WAL); a row per trace and batch costs a fifth of that on a 5-span trace.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS scopes (
    id INTEGER PRIMARY KEY,
    resource BLOB NOT NULL,
    scope BLOB NOT NULL,
    UNIQUE (resource, scope)
);
CREATE TABLE IF NOT EXISTS pending_chunks (
    id INTEGER PRIMARY KEY,
    trace_id BLOB NOT NULL,
    scope INTEGER NOT NULL,
    span_ids BLOB NOT NULL,
    spans BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS pending_chunks_trace ON pending_chunks (trace_id);
CREATE TABLE IF NOT EXISTS pending_traces (
    trace_id BLOB PRIMARY KEY,
    first_arrival REAL NOT NULL,
    root_arrival REAL,
    span_count INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS pending_traces_first ON pending_traces (first_arrival);
CREATE INDEX IF NOT EXISTS pending_traces_root ON pending_traces (root_arrival);
CREATE TABLE IF NOT EXISTS handed_over (
    id INTEGER PRIMARY KEY,
    trace_id BLOB NOT NULL,
    span_ids BLOB NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS handed_over_trace ON handed_over (trace_id);
CREATE INDEX IF NOT EXISTS handed_over_at ON handed_over (at);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    payload BLOB NOT NULL,
    bytes INTEGER NOT NULL,
    span_count INTEGER NOT NULL,
    partial INTEGER NOT NULL,
    enqueued_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    first_attempt_at REAL,
    next_attempt_at REAL NOT NULL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (next_attempt_at, id);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    payload BLOB NOT NULL,
    bytes INTEGER NOT NULL,
    span_count INTEGER NOT NULL,
    partial INTEGER NOT NULL,
    enqueued_at REAL NOT NULL,
    attempts INTEGER NOT NULL,
    reason TEXT NOT NULL,
    dead_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_dead_at ON dead_letters (dead_at, id);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"""


class SpoolDestinationError(RuntimeError):
    """The spool file holds items accepted for another destination than the one asked for."""

    def __init__(self, path: Path, recorded: Mapping[str, str], wanted: Mapping[str, str]):
        super().__init__(
            f"spool {path} holds items for {describe_destination(recorded)},"
            f" not for {describe_destination(wanted)}"
        )


def destination_key(destination: Mapping[str, str]) -> str:
    """The canonical text of a destination (what the spool records and compares)."""
    return json.dumps(dict(destination), sort_keys=True, separators=(",", ":"))


def describe_destination(destination: Mapping[str, str]) -> str:
    """`project=A url=http://...`, or "the sink's only destination" for an empty identity."""
    if not destination:
        return "the sink's only destination"
    return " ".join(f"{name}={value}" for name, value in sorted(destination.items()))


class SpoolClosedError(RuntimeError):
    """The spool was closed (exporter shut down) while a caller still used it."""


def spool_path(directory: str | os.PathLike[str], name: str) -> Path:
    """The SQLite file of the spool called `name` in `directory`."""
    return Path(directory) / f"{name}.sqlite3"


@dataclass(frozen=True, slots=True)
class SpoolCounts:
    pending_traces: int
    pending_spans: int
    outbox: int
    dead_letters: int
    bytes_used: int


class Spool:
    """One sink's durable queue. Times are the caller's clock (seconds since the epoch)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_bytes: int,
        max_traces: int,
        max_spans_per_trace: int,
        when_full: WhenFull = "drop_newest",
        destination: Mapping[str, str] | None = None,
    ) -> None:
        if when_full not in ("drop_newest", "drop_oldest"):
            raise ValueError(f"when_full must be 'drop_newest' or 'drop_oldest', not {when_full!r}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_traces = max_traces
        self.max_spans_per_trace = max_spans_per_trace
        self.when_full: WhenFull = when_full
        # Spans carry prompts and answers: a directory we create is readable by its owner only.
        private_directory(self.path.parent)
        self._lock_file = SpoolLock(self.path)
        self._lock = FairLock()
        # Checked, private, and moved aside if damaged (a fresh file then takes its place).
        try:
            self._file: SpoolFile = open_checked(self.path)
        except BaseException:
            # A full or read-only disk: the exporter opens it again later, under this name.
            self._lock_file.close()
            raise
        self._db: sqlite3.Connection | None = self._file.db
        try:
            upgrade(self._db, self.path, _SCHEMA_VERSION, _SCHEMA)
        except BaseException:
            self._let_go()
            raise
        self._page_size = scalar(self._db, "PRAGMA page_size")
        self._wal_path = self.path.with_name(self.path.name + "-wal")
        # max_bytes, or less when the disk has less room (see _DISK_RESERVE_MIN).
        self._limit_read_at = 0.0
        self._limit = self._disk_limit()
        limit = self._limit
        wal_pages = max(_WAL_PAGES_MIN, min(_WAL_PAGES_MAX, limit // 16 // max(self._page_size, 1)))
        self._db.execute(f"PRAGMA wal_autocheckpoint = {wal_pages}")
        self._db.execute(f"PRAGMA journal_size_limit = {wal_pages * self._page_size}")
        # The resend window's rows at most (see _HANDED_SHARE).
        self._handed_keep = max(
            min(_HANDED_MIN_ROWS, self._measured_from() // _HANDED_ROW_BYTES),
            int(limit * _HANDED_SHARE) // _HANDED_ROW_BYTES,
        )
        self._headroom = _DiskHeadroom(
            wal_room=min(max(3 * wal_pages * self._page_size, _WAL_ROOM_MIN), limit // 3)
        )
        # What the spool may hold so that its files fit in max_bytes, once it holds enough for
        # that to be measured (None below; see _measure_disk).
        self._disk_budget: int | None = None
        self.destination = self._claim(self._db, None if destination is None else dict(destination))
        self._tally = Tally()
        self._outbox = Outbox(self._tally)
        self._assembly = TraceAssembly(
            self._tally,
            self._outbox,
            name=self.path.name,
            max_traces=max_traces,
            max_spans_per_trace=max_spans_per_trace,
            handed_keep=self._handed_keep,
        )
        self._assembly.load(self._db)
        self._tally.recount(self._db)
        self._file.note_held(self._tally.held)
        self._rejected_since_drain = False

    # --- state ----------------------------------------------------------------------------------

    @property
    def bytes_used(self) -> int:
        """Bytes of everything held, dead letters included: what `max_bytes` bounds."""
        return self._tally.bytes

    @property
    def disk_limit(self) -> int:
        """What the spool's files may take now: `max_bytes`, or less when the disk has less
        room."""
        return self._limit

    @property
    def full(self) -> bool:
        # Dead letters give way to new spans before anything is rejected, so only the bytes
        # still to be delivered push back; counting them would throttle a receiver for good
        # once a sink that rejects everything has filled the spool with dead letters.
        if self._rejected_since_drain or self._tally.live_bytes >= self._budget() * _FULL_FRACTION:
            # A receiver sends nothing while the spool is full, so the disk's room is read here
            # too: space others freed counts without waiting for a write.
            if time.monotonic() - self._limit_read_at < _DISK_REREAD_SECONDS:
                return True
            self._limit = self._disk_limit()
            return self._tally.live_bytes >= self._budget() * _FULL_FRACTION
        return False

    @property
    def closed(self) -> bool:
        return self._db is None

    def counts(self) -> SpoolCounts:
        with self._transaction() as db:
            pending_traces, pending_spans = self._assembly.counts(db)
            return SpoolCounts(
                pending_traces=pending_traces,
                pending_spans=pending_spans,
                outbox=self._outbox.totals(db)[0],
                dead_letters=scalar(db, "SELECT COUNT(*) FROM dead_letters"),
                bytes_used=self._tally.bytes,
            )

    def outbox_totals(self) -> tuple[int, int]:
        """Traces and spans queued for delivery."""
        with self._transaction() as db:
            return self._outbox.totals(db)

    def close(self) -> None:
        with self._lock:
            if self._db is None:
                return
            self._file.close()
            self._db = None
            self._lock_file.close()

    def abandon_after_fork(self) -> None:
        """In a child forked while this spool was open: let go of it without touching the file,
        which the parent goes on using. The spool then counts as closed here.

        The connection is leaked on purpose (`spool_lock.abandon_connection`), the lock file's
        descriptor closed without unlocking (the parent's lock stays), and the thread lock, which
        a thread of the parent that does not exist here may have held, replaced, not acquired.
        """
        self._lock = FairLock()
        if self._db is None:
            return
        abandon_connection(self._db)
        self._db = None
        self._file.abandon()
        self._lock_file.forget_after_fork()

    # --- spans in -------------------------------------------------------------------------------

    def add(self, batch: SpanBatch, now: float) -> AddResult:
        """Store a batch of finished spans (OTLP protobuf) in one transaction."""
        rejected = evicted = dead_evicted = 0
        with self._transaction() as db:
            # Resent copies are dropped first: a sender retrying a request the full spool took
            # in part must find room for the part it refused, not for what is already here.
            by_trace, duplicates = self._assembly.new_spans(db, batch)
            incoming = sum(
                len(span) for spans in by_trace.values() for _, span, _ in spans.values()
            )
            budget = self._budget()
            tally = self._tally
            if tally.bytes + incoming > budget and tally.dead_bytes:
                dead_evicted = self._outbox.evict_dead_letters(
                    db, tally.bytes + incoming - budget, spool=str(self.path)
                )
            if tally.bytes + incoming > budget:
                if self.when_full == "drop_oldest":
                    evicted = self._evict_oldest(db, tally.bytes + incoming - budget)
                else:
                    rejected = fit(by_trace, budget - tally.bytes)
                    self._rejected_since_drain = True
            stored = self._assembly.store(db, by_trace, now)
            self._measure_disk(db)
        return AddResult(
            stored.accepted,
            duplicates,
            rejected,
            evicted,
            stored.early_traces,
            stored.traces_with_root,
            stored.new_traces,
            dead_evicted,
        )

    # --- assembly: pending spans -> outbox ------------------------------------------------------

    def assemble_ready(
        self, now: float, *, grace_period: float, max_trace_age: float, flush: bool = False
    ) -> AssembleResult:
        """Move finished traces to the outbox: local root seen `grace_period` ago (any time when
        flushing), or first span seen `max_trace_age` ago (then partial)."""
        complete = partial = 0
        # In transactions of a bounded size: one transaction's pages are all in the WAL until
        # it commits, and a backlog of thousands of traces moved at once took the WAL far past
        # its room. A trace is moved whole in one of them; the first also finds them.
        ready: list[bytes] | None = None
        start = 0
        while ready is None or start < len(ready):
            with self._transaction() as db:
                if ready is None:
                    ready = self._assembly.ready(
                        db, now, grace_period=grace_period, max_trace_age=max_trace_age, flush=flush
                    )
                if ready:
                    moved = self._assembly.assemble_pending(
                        db, ready[start : start + _ASSEMBLE_PER_TRANSACTION], now
                    )
                    complete += moved[0]
                    partial += moved[1]
                    self._assembly.trim_handed_over(db)
            start += _ASSEMBLE_PER_TRANSACTION
        return AssembleResult(complete, partial)

    def drained(self) -> bool:
        """Nothing left to deliver: an empty outbox and no trace whose root has arrived
        (traces still waiting for their root are not the flush's to deliver)."""
        with self._transaction() as db:
            return not (self._outbox.totals(db)[0] or self._assembly.has_rooted(db))

    def next_wakeup(self, *, grace_period: float, max_trace_age: float) -> float | None:
        """The earliest time at which a trace becomes ready or an outbox item due."""
        with self._transaction() as db:
            times = [
                self._assembly.next_ready(
                    db, grace_period=grace_period, max_trace_age=max_trace_age
                ),
                self._outbox.next_due(db),
            ]
        known = [t for t in times if t is not None]
        return min(known) if known else None

    # --- outbox ---------------------------------------------------------------------------------

    def due(self, now: float, limit: int, *, ignore_backoff: bool = False) -> list[OutboxItem]:
        """Up to `limit` items whose next attempt is due, oldest first, at most one per key (a
        report is keyed by trace key, so two pieces of one trace never share a batch)."""
        with self._transaction() as db:
            return self._outbox.due(db, now, limit, ignore_backoff=ignore_backoff)

    def mark_attempted(self, ids: Sequence[int], now: float) -> None:
        """Committed before `deliver` runs, so a crash mid-delivery is known on restart."""
        with self._transaction() as db:
            self._outbox.mark_attempted(db, ids, now)

    def remove(self, ids: Sequence[int]) -> None:
        with self._transaction() as db:
            self._outbox.delete(db, ids)
            self._note_drained()

    def reschedule(self, item_id: int, next_attempt_at: float, reason: str) -> None:
        with self._transaction() as db:
            self._outbox.reschedule(db, item_id, next_attempt_at, reason)

    def dead_letter(self, item_id: int, reason: str, now: float) -> None:
        with self._transaction() as db:
            self._outbox.dead_letter(db, item_id, reason, now)
            self._note_drained()

    # --- dead letters ---------------------------------------------------------------------------

    def dead_letters(self) -> list[DeadLetter]:
        with self._transaction() as db:
            return self._outbox.dead_letters(db)

    def requeue_dead_letters(self, now: float) -> int:
        """Move every dead letter back to the outbox, due now. Attempts are kept, so the sink's
        `already_delivered` check runs before the item is sent again."""
        with self._transaction() as db:
            return self._outbox.requeue_dead_letters(db, now)

    # --- orphans ----------------------------------------------------------------------------------

    def adopt(self, path: Path) -> int:
        """Move everything from another, unused spool file into this one and delete that file
        (an exporter that ran beside this one last time and is gone now). Raises
        SpoolLockedError while its owner is alive, SpoolDestinationError (and leaves the file
        alone) when its items are for another destination. Returns the number of pending spans,
        queued traces and dead letters adopted."""
        donor = Spool(
            path,
            max_bytes=self.max_bytes,
            max_traces=self.max_traces,
            max_spans_per_trace=self.max_spans_per_trace,
            destination=self.destination,
        )
        try:
            with donor._transaction() as source:
                spans, traces = TraceAssembly.read_for_adoption(source)
                outbox, dead = Outbox.read_for_adoption(source)
            with self._transaction() as db:
                self._assembly.adopt(db, spans, traces)
                Outbox.adopt(db, outbox, dead)
                self._tally.recount(db)
        finally:
            donor.close()
        for leftover in (path, *(path.with_name(path.name + end) for end in _SIDE_FILES)):
            leftover.unlink(missing_ok=True)
        return sum(len(chunk[3]) // 8 for chunk in spans) + len(outbox) + len(dead)

    # --- private --------------------------------------------------------------------------------

    def _let_go(self) -> None:
        """Close the file and release its lock: the spool could not be opened as asked."""
        self._file.close()
        self._lock_file.close()

    def _claim(self, db: sqlite3.Connection, wanted: dict[str, str] | None) -> dict[str, str]:
        """Record `wanted` as the file's destination, or check it against the one recorded
        (`wanted` None: take the recorded one, as tools that open a spool by path do). A file
        from before destinations were recorded belongs to whoever opens it by its name (the
        name was the only identity then)."""
        row = db.execute("SELECT value FROM meta WHERE key = 'destination'").fetchone()
        if row is None:
            claimed = wanted or {}
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('destination', ?)",
                (destination_key(claimed),),
            )
            return claimed
        recorded: dict[str, str] = json.loads(row[0])
        if wanted is not None and recorded != wanted:
            self._let_go()
            raise SpoolDestinationError(self.path, recorded, wanted)
        return recorded

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._db
            if db is None:
                raise SpoolClosedError(f"spool {self.path} is closed")
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                self._file.commit(self._tally.held)
            except BaseException:
                # SQLite may have rolled back already (a full disk: SQLITE_FULL ends the
                # transaction); a second ROLLBACK would raise and hide the real error.
                if db.in_transaction:
                    db.execute("ROLLBACK")
                self._tally.recount(db)
                self._assembly.load(db)
                raise
            self._bound_wal(db)

    def _note_drained(self) -> None:
        """A spool that refused spans takes them again once it drained below "full"."""
        if self._tally.live_bytes < self._budget() * _FULL_FRACTION:
            self._rejected_since_drain = False

    def _evict_oldest(self, db: sqlite3.Connection, needed: int) -> int:
        """Free `needed` bytes, oldest outbox items first, then the oldest pending traces.
        Returns the number of spans evicted."""
        freed = evicted = 0
        while freed < needed:
            gone = self._outbox.evict_oldest(db) or self._assembly.evict_oldest(db)
            if gone is None:
                break
            evicted += gone[0]
            freed += gone[1]
        self._note_drained()
        return evicted

    def _bound_wal(self, db: sqlite3.Connection) -> None:
        """After a commit, with the lock held: checkpoint and truncate the WAL when large
        transactions (assembling many traces at once) took it past its room; the automatic
        checkpoint only rewinds it. One stat per transaction. The transaction
        is committed by then: a checkpoint that fails is retried after the next one."""
        try:
            wal_bytes = self._wal_path.stat().st_size
            self._headroom.saw_wal(wal_bytes)
            if wal_bytes > self._headroom.wal_room:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except (OSError, sqlite3.Error):
            _logger.debug("spool %s: WAL checkpoint failed", self.path, exc_info=True)

    def _budget(self) -> int:
        """The bytes the spool may hold so that its files stay within `max_bytes` on disk.
        Below 1 MiB held it is `max_bytes` as is, whatever was measured when it held more: at
        a small limit the room kept for the WAL and the resend window can leave a measured
        budget below what is held, and a spool that had drained past it would stay "full"
        until the next write measured again, which a full spool's receiver never sends."""
        held = self._tally.bytes
        if self._disk_budget is None or not held or held < self._measured_from():
            return self._limit - self._window_bytes()
        return self._disk_budget

    def _window_bytes(self) -> int:
        """What the resend window takes, once that is enough to matter."""
        window = self._tally.handed * _HANDED_ROW_BYTES
        return window if window >= self._measured_from() else 0

    def _measured_from(self) -> int:
        """Bytes held from which the budget is measured (and the resend window counts): 1 MiB,
        or an eighth of the disk's room when that is less than max_bytes. (A small max_bytes
        alone keeps 1 MiB: the spool's own tests hold a few KiB under limits of a few KiB.)"""
        if self._limit >= self.max_bytes:
            return _DISK_FACTOR_FROM_BYTES
        return min(_DISK_FACTOR_FROM_BYTES, self._limit // 8)

    def _disk_limit(self) -> int:
        """What the spool's files may take: max_bytes, or less when the filesystem has less
        room (see _DISK_RESERVE_MIN). Five system calls."""
        self._limit_read_at = time.monotonic()
        try:
            disk = shutil.disk_usage(self.path.parent)
            own = sum(
                _file_size(path)
                for path in (
                    self.path,
                    self._wal_path,
                    self.path.with_name(self.path.name + "-shm"),
                )
            )
        except OSError:
            return self.max_bytes
        reserve = min(_DISK_RESERVE_MAX, max(_DISK_RESERVE_MIN, disk.total // 50))
        return max(0, min(self.max_bytes, own + disk.free - reserve))

    def _measure_disk(self, db: sqlite3.Connection) -> None:
        """Above 1 MiB held, update what the spool may hold: what it holds, plus the disk still
        free within `max_bytes` (free pages of the file, which are reused first, and what the
        file may still grow) divided by what a byte held takes in the database (its pages in
        use, but the resend window's, per byte held). What the file may grow leaves room for
        the WAL and for the database's growth in one transaction, each as large as seen so far
        (see _DiskHeadroom). Two header reads."""
        page_count = scalar(db, "PRAGMA page_count")
        self._headroom.saw_pages(page_count * self._page_size)
        self._limit = self._disk_limit()
        if not self._tally.bytes or self._tally.bytes < self._measured_from():
            self._disk_budget = None
            return
        in_use_bytes = (page_count - scalar(db, "PRAGMA freelist_count")) * self._page_size
        factor = min(
            _MAX_DISK_FACTOR, max(1.0, (in_use_bytes - self._window_bytes()) / self._tally.bytes)
        )
        # The resend window grows as traces are handed over, whatever is held: room for it to
        # reach its share.
        window_growth = max(0, self._handed_keep - self._tally.handed) * _HANDED_ROW_BYTES
        available = self._limit - self._headroom.bytes() - window_growth - in_use_bytes
        self._disk_budget = max(0, self._tally.bytes + int(available / factor))


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


class _DiskHeadroom:
    """What the spool's files may take beyond the database's pages in use: the WAL, which one
    transaction fills with every page it touches before it commits, and the database's own
    growth between two measurements (a trace being moved is in it twice for a moment). Both
    start from an estimate and grow to the largest seen: at an 8 MiB limit a request of 128
    traces touched ~500 random pages (2-3 MiB of WAL) where the estimate left 2.7 MiB, and
    the spool reached 9.1 MiB on disk. Learnt per process, never shrinks."""

    def __init__(self, wal_room: int) -> None:
        self.wal_room = wal_room
        self._wal_seen = 0
        self._growth_seen = 0
        self._pages_bytes = 0

    def saw_wal(self, wal_bytes: int) -> None:
        """The WAL's size after a commit, before any truncation: the largest it got."""
        if wal_bytes > self._wal_seen:
            self._wal_seen = wal_bytes

    def saw_pages(self, pages_bytes: int) -> None:
        """The database file's size (its pages), read at a measurement."""
        if self._pages_bytes:
            self._growth_seen = max(self._growth_seen, pages_bytes - self._pages_bytes)
        self._pages_bytes = pages_bytes

    def bytes(self) -> int:
        # A quarter more than the largest WAL seen: it grows with the tables it touches.
        wal = max(self.wal_room, self._wal_seen * 5 // 4)
        # The shared-memory index: 32 KiB for every 4096 WAL frames (pages) or part of them.
        shm = 32 * 1024 * (wal // (4096 * 4096) + 1)
        return wal + shm + self._growth_seen
