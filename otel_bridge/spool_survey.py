"""What the spool files in a directory hold and for which destination, read without taking them
over: `otel-bridge replay --list` prints it, and an exporter reports at start the items it
leaves alone because they were accepted for another destination."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from otel_bridge.spool_lock import spool_in_use

__all__ = ["SpoolSummary", "summarize", "survey"]


@dataclass(frozen=True, slots=True)
class SpoolSummary:
    """One spool file. `destination` None: written before destinations were recorded (it
    belongs to the exporter that opens it by its name). `problem` says why it could not be read."""

    path: Path
    destination: dict[str, str] | None
    queued: int = 0
    pending: int = 0
    dead_letters: int = 0
    in_use: bool = False
    problem: str = ""

    @property
    def held(self) -> int:
        """Traces waiting in the file: assembling, queued for delivery or dead-lettered."""
        return self.queued + self.pending + self.dead_letters


def survey(directory: Path, prefix: str = "") -> list[SpoolSummary]:
    """Every spool file in `directory` whose name starts with `prefix`, by name."""
    if not directory.is_dir():
        return []
    return [
        summarize(path)
        for path in sorted(directory.glob(f"{prefix}*.sqlite3"))
        if not path.name.startswith(".") and path.is_file() and path.stat().st_size > 0
    ]


def summarize(path: Path) -> SpoolSummary:
    """What one spool file holds, read-only."""
    in_use = spool_in_use(path)
    try:
        db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error as error:
        return SpoolSummary(path, None, in_use=in_use, problem=str(error))
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "outbox" not in tables:
            return SpoolSummary(path, None, in_use=in_use, problem="not an otel-bridge spool")
        destination = None
        if "meta" in tables:
            row = db.execute("SELECT value FROM meta WHERE key = 'destination'").fetchone()
            destination = None if row is None else json.loads(row[0])
        return SpoolSummary(
            path,
            destination,
            queued=_count(db, "outbox"),
            pending=_count(db, "pending_traces"),
            dead_letters=_count(db, "dead_letters"),
            in_use=in_use,
        )
    except (sqlite3.Error, ValueError) as error:
        return SpoolSummary(path, None, in_use=in_use, problem=f"unreadable: {error}")
    finally:
        db.close()


def _count(db: sqlite3.Connection, table: str) -> int:
    return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
