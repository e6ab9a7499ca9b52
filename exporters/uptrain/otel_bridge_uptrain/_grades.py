"""What the judge has graded so far, per evaluated span and check, and which traces have been
published, kept in a small SQLite file beside the spool: a retry (in this process or the next one,
after a crash) asks the judge only for the checks still missing, and a trace whose results were
published is never published again, even if its spool item outlived the publication.

One file per destination (`<spool stem>.grades` in the spool directory), shared by every
exporter of that destination, in this process or another. Bounded: past `max_rows` grades (or
published markers) the oldest are forgotten; a forgotten grade is asked for again if its trace
is retried.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from otel_bridge_uptrain._judge import Score
from otel_bridge_uptrain._results import Evaluation
from otel_bridge_uptrain._selection import EvaluationRequest, check_name

__all__ = ["Grades"]


# Scores a call returned under no check's name (a non-LLM operator's own column).
_OTHER = ""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS grades (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    check_name TEXT NOT NULL,
    scores TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    PRIMARY KEY (trace_id, span_id, check_name)
);
CREATE TABLE IF NOT EXISTS published (
    trace_id TEXT PRIMARY KEY,
    published_at REAL NOT NULL
);
"""


def _hex(trace_id: int, span_id: int) -> tuple[str, str]:
    return format(trace_id, "032x"), format(span_id, "016x")


def _dump(scores: Iterable[Score]) -> str:
    return json.dumps([[s.name, s.value, s.explanation] for s in scores])


def _load(text: str) -> tuple[Score, ...]:
    return tuple(Score(name, value, explanation) for name, value, explanation in json.loads(text))


class Grades:
    def __init__(self, path: Path, max_rows: int = 100_000) -> None:
        self._path = path
        self._max_rows = max_rows
        self._lock = threading.Lock()
        self._db = self._connect()

    def _connect(self) -> sqlite3.Connection:
        self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Grades carry the judge's explanations, which quote prompts and answers: private.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self._path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        db = sqlite3.connect(
            self._path, timeout=30.0, check_same_thread=False, isolation_level=None
        )
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        return db

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def missing(self, request: EvaluationRequest) -> tuple[str, ...]:
        """The names of the request's checks without a grade yet, in plan order."""
        graded = set(self._graded(request))
        return tuple(name for name in (check_name(c) for c in request.checks) if name not in graded)

    def record(
        self,
        requests: Sequence[EvaluationRequest],
        names: Sequence[str],
        scores: Sequence[tuple[Score, ...]],
        start_ns: int,
        *,
        complete: bool,
    ) -> None:
        """Keep the grades one judge call gave `requests` for the checks `names`, durably.
        `complete` False: the call failed part way, so a check counts as graded only if it got
        a value (a missing value may be the failure, not the judge's verdict)."""
        end_ns = time.time_ns()
        rows: list[tuple[str, str, str, str, int, int]] = []
        for request, row_scores in zip(requests, scores, strict=True):
            trace_hex, span_hex = _hex(request.trace_id, request.span_id)
            for name in names:
                matching = tuple(score for score in row_scores if score.name == name)
                if complete or (matching and all(s.value is not None for s in matching)):
                    rows.append((trace_hex, span_hex, name, _dump(matching), start_ns, end_ns))
            others = tuple(score for score in row_scores if score.name not in names)
            if complete and others:
                rows.append((trace_hex, span_hex, _OTHER, _dump(others), start_ns, end_ns))
        if not rows:
            return
        with self._transaction() as db:
            db.executemany("INSERT OR REPLACE INTO grades VALUES (?, ?, ?, ?, ?, ?)", rows)
            self._bound(db, "grades")

    def evaluation(self, request: EvaluationRequest) -> Evaluation | None:
        """The request's evaluation once every check has its grade, else None."""
        graded = self._graded(request)
        names = [check_name(check) for check in request.checks]
        if any(name not in graded for name in names):
            return None
        scores = [score for name in names for score in graded[name][0]]
        if _OTHER in graded:
            scores.extend(graded[_OTHER][0])
        start_ns = min(start for _, start, _ in graded.values())
        end_ns = max(end for _, _, end in graded.values())
        return Evaluation(request, tuple(scores), start_ns, end_ns)

    def published(self, trace_ids: Iterable[int]) -> set[int]:
        """Which of these traces were published already (by this process or an earlier one)."""
        wanted = {format(trace_id, "032x"): trace_id for trace_id in trace_ids}
        if not wanted:
            return set()
        with self._lock:
            found = self._db.execute(
                f"SELECT trace_id FROM published WHERE trace_id IN ({','.join('?' * len(wanted))})",
                list(wanted),
            ).fetchall()
        return {wanted[trace_hex] for (trace_hex,) in found}

    def mark_published(self, trace_ids: Iterable[int]) -> None:
        """Remember that these traces' results went out, and let go of their grades."""
        hexes = [(format(trace_id, "032x"),) for trace_id in trace_ids]
        if not hexes:
            return
        now = time.time()
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO published VALUES (?, ?)", [(h, now) for (h,) in hexes]
            )
            db.executemany("DELETE FROM grades WHERE trace_id = ?", hexes)
            self._bound(db, "published")

    def after_fork(self) -> None:
        """In a forked child: a connection of its own (SQLite's must not cross a fork)."""
        self._lock = threading.Lock()
        self._db = self._connect()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _graded(self, request: EvaluationRequest) -> dict[str, tuple[tuple[Score, ...], int, int]]:
        trace_hex, span_hex = _hex(request.trace_id, request.span_id)
        with self._lock:
            rows = self._db.execute(
                "SELECT check_name, scores, start_ns, end_ns FROM grades "
                "WHERE trace_id = ? AND span_id = ?",
                (trace_hex, span_hex),
            ).fetchall()
        return {name: (_load(scores), start, end) for name, scores, start, end in rows}

    def _bound(self, db: sqlite3.Connection, table: str) -> None:
        (count,) = db.execute(f"SELECT count(*) FROM {table}").fetchone()
        if count > self._max_rows:
            db.execute(
                f"DELETE FROM {table} WHERE rowid IN "
                f"(SELECT rowid FROM {table} ORDER BY rowid LIMIT ?)",
                (count - self._max_rows,),
            )
