"""Failures that last speak once: a full disk, a spool at its limit, a sink that is down.

One WARNING when such an episode begins, a reminder at most once a minute while it lasts (with
what it has cost so far), one INFO when it ends; no traceback for what the machine or the network
does (`expected_error`), since those are states to report, not bugs. The receiver keeps its own
per-sink record for `/health` (`receiver/conditions.py`); this is the exporter's and the delivery
worker's side.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["Episode", "EpisodeState", "expected_error"]

# OS errors that describe the machine's state (full, read-only, not ours), not a bug.
_EXPECTED_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
)
# What SQLite says for the same states.
_EXPECTED_SQLITE_TEXT = (
    "database or disk is full",
    "attempt to write a readonly database",
    "disk i/o error",
    "unable to open database file",
)

REMIND_EVERY_S = 60.0


def expected_error(error: BaseException) -> bool:
    """True for a full or read-only disk, missing permissions, or a network failure."""
    if isinstance(error, sqlite3.OperationalError):
        text = str(error).lower()
        return any(known in text for known in _EXPECTED_SQLITE_TEXT)
    if isinstance(error, ConnectionError | TimeoutError):
        return True
    return isinstance(error, OSError) and error.errno in _EXPECTED_ERRNOS


@dataclass(frozen=True, slots=True)
class EpisodeState:
    """An episode under way, as `/health` and the metrics show it."""

    since: datetime
    occurrences: int
    count: int

    def to_dict(self) -> dict[str, object]:
        return {
            "since": self.since.isoformat(),
            "occurrences": self.occurrences,
            "count": self.count,
        }


class Episode:
    """One kind of lasting failure of one sink (e.g. "spool full"); thread-safe."""

    def __init__(
        self,
        logger: logging.Logger,
        subject: str,
        what: str,
        unit: str,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._subject = subject  # e.g. the sink's name
        self._what = what  # e.g. "spool full: spans are refused"
        self._unit = unit  # what `count` counts, e.g. "span(s)"
        self._clock = clock
        self._lock = threading.Lock()
        self._started: float | None = None
        self._since = datetime.now(UTC)
        self._reminded = 0.0
        self._occurrences = 0
        self._count = 0
        # A state that comes and goes (a spool at its limit takes a request, then refuses the
        # next) would log a WARNING and an INFO each time: an episode that begins within a
        # minute of the last one said aloud begins and ends quietly, and the next WARNING
        # (or reminder) says how often that happened.
        self._said_at = -REMIND_EVERY_S
        self._quiet = False
        self._recurrences = 0
        self._recurred_count = 0

    @property
    def active(self) -> bool:
        return self._started is not None

    def occurred(self, detail: str, count: int = 0) -> None:
        """It happened (again): logs only when the episode begins, then once a minute."""
        with self._lock:
            now = self._clock()
            self._occurrences += 1
            self._count += count
            if self._started is None:
                self._started = self._reminded = now
                self._since = datetime.now(UTC)
                self._quiet = now - self._said_at < REMIND_EVERY_S
                if self._quiet:
                    return
                self._said_at = now
                self._logger.warning(
                    "%s: %s (%s); said once until it ends%s",
                    self._subject,
                    self._what,
                    detail,
                    self._recurred(),
                )
                return
            if now - self._reminded >= REMIND_EVERY_S:
                self._reminded = self._said_at = now
                self._quiet = False
                self._logger.warning(
                    "%s: still %s for %.0f s: %d time(s), %d %s so far (%s)%s",
                    self._subject,
                    self._what,
                    now - self._started,
                    self._occurrences,
                    self._count,
                    self._unit,
                    detail,
                    self._recurred(),
                )

    def _recurred(self) -> str:
        """What the quiet episodes since the last line cost; resets the tally."""
        if not self._recurrences:
            return ""
        text = (
            f"; meanwhile it came and went {self._recurrences} more time(s),"
            f" {self._recurred_count} {self._unit}"
        )
        self._recurrences = self._recurred_count = 0
        return text

    def state(self) -> EpisodeState | None:
        """The episode under way, or None."""
        with self._lock:
            if self._started is None:
                return None
            return EpisodeState(self._since, self._occurrences, self._count)

    def ended(self) -> None:
        """Things work again: one INFO with what the episode cost, if one was on."""
        if self._started is None:  # the common case, without the lock
            return
        with self._lock:
            if self._started is None:
                return
            if self._quiet:
                self._recurrences += 1
                self._recurred_count += self._count
                self._started = None
                self._occurrences = self._count = 0
                return
            self._logger.info(
                "%s: no longer %s, after %.1f s: %d time(s), %d %s",
                self._subject,
                self._what,
                self._clock() - self._started,
                self._occurrences,
                self._count,
                self._unit,
            )
            self._started = None
            self._occurrences = self._count = 0
