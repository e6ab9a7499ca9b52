"""What state each sink is in, as the receiver sees it, and the log lines that say so once.

A sink whose spool is full, or that refuses spans, makes the receiver answer every request with
a retryable refusal; logging each would flood the log. One WARNING marks the start of such an
episode, one INFO its end with what was refused meanwhile, and `/health` and the metrics read
the current state from here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from otel_bridge.delivery import DeliveryState

__all__ = ["SETTLE_SECONDS", "Condition", "SinkConditions", "SinkState", "SinkStatus"]

_logger = logging.getLogger("otel_bridge.receiver")

# A full spool's episode ends once requests are accepted with no refusal for this long.
SETTLE_SECONDS = 2.0


class Condition(Enum):
    OK = "ok"
    SPOOL_FULL = "spool_full"  # answered with 429 / RESOURCE_EXHAUSTED
    REFUSING = "refusing"  # export() did not succeed: 503 / UNAVAILABLE


_BEGIN_MESSAGES = {
    Condition.SPOOL_FULL: "sink %s: spool full; refusing requests with a retryable answer "
    "until it drains",
    Condition.REFUSING: "sink %s: export refused; answering requests with a retryable "
    "refusal until it accepts again",
}


@dataclass(frozen=True, slots=True)
class SinkStatus:
    condition: Condition
    since: datetime | None = None
    refused_requests: int = 0
    refused_spans: int = 0


@dataclass(frozen=True, slots=True)
class SinkState:
    """One sink as `/health` and the receiver's metrics show it."""

    id: str
    spool_full: bool
    spool_bytes: int | None
    status: SinkStatus  # the receiver's view: is it accepting requests for this sink?
    delivery: DeliveryState | None  # the exporter's view (None for a plain SDK exporter)

    @property
    def ok(self) -> bool:
        return self.status.condition is Condition.OK and (self.delivery is None or self.delivery.ok)


@dataclass(slots=True)
class _Episode:
    condition: Condition
    started: float
    since: datetime
    refused_requests: int = 0
    refused_spans: int = 0
    last_refused: float = 0.0


class SinkConditions:
    """Thread-safe record of each sink's current episode, if any."""

    def __init__(self, sink_ids: Iterable[str], clock: Callable[[], float] = time.monotonic):
        self._episodes: dict[str, _Episode | None] = dict.fromkeys(sink_ids)
        self._clock = clock
        self._lock = threading.Lock()

    def refused(self, sink_id: str, condition: Condition, spans: int) -> None:
        """A request was refused because of `sink_id`; begins (and logs) an episode if new."""
        with self._lock:
            episode = self._episodes[sink_id]
            if episode is not None and episode.condition is not condition:
                self._end(sink_id, episode)
                episode = None
            if episode is None:
                episode = _Episode(condition, self._clock(), datetime.now(UTC))
                self._episodes[sink_id] = episode
                _logger.warning(_BEGIN_MESSAGES[condition], sink_id)
            episode.refused_requests += 1
            episode.refused_spans += spans
            episode.last_refused = self._clock()

    def accepted(self, sink_id: str) -> None:
        """The sink took a request: ends its episode, if one is open. A full spool's episode
        ends only once nothing was refused for `SETTLE_SECONDS`: a spool at its limit takes
        one request in a few as it drains, which is still the same episode."""
        if self._episodes[sink_id] is None:  # the common case, without the lock
            return
        with self._lock:
            episode = self._episodes[sink_id]
            if episode is None:
                return
            settling = self._clock() - episode.last_refused < SETTLE_SECONDS
            if episode.condition is Condition.SPOOL_FULL and settling:
                return
            self._end(sink_id, episode)

    def settle(self, sink_id: str, spool_full: bool) -> None:
        """End a full spool's episode once the spool has room and nothing was refused for
        `SETTLE_SECONDS`, without waiting for the next request (there may be none for a while:
        senders back off). Called by the receiver's ticker."""
        if self._episodes[sink_id] is None or spool_full:
            return
        with self._lock:
            episode = self._episodes[sink_id]
            if episode is None or episode.condition is not Condition.SPOOL_FULL:
                return
            if self._clock() - episode.last_refused >= SETTLE_SECONDS:
                self._end(sink_id, episode)

    def status(self, sink_id: str) -> SinkStatus:
        episode = self._episodes[sink_id]
        if episode is None:
            return SinkStatus(Condition.OK)
        return SinkStatus(
            episode.condition, episode.since, episode.refused_requests, episode.refused_spans
        )

    def _end(self, sink_id: str, episode: _Episode) -> None:
        self._episodes[sink_id] = None
        _logger.info(
            "sink %s: no longer %s after %.1f s; %d request(s) with %d span(s) were refused "
            "meanwhile (senders retry them)",
            sink_id,
            episode.condition.value.replace("_", " "),
            self._clock() - episode.started,
            episode.refused_requests,
            episode.refused_spans,
        )
