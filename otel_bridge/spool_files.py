"""A spool's files on disk: private to their owner, checked before use, and never a reason to stop.

`open_checked` is how a spool opens its SQLite file: the directory and files are made private
(0700 / 0600), the file is checked (header, then `PRAGMA quick_check`), a damaged file is moved
aside to `<name>.corrupt-<UTC>` for `otel-bridge spool salvage` and a fresh one is opened in its
place; a small sidecar `<name>.held` keeps the number of traces the file held, so a file that
vanished or shrank while holding undelivered traces is reported with the count that was lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import threading
import time
from pathlib import Path
from typing import IO

from otel_bridge.episodes import expected_error

__all__ = [
    "HELD_SUFFIX",
    "SpoolFile",
    "check_file",
    "corrupt_path",
    "open_checked",
    "open_private_append",
    "private_directory",
]

_logger = logging.getLogger("otel_bridge.spool")

HELD_SUFFIX = ".held"
# SQLite's own files beside a database file X: X-wal and X-shm (same mode as X).
_SQLITE_SIDE_FILES = ("-wal", "-shm")
_SQLITE_MAGIC = b"SQLite format 3\x00"
_HEADER_SIZE = 100
# The sidecar is rewritten in place with a fixed width, so a shorter count never leaves digits.
_HELD_WIDTH = 20

_warned_directories: set[Path] = set()
_warned_lock = threading.Lock()


def private_directory(path: Path) -> None:
    """Create `path` (and its parents) readable by its owner only; an existing directory that
    others may enter is left as it is, with one WARNING per process (it is the user's)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkdir's mode is filtered by the umask, which may be stranger than 022.
        os.chmod(path, 0o700)
        return
    if mode & 0o077 and stat.S_ISDIR(mode):
        with _warned_lock:
            if path in _warned_directories:
                return
            _warned_directories.add(path)
        _logger.warning(
            "directory %s is open to other users (mode %s); the files otel-bridge writes in it"
            " are 0600 (they hold prompts and answers), but `chmod 700 %s` also hides their names",
            path,
            format(stat.S_IMODE(mode), "04o"),
            path,
        )


def open_private_append(path: Path) -> IO[bytes]:
    """Open `path` for appending (and reading), creating it 0600 whatever the umask."""
    private_directory(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
            _warn_loose_file(path, os.fstat(fd).st_mode)
        return os.fdopen(fd, "a+b")
    except BaseException:
        os.close(fd)
        raise


def check_file(path: Path) -> str | None:
    """None if `path` reads as a sound SQLite database (an empty or missing file does), else why
    not. Read-only: the file and its WAL are left exactly as they are.

    Cost: reading the 100-byte header, then `PRAGMA quick_check`, which reads every page once
    (bench/spool_open.py prints it beside a plain open)."""
    reason = _header_problem(path)
    if reason is not None:
        return reason
    if not path.exists() or path.stat().st_size == 0:
        return None
    # Without a WAL beside it, nothing but the file counts, and immutable keeps SQLite from
    # creating an empty -wal and -shm next to it.
    query = "mode=ro" if _nonempty(_side(path, "-wal")) else "mode=ro&immutable=1"
    try:
        db = sqlite3.connect(f"{path.absolute().as_uri()}?{query}", uri=True)
    except sqlite3.Error as error:
        return f"cannot open: {error}"
    try:
        return _quick_check(db)
    finally:
        db.close()


def corrupt_path(path: Path, now: float | None = None) -> Path:
    """Where a damaged spool file is moved: `<name>.corrupt-<UTC time>` beside it."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    candidate = path.with_name(f"{path.name}.corrupt-{stamp}")
    number = 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}.corrupt-{stamp}-{number}")
    return candidate


class SpoolFile:
    """An opened spool database and its sidecar. `db` is in autocommit mode (the spool issues
    BEGIN/COMMIT itself), usable from any thread, in WAL mode with synchronous=NORMAL."""

    def __init__(self, path: Path, db: sqlite3.Connection, held_before: int | None, how: str):
        self.path = path
        self.db = db
        self._held_before = held_before  # the sidecar's count from the last run, if any
        self._how = how  # "" or what happened to the file ("vanished", "emptied to 0 bytes")
        self._held: int | None = None
        self._sidecar: int | None = os.open(
            _held_path(path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
        )

    def note_held(self, count: int) -> None:
        """The number of traces the file now holds (waiting, queued or dead-lettered), as counted
        when the spool opened: compared with the last run's count, then remembered."""
        before, self._held_before = self._held_before, None
        if before is not None and count < before:
            if self._how:
                _logger.error(
                    "spool %s %s while it held %d undelivered trace(s) (last count in %s);"
                    " they are lost",
                    self.path,
                    self._how,
                    before - count,
                    _held_path(self.path).name,
                )
            else:
                _logger.error(
                    "spool %s holds %d trace(s) but held %d when last written: %d undelivered"
                    " trace(s) are lost (the file was replaced or cut short while not in use)",
                    self.path,
                    count,
                    before,
                    before - count,
                )
        self._write_held(count)

    def commit(self, held: int) -> None:
        """COMMIT the open transaction and keep the sidecar's count with it. A lower count is
        written before the commit and a higher one after, so a crash between the two leaves the
        sidecar at or below what the file holds: never a loss reported that did not happen."""
        if self._held is not None and held < self._held:
            self._write_held(held)
        self.db.execute("COMMIT")
        if held != self._held:
            self._write_held(held)

    def close(self) -> None:
        self.db.close()
        self._close_sidecar()

    def abandon(self) -> None:
        """In a forked child: drop the sidecar's descriptor, leave the connection (see
        Spool.abandon_after_fork) and the files to the parent."""
        self._close_sidecar()

    def _write_held(self, count: int) -> None:
        self._held = count
        if self._sidecar is None:
            return
        with contextlib.suppress(OSError):  # a count we cannot write is only a weaker report
            os.pwrite(self._sidecar, f"{count:>{_HELD_WIDTH}}\n".encode(), 0)

    def _close_sidecar(self) -> None:
        if self._sidecar is not None:
            os.close(self._sidecar)
            self._sidecar = None


def open_checked(path: Path, *, timeout: float = 30.0) -> SpoolFile:
    """Open the spool file `path`, whose lock the caller holds, after making it private and
    checking it; a damaged file is moved aside (one ERROR line) and a fresh one opened, so this
    raises only when the directory itself is unusable (e.g. not writable)."""
    private_directory(path.parent)
    held_before = _read_held(path)
    how = ""
    if held_before:
        if not path.exists():
            how = "vanished"
        elif path.stat().st_size == 0 and not _nonempty(_side(path, "-wal")):
            how = "was emptied to 0 bytes"
    _make_private(path)
    db = _connect(path, timeout)
    try:
        reason = _header_problem(path) or _quick_check(db)
    except BaseException:
        db.close()
        raise
    if reason is not None:
        db.close()
        moved = _move_aside(path, held_before)
        _logger.error(
            "spool %s is damaged (%s)%s; moved it to %s and started a fresh spool. Recover what"
            " is still readable with: otel-bridge spool salvage %s",
            path,
            reason,
            f"; it held {held_before} trace(s) when last counted" if held_before else "",
            moved,
            moved,
        )
        how = ""
        held_before = None
        _make_private(path)
        db = _connect(path, timeout)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL survives a process crash (only an OS crash can lose the last commits).
        db.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        db.close()  # a full or read-only disk: opened again later, by the exporter
        raise
    return SpoolFile(path, db, held_before, how)


# --- private --------------------------------------------------------------------------------


def _side(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _held_path(path: Path) -> Path:
    return _side(path, HELD_SUFFIX)


def _nonempty(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


def _read_held(path: Path) -> int | None:
    try:
        text = _held_path(path).read_text(encoding="ascii").strip()
        return int(text) if text else None
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _connect(path: Path, timeout: float) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=timeout)


def _make_private(path: Path) -> None:
    """Create the database file 0600 before SQLite does (SQLite gives its -wal and -shm the
    database file's mode); tighten files an earlier version left readable by others."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in (*_SQLITE_SIDE_FILES, HELD_SUFFIX):
        side = _side(path, suffix)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_IMODE(side.stat().st_mode) & 0o077:
                os.chmod(side, 0o600)


def _header_problem(path: Path) -> str | None:
    """What is wrong with the file's first 100 bytes, without SQLite (which reports a damaged
    header only as "file is not a database")."""
    try:
        with path.open("rb") as file:
            header = file.read(_HEADER_SIZE)
    except FileNotFoundError:
        return None
    if not header:
        return None
    if len(header) < _HEADER_SIZE or not header.startswith(_SQLITE_MAGIC):
        return "not an SQLite database: its header is missing or overwritten"
    page_size = int.from_bytes(header[16:18], "big")
    if page_size == 1:
        page_size = 65536
    if page_size < 512 or page_size & (page_size - 1):
        return f"damaged header: page size {page_size}"
    return None


def _quick_check(db: sqlite3.Connection) -> str | None:
    try:
        rows = db.execute("PRAGMA quick_check(3)").fetchall()
    except sqlite3.DatabaseError as error:
        if expected_error(error):
            # A full or read-only disk (SQLite cannot make the -shm file to read a WAL-mode
            # file): the machine's state, not damage. Moved aside, the file's traces would
            # wait for a salvage by hand; raised, the exporter opens it again when it can.
            raise
        return str(error)
    problems = [" ".join(str(row[0]).split()) for row in rows]  # one log line, not several
    if problems == ["ok"]:
        return None
    return "quick_check: " + "; ".join(problems)


def _move_aside(path: Path, held: int | None) -> Path:
    target = corrupt_path(path)
    path.rename(target)
    wal = _side(path, "-wal")
    if wal.exists():
        wal.rename(_side(target, "-wal"))  # SQLite reads it as the moved file's WAL
    _side(path, "-shm").unlink(missing_ok=True)  # rebuilt from the WAL when next opened
    held_file = _held_path(path)
    if held is not None:
        held_file.replace(_held_path(target))
    else:
        held_file.unlink(missing_ok=True)
    return target


def _warn_loose_file(path: Path, mode: int) -> None:
    with _warned_lock:
        if path in _warned_directories:
            return
        _warned_directories.add(path)
    _logger.warning(
        "%s is readable by other users (mode %s) and holds prompts and answers; otel-bridge"
        " creates it 0600 but leaves an existing file's mode alone",
        path,
        format(stat.S_IMODE(mode), "04o"),
    )
