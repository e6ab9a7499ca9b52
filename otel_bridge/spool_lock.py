"""Who owns a spool file: an exclusive lock on `<file>.lock` held for the spool's lifetime, and
how a forked child lets go of a spool its parent goes on using.

The lock is `flock` on POSIX and `msvcrt.locking` on Windows, each imported when first used, so
importing this module needs neither. Only the POSIX path is tested (the project's tests and CI
run on Linux); on Windows a byte-range lock on the lock file's first byte stands in for flock,
and a process that cannot lock even that (no msvcrt) runs without the cross-process guard.
"""

from __future__ import annotations

import ctypes
import sqlite3
import sys
import threading
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import IO

__all__ = [
    "FairLock",
    "SpoolLock",
    "SpoolLockedError",
    "abandon_connection",
    "lock_path",
    "spool_in_use",
]


class FairLock:
    """A thread lock taken in the order asked for: `release()` hands it straight to the
    longest waiter. The spool's transactions take turns through it: with `threading.Lock` the
    delivery worker, which releases it and asks again at once while holding the GIL, took it
    back before `export()` (waiting on the processor thread) woke up, several transactions in
    a row. Not reentrant."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: deque[threading.Lock] = deque()

    def __enter__(self) -> None:
        with self._mutex:
            if not self._held:
                self._held = True
                return
            waiter = threading.Lock()
            waiter.acquire()
            self._waiters.append(waiter)
        try:
            waiter.acquire()  # released by the holder's release(): the lock is ours
        except BaseException:  # interrupted while waiting
            with self._mutex:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                else:  # handed over meanwhile: pass it on
                    self._hand_on()
            raise

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with self._mutex:
            self._hand_on()

    def _hand_on(self) -> None:
        if self._waiters:
            self._waiters.popleft().release()
        else:
            self._held = False


class SpoolLockedError(RuntimeError):
    """Another live exporter (in this or another process) owns the spool file."""


def lock_path(path: Path) -> Path:
    """The lock file beside the spool file `path`."""
    return path.with_name(path.name + ".lock")


class SpoolLock:
    """An exclusive, non-blocking lock on a spool's lock file, held until `close()`. Two writers
    (processes, or exporters in one process: flock locks belong to the open file) sharing one
    spool could deliver the same item twice, so the second one gets SpoolLockedError."""

    def __init__(self, spool: Path) -> None:
        path = lock_path(spool)
        handle = path.open("a+b")
        try:
            acquired = _try_lock(handle, exclusive=True)
        except BaseException:
            handle.close()
            raise
        if not acquired:
            handle.close()
            raise SpoolLockedError(
                f"spool {spool} is in use by another exporter; give each exporter its own"
                " spool_name or spool_dir"
            )
        self._handle: IO[bytes] | None = handle

    def close(self) -> None:
        """Release the lock (closing the file releases it)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def forget_after_fork(self) -> None:
        """In a forked child: close the inherited descriptor without unlocking. An flock belongs
        to the open file, which the parent still holds, so the parent's lock stays; only an
        explicit unlock would release it. The child then no longer keeps the file locked after
        the parent is gone."""
        self.close()


def spool_in_use(path: Path) -> bool:
    """True while a live exporter holds the spool file `path` (its lock cannot be shared)."""
    try:
        handle = lock_path(path).open("rb")
    except OSError:
        return False
    with handle:
        if not _try_lock(handle, exclusive=False):
            return True
        _unlock(handle)
        return False


def abandon_connection(db: sqlite3.Connection) -> None:
    """In a forked child: make sure the inherited connection `db` is never closed or freed.

    SQLite forbids using a connection inherited across fork(), and closing it is a use: it may
    checkpoint and delete the WAL under the parent (https://www.sqlite.org/howtocorrupt.html,
    section 2.6). So it is leaked on purpose (one more reference that nothing releases), not even
    deallocated when the child's interpreter exits."""
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(db))


# --- private --------------------------------------------------------------------------------


def _try_lock(handle: IO[bytes], *, exclusive: bool) -> bool:
    if sys.platform == "win32":
        return _try_lock_windows(handle)
    import fcntl

    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    try:
        fcntl.flock(handle.fileno(), mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        if exclusive:
            raise
        return False  # as before: a lock file that cannot be locked counts as in use
    return True


def _unlock(handle: IO[bytes]) -> None:
    if sys.platform == "win32":
        _unlock_windows(handle)
        return
    import fcntl

    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _try_lock_windows(handle: IO[bytes]) -> bool:
    # Windows has no shared lock through msvcrt: an exclusive lock on the first byte (which
    # need not exist) serves both the owner and the in-use check.
    try:
        import msvcrt
    except ImportError:
        return True
    handle.seek(0)
    try:
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
    except OSError:
        return False
    return True


def _unlock_windows(handle: IO[bytes]) -> None:
    try:
        import msvcrt
    except ImportError:
        return
    handle.seek(0)
    msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
