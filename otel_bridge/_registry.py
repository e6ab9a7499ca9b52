"""The handler's map of open runs, bounded in size and age so runs that never end cannot pile up."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar
from uuid import UUID

__all__ = ["OpenRunRegistry"]

Run = TypeVar("Run")

# Why an entry was evicted; becomes the span's status description.
EVICTED_OVER_CAPACITY = "run evicted: open-run limit reached before it ended"
EVICTED_TOO_OLD = "run evicted: still open after the maximum run age"
EVICTED_RESTARTED = "run evicted: its run id was started again before it ended"


class OpenRunRegistry(Generic[Run]):
    """Open runs by run id, oldest first.

    Insertion order is start order, and every entry is stamped with the clock at insertion, so
    the oldest entry is always the first one: both bounds are enforced in O(1) per start.
    Evicted runs are handed to `on_evict` outside the lock (ending a span may export it).
    """

    __slots__ = (
        "_clock",
        "_deadline",
        "_evicted",
        "_lock",
        "_max_age_s",
        "_max_runs",
        "_on_evict",
        "_runs",
    )

    def __init__(
        self,
        *,
        max_runs: int,
        max_age_s: float,
        clock: Callable[[], float],
        on_evict: Callable[[UUID, Run, str], None],
    ) -> None:
        if max_runs < 1:
            raise ValueError(f"max_runs must be at least 1, got {max_runs}")
        if max_age_s <= 0:
            raise ValueError(f"max_age_s must be positive, got {max_age_s}")
        self._max_runs = max_runs
        self._max_age_s = max_age_s
        self._clock = clock
        self._on_evict = on_evict
        # Keyed by a UUID's integer (else the id itself): `UUID.__hash__` is Python code, and
        # these lookups run several times per run, so the key is computed inline.
        self._runs: dict[object, tuple[float, UUID, Run]] = {}
        self._lock = threading.Lock()
        self._evicted = 0
        # No entry is too old before this clock reading. Only ever earlier than the oldest
        # entry's true deadline (entries leaving make the oldest younger), so a start before it
        # needs no look at the oldest entry; one at or after it looks and moves it on.
        self._deadline = float("-inf")

    def __len__(self) -> int:
        return len(self._runs)

    @property
    def evicted(self) -> int:
        """How many runs were ended by the bounds instead of by LangChain."""
        return self._evicted

    def add(self, run_id: UUID, run: Run, now: float | None = None) -> None:
        """Insert `run`, stamped `now` (the caller's reading of the clock, else a fresh one)."""
        if now is None:
            now = self._clock()
        key = run_id.int if isinstance(run_id, UUID) else run_id
        runs = self._runs
        with self._lock:
            # Re-inserting moves the id to the end, keeping the dict in start order.
            restarted = runs.pop(key, None)
            runs[key] = (now, run_id, run)
            if restarted is None and len(runs) <= self._max_runs and now < self._deadline:
                return
            evicted = self._collect_evictions(now)
            if restarted is not None:
                self._evicted += 1
                evicted.append((run_id, restarted[2], EVICTED_RESTARTED))
        for evicted_id, evicted_run, reason in evicted:
            self._on_evict(evicted_id, evicted_run, reason)

    def get(self, run_id: UUID | None) -> Run | None:
        if run_id is None:
            return None
        entry = self._runs.get(run_id.int if isinstance(run_id, UUID) else run_id)
        return None if entry is None else entry[2]

    def pop(self, run_id: UUID | None) -> Run | None:
        if run_id is None:
            return None
        with self._lock:
            entry = self._runs.pop(run_id.int if isinstance(run_id, UUID) else run_id, None)
        return None if entry is None else entry[2]

    def remove(self, run_id: UUID, run: Run) -> bool:
        """Remove `run` if it is still the open run under `run_id`; whether it was."""
        key = run_id.int if isinstance(run_id, UUID) else run_id
        with self._lock:
            entry = self._runs.get(key)
            if entry is None or entry[2] is not run:
                return False
            del self._runs[key]
        return True

    def end_stale(self) -> int:
        """Evict runs older than the maximum age now; returns how many were evicted."""
        with self._lock:
            evicted = self._collect_evictions(self._clock())
        for evicted_id, evicted_run, reason in evicted:
            self._on_evict(evicted_id, evicted_run, reason)
        return len(evicted)

    def snapshot(self) -> list[tuple[UUID, Run]]:
        """Every open run, oldest first, as of now."""
        with self._lock:
            return [(run_id, run) for _, run_id, run in self._runs.values()]

    def drain(self) -> list[tuple[UUID, Run]]:
        """Remove and return every open run (handler shutdown)."""
        with self._lock:
            runs = [(run_id, run) for _, run_id, run in self._runs.values()]
            self._runs.clear()
        return runs

    def _collect_evictions(self, now: float) -> list[tuple[UUID, Run, str]]:
        evicted: list[tuple[UUID, Run, str]] = []
        runs = self._runs
        while len(runs) > self._max_runs:
            _, run_id, run = runs.pop(next(iter(runs)))
            evicted.append((run_id, run, EVICTED_OVER_CAPACITY))
        deadline = now - self._max_age_s
        while runs:
            oldest = next(iter(runs))
            started, run_id, run = runs[oldest]
            if started > deadline:
                break
            del runs[oldest]
            evicted.append((run_id, run, EVICTED_TOO_OLD))
        self._deadline = (next(iter(runs.values()))[0] if runs else now) + self._max_age_s
        self._evicted += len(evicted)
        return evicted
