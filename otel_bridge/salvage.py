"""Copy what is still readable from a damaged spool file into a fresh one, table by table and row
by row, so `Spool.adopt` can queue it again. Knows nothing of the spool's tables: the schema
comes from the damaged file's own `sqlite_master` when that is readable, else from the caller.

A damaged b-tree page ends a scan, so each table is read forwards until the first error, then
backwards from its end until the first error; rows of a rowid table in between are then looked
up one by one, which reaches every row whose path from the table's root is intact.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

__all__ = ["Salvage", "TableSalvage", "copy_readable"]

# Row lookups between the two scans of one table; beyond this the gap is given up.
_MAX_PROBES = 2_000_000
# Page sizes tried when the header is damaged, SQLite's default first.
_PAGE_SIZES = (4096, 1024, 2048, 8192, 16384, 32768, 65536, 512)
_MAGIC = b"SQLite format 3\x00"

_K = TypeVar("_K")


@dataclass(frozen=True, slots=True)
class TableSalvage:
    name: str
    rows: int
    damaged: bool  # some rows could not be read


@dataclass(frozen=True, slots=True)
class Salvage:
    tables: tuple[TableSalvage, ...]
    schema_source: str  # where the tables' definitions came from
    repair: str = ""  # what was done to the header to read the file at all

    @property
    def rows(self) -> int:
        return sum(table.rows for table in self.tables)

    @property
    def damaged(self) -> bool:
        return bool(self.repair) or any(table.damaged for table in self.tables)


def copy_readable(
    damaged: Path, into: Path, *, fallback_schema: str, fallback_version: int
) -> Salvage:
    """Write every readable row of `damaged` (and of its -wal, if any) to the new file `into`
    (created 0600). The damaged file itself is only read: the work happens on a copy."""
    with tempfile.TemporaryDirectory(prefix=".salvage-", dir=into.parent) as scratch:
        source = Path(scratch) / "damaged.sqlite3"
        shutil.copyfile(damaged, source)
        wal = damaged.with_name(damaged.name + "-wal")
        if wal.exists():
            shutil.copyfile(wal, source.with_name(source.name + "-wal"))
        repair = "" if _readable_schema(source) else _repair_header(source, fallback_version)
        reader = sqlite3.connect(source, isolation_level=None)
        # Damaged text must cost a character, not the row.
        reader.text_factory = lambda raw: raw.decode("utf-8", "replace")
        try:
            entries = _schema_entries(reader)
            version = _scalar_or(reader, "PRAGMA user_version", fallback_version)
            fd = os.open(into, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            os.close(fd)
            writer = sqlite3.connect(into, isolation_level=None)
            try:
                if entries:
                    source_name = "the damaged file's schema"
                    for sql in entries:
                        writer.execute(sql)
                else:
                    source_name = "this version's schema (the damaged file's is unreadable)"
                    writer.executescript(fallback_schema)
                    version = fallback_version
                writer.execute(f"PRAGMA user_version = {int(version)}")
                tables = [
                    _copy_table(reader, writer, name)
                    for name in _table_names(writer)
                    if not name.startswith("sqlite_")
                ]
            finally:
                writer.close()
        finally:
            reader.close()
    return Salvage(tuple(tables), source_name, repair)


# --- private --------------------------------------------------------------------------------


def _readable_schema(path: Path) -> bool:
    try:
        db = sqlite3.connect(path)
    except sqlite3.Error:
        return False
    try:
        db.execute("SELECT sql FROM sqlite_master").fetchall()
        return True
    except sqlite3.DatabaseError:
        return False
    finally:
        db.close()


def _repair_header(path: Path, version: int) -> str:
    """Make the header of the copy at `path` readable again, if the schema then reads: correct a
    page count beyond the end of a cut-short file, else write a plausible new header (it is a
    small part of the first page, and everything after it may be intact). Returns what was done,
    "" if nothing helped (the header is then left as it was)."""
    size = path.stat().st_size
    with path.open("r+b") as file:
        original = file.read(100)
        if len(original) < 100:
            return ""
        page_size = int.from_bytes(original[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        if original.startswith(_MAGIC) and page_size in _PAGE_SIZES and size >= page_size:
            file.seek(28)
            file.write((size // page_size).to_bytes(4, "big"))
            file.flush()
            if _readable_schema(path):
                return "page count corrected"
        for candidate in _PAGE_SIZES:
            if size < candidate or size % candidate:
                continue
            file.seek(0)
            file.write(_header(candidate, size // candidate, version))
            file.flush()
            if _readable_schema(path):
                return "header rebuilt"
        file.seek(0)
        file.write(original)
    return ""


def _header(page_size: int, pages: int, version: int) -> bytes:
    # https://www.sqlite.org/fileformat2.html#the_database_header
    header = bytearray(100)
    header[0:16] = _MAGIC
    header[16:18] = (1 if page_size == 65536 else page_size).to_bytes(2, "big")
    header[18] = header[19] = 1  # legacy (rollback) journal: no WAL to look for
    header[21:24] = bytes([64, 32, 32])
    header[24:28] = (1).to_bytes(4, "big")  # change counter
    header[28:32] = pages.to_bytes(4, "big")
    header[40:44] = (1).to_bytes(4, "big")  # schema cookie
    header[44:48] = (4).to_bytes(4, "big")  # schema format
    header[56:60] = (1).to_bytes(4, "big")  # UTF-8
    header[60:64] = version.to_bytes(4, "big")  # user_version: the spool's format
    header[92:96] = (1).to_bytes(4, "big")  # version-valid-for = change counter
    header[96:100] = (3_040_001).to_bytes(4, "big")
    return bytes(header)


def _schema_entries(db: sqlite3.Connection) -> list[str]:
    """CREATE statements of the damaged file, tables first; [] when its schema is unreadable."""
    try:
        rows = db.execute(
            "SELECT type, sql FROM sqlite_master WHERE sql IS NOT NULL"
            " AND name NOT LIKE 'sqlite_%' ORDER BY type = 'table' DESC"
        ).fetchall()
    except sqlite3.DatabaseError:
        return []
    return [sql for kind, sql in rows if kind in ("table", "index")]


def _table_names(db: sqlite3.Connection) -> list[str]:
    return [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]


def _scalar_or(db: sqlite3.Connection, sql: str, default: int, *parameters: object) -> int:
    try:
        row = db.execute(sql, parameters).fetchone()
    except sqlite3.DatabaseError:
        return default
    return default if row is None or row[0] is None else int(row[0])


def _copy_table(reader: sqlite3.Connection, writer: sqlite3.Connection, name: str) -> TableSalvage:
    quoted = '"' + name.replace('"', '""') + '"'
    columns = [row[1] for row in writer.execute(f"PRAGMA table_info({quoted})")]
    column_list = ", ".join('"' + c.replace('"', '""') + '"' for c in columns)
    if _has_rowid(writer, quoted):
        rows, damaged = _rowid_rows(reader, name, quoted, column_list)
        insert_columns = f"rowid, {column_list}"
        width = len(columns) + 1
    else:
        keys = [row[1] for row in sorted(writer.execute(f"PRAGMA table_info({quoted})")) if row[5]]
        rows, damaged = _keyed_rows(reader, quoted, column_list, columns, keys)
        insert_columns = column_list
        width = len(columns)
    copied = 0
    writer.execute("BEGIN")
    statement = (
        f"INSERT OR IGNORE INTO {quoted} ({insert_columns}) VALUES ({', '.join('?' * width)})"
    )
    for row in rows:
        try:
            copied += writer.execute(statement, row).rowcount
        except sqlite3.Error:
            damaged = True  # e.g. a value a damaged page turned into the wrong type
    writer.execute("COMMIT")
    return TableSalvage(name, copied, damaged)


def _has_rowid(db: sqlite3.Connection, quoted: str) -> bool:
    try:
        db.execute(f"SELECT rowid FROM {quoted} LIMIT 0")
        return True
    except sqlite3.OperationalError:
        return False


def _rowid_rows(
    db: sqlite3.Connection, name: str, quoted: str, column_list: str
) -> tuple[list[Sequence[object]], bool]:
    select = f"SELECT rowid, {column_list} FROM {quoted} NOT INDEXED"
    found: dict[int, Sequence[object]] = {}
    forward_ok = _scan(db, f"{select} ORDER BY rowid", found, _rowid)
    if forward_ok:
        return list(found.values()), False
    low = max(found, default=0)
    before = len(found)
    _scan(db, f"{select} ORDER BY rowid DESC", found, _rowid)
    high_candidates = [rowid for rowid in found if rowid > low]
    high = min(high_candidates) if high_candidates else low + _MAX_PROBES
    if len(found) == before:
        # Nothing read backwards: the highest rowid AUTOINCREMENT handed out bounds the gap.
        sequence = _scalar_or(db, "SELECT seq FROM sqlite_sequence WHERE name = ?", 0, name)
        if sequence > low:
            high = sequence + 1
    for rowid in range(low + 1, min(high, low + 1 + _MAX_PROBES)):
        with contextlib.suppress(sqlite3.DatabaseError):
            row = db.execute(f"{select} WHERE rowid = ?", (rowid,)).fetchone()
            if row is not None:
                found[_rowid(row)] = row
    return list(found.values()), True


def _keyed_rows(
    db: sqlite3.Connection, quoted: str, column_list: str, columns: list[str], keys: list[str]
) -> tuple[list[Sequence[object]], bool]:
    """A WITHOUT ROWID table: forwards and backwards in primary key order."""
    key_list = ", ".join('"' + k.replace('"', '""') + '"' for k in keys)
    positions = [columns.index(k) for k in keys]

    def keyed(row: Sequence[object]) -> tuple[object, ...]:
        return tuple(row[i] for i in positions)

    select = f"SELECT {column_list} FROM {quoted}"
    found: dict[tuple[object, ...], Sequence[object]] = {}
    if _scan(db, f"{select} ORDER BY {key_list}", found, keyed):
        return list(found.values()), False
    _scan(db, f"{select} ORDER BY {key_list} DESC", found, keyed)
    return list(found.values()), True


def _scan(
    db: sqlite3.Connection,
    sql: str,
    into: dict[_K, Sequence[object]],
    key: Callable[[Sequence[object]], _K],
) -> bool:
    """Read rows of `sql` into `into` until the end (True) or the first error (False)."""
    try:
        for row in _rows(db, sql):
            into[key(row)] = row
    except sqlite3.DatabaseError:
        return False
    return True


def _rowid(row: Sequence[object]) -> int:
    value = row[0]
    assert isinstance(value, int)
    return value


def _rows(db: sqlite3.Connection, sql: str) -> Iterator[Sequence[object]]:
    cursor = db.execute(sql)
    try:
        while True:
            row = cursor.fetchone()
            if row is None:
                return
            yield row
    finally:
        cursor.close()
