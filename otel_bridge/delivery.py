"""Delivery from the spool to a sink: the retry policy (as data), clocks, health metrics and the
background worker that assembles finished traces and delivers them in batches.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation, get_meter_provider

from otel_bridge.episodes import Episode, EpisodeState, expected_error
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.sink import (
    MAX_RETRY_AFTER_SECONDS,
    RETRYABLE_HTTP_STATUS,
    DeliveryReport,
    PermanentError,
    RetryableError,
    error_for_http_status,
    retry_after_seconds,
)
from otel_bridge.spool import OutboxItem, Spool, SpoolClosedError

# RETRYABLE_HTTP_STATUS, error_for_http_status and retry_after_seconds live in otel_bridge.sink
# (the sink contract); they stay importable from here for sinks written against earlier releases.
__all__ = [
    "RETRYABLE_HTTP_STATUS",
    "Clock",
    "DeliveryMetrics",
    "DeliveryState",
    "DeliveryWorker",
    "FakeClock",
    "RetryPolicy",
    "SinkCalls",
    "SystemClock",
    "error_for_http_status",
    "retry_after_seconds",
]

_logger = logging.getLogger(__name__)

# Seconds the worker pauses after an unexpected error in its own loop.
_STEP_ERROR_PAUSE = 1.0

# A sink answering "Retry-After: 0" (or a zero backoff policy) must not spin the worker.
_MIN_RETRY_DELAY = 0.05

# Distinct errors the worker remembers having logged with their traceback. A sink whose errors
# carry ever-changing text (ids, timestamps) would otherwise grow the set for good; beyond this
# many, the oldest is forgotten and logged in full once more should it come back.
_LOGGED_ERRORS_KEPT = 256


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter under one deadline over all attempts of an item.

    Attempt n (1-based) failing waits `initial_backoff * multiplier**(n-1)`, capped at
    `max_backoff`, scaled by a random factor in [1 - jitter, 1 + jitter]; a Retry-After hint
    from the sink replaces the computed wait. An item still failing `deadline` seconds after
    its first attempt goes to the dead-letter table.
    """

    initial_backoff: float = 1.0
    max_backoff: float = 60.0
    multiplier: float = 2.0
    jitter: float = 0.2
    deadline: float = 24 * 3600.0

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** max(0, attempt - 1))
        factor = (rng or random).uniform(1.0 - self.jitter, 1.0 + self.jitter)
        return max(0.0, base * factor)


def _usable_hint(retry_after: float | None) -> float | None:
    """A sink's retry hint as a wait: None (use the backoff) unless a finite number >= 0, and at
    most MAX_RETRY_AFTER_SECONDS, as `retry_after_seconds` reads a header."""
    if retry_after is None or not math.isfinite(retry_after) or retry_after < 0:
        return None
    return min(retry_after, MAX_RETRY_AFTER_SECONDS)


class Clock(Protocol):
    """Wall-clock time (persisted in the spool) and an interruptible wait."""

    def now(self) -> float: ...

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        """Wait until `event` is set (True) or `timeout` seconds of this clock passed (False)."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        return event.wait(timeout)


class FakeClock:
    """A clock that only moves when told to, so tests never sleep through grace or backoff."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._changed = threading.Condition()

    def now(self) -> float:
        with self._changed:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._changed:
            self._now += seconds
            self._changed.notify_all()

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        with self._changed:
            deadline = None if timeout is None else self._now + timeout
            while not event.is_set():
                if deadline is not None and self._now >= deadline:
                    return False
                # The event is set by other threads without touching our condition: poll it.
                self._changed.wait(0.005)
            return True


class DeliveryMetrics:
    """The exporter's health as OTel instruments, labelled with the sink name."""

    def __init__(self, sink_name: str, meter_provider: MeterProvider | None) -> None:
        meter = (meter_provider or get_meter_provider()).get_meter("otel_bridge.delivery")
        self._attributes = {"otel_bridge.sink": sink_name}
        self._queued = meter.create_counter(
            "otel_bridge.delivery.queued", unit="{trace}", description="Finished traces queued"
        )
        self._delivered = meter.create_counter(
            "otel_bridge.delivery.delivered", unit="{trace}", description="Traces delivered"
        )
        self._retried = meter.create_counter(
            "otel_bridge.delivery.retried", unit="{trace}", description="Delivery attempts retried"
        )
        self._dead_lettered = meter.create_counter(
            "otel_bridge.delivery.dead_lettered",
            unit="{trace}",
            description="Traces moved to the dead-letter table",
        )
        self._dropped = meter.create_counter(
            "otel_bridge.delivery.dropped",
            unit="{span}",
            description="Spans not delivered: spool full, malformed, or filtered by the sink",
        )
        self._partial = meter.create_counter(
            "otel_bridge.delivery.partial",
            unit="{trace}",
            description="Traces handed over before their root ended (max_trace_age or a bound)",
        )
        self._latency = meter.create_histogram(
            "otel_bridge.delivery.latency",
            unit="s",
            description="Time from a trace being queued to its delivery",
        )

    def observe_spool(
        self, current_spool: Callable[[], Spool | None], meter_provider: MeterProvider | None
    ) -> None:
        """Report the size in bytes (what `max_spool_bytes` bounds) of the spool in use at each
        collection (None once its exporter is gone): a forked child's exporter replaces the
        spool it inherited."""
        meter = (meter_provider or get_meter_provider()).get_meter("otel_bridge.delivery")
        attributes = self._attributes

        def usage(_options: CallbackOptions) -> Iterable[Observation]:
            spool = current_spool()
            if spool is not None and not spool.closed:
                yield Observation(spool.bytes_used, attributes)

        meter.create_observable_gauge(
            "otel_bridge.delivery.spool.usage",
            callbacks=[usage],
            unit="By",
            description="Bytes of spans and finished traces waiting in the spool",
        )

    def observe_state(
        self,
        current_state: Callable[[], DeliveryState | None],
        meter_provider: MeterProvider | None,
    ) -> None:
        """1 while the sink is failing (traces wait for a retry) or delivery is stalled by the
        spool's disk, as `/health` shows them; nothing once the exporter is gone."""
        meter = (meter_provider or get_meter_provider()).get_meter("otel_bridge.delivery")
        attributes = self._attributes

        def gauge(read: Callable[[DeliveryState], bool]) -> Callable[..., Iterable[Observation]]:
            def observe(_options: CallbackOptions) -> Iterable[Observation]:
                state = current_state()
                if state is not None:
                    yield Observation(int(read(state)), attributes)

            return observe

        meter.create_observable_gauge(
            "otel_bridge.delivery.failing",
            callbacks=[gauge(lambda state: state.failing is not None)],
            description="1 while the sink fails and traces wait in the spool for a retry",
        )
        meter.create_observable_gauge(
            "otel_bridge.delivery.stalled",
            callbacks=[gauge(lambda state: state.stalled is not None)],
            description="1 while the spool's disk (full, read-only) stops delivery",
        )

    def queued(self, count: int) -> None:
        if count:
            self._queued.add(count, self._attributes)

    def delivered(self, count: int) -> None:
        if count:
            self._delivered.add(count, self._attributes)

    def retried(self, count: int) -> None:
        if count:
            self._retried.add(count, self._attributes)

    def dead_lettered(self, count: int) -> None:
        if count:
            self._dead_lettered.add(count, self._attributes)

    def dropped(self, count: int, reason: str) -> None:
        if count:
            self._dropped.add(count, {**self._attributes, "otel_bridge.reason": reason})

    def partial(self, count: int, reason: str) -> None:
        if count:
            self._partial.add(count, {**self._attributes, "otel_bridge.reason": reason})

    def latency(self, seconds: float) -> None:
        self._latency.record(max(0.0, seconds), self._attributes)


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """How delivery to one sink is going: the episodes under way, and whether traces are
    due faster than the worker delivers them (`behind`)."""

    failing: EpisodeState | None = None  # the sink fails; traces wait for a retry
    stalled: EpisodeState | None = None  # the spool's disk stops the worker (full, read-only)
    behind: bool = False

    @property
    def ok(self) -> bool:
        return self.failing is None and self.stalled is None

    def to_dict(self) -> dict[str, object]:
        state = "stalled" if self.stalled else "failing" if self.failing else "ok"
        document: dict[str, object] = {"state": state, "behind": self.behind}
        for name, episode in (("failing", self.failing), ("stalled", self.stalled)):
            if episode is not None:
                document[name] = episode.to_dict()
        return document


class SinkCalls(Protocol):
    """The three calls the worker makes into a sink exporter (looked up on every call)."""

    def deliver(self, traces: Sequence[FinishedTrace]) -> DeliveryReport: ...

    def already_delivered(self, keys: Sequence[str]) -> set[str]: ...

    def accepts(self, trace: FinishedTrace) -> bool: ...


class DeliveryWorker:
    """Background thread: assemble finished traces, deliver due batches, back off, repeat."""

    def __init__(
        self,
        *,
        name: str,
        spool: Spool,
        sink: SinkCalls,
        policy: RetryPolicy,
        clock: Clock,
        metrics: DeliveryMetrics,
        grace_period: float,
        max_trace_age: float,
        max_batch: int,
    ) -> None:
        self._name = name
        self._spool = spool
        self._sink = sink
        self._policy = policy
        self._clock = clock
        self._metrics = metrics
        self._grace_period = grace_period
        self._max_trace_age = max_trace_age
        self._max_batch = max_batch
        self._rng = random.Random()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._progress = threading.Condition()
        self._flush_requests = 0
        self._flush_served = 0
        self._drained_flush = 0
        self._settled_flush = 0  # last flush request after which a pass found nothing due
        self._logged_errors: OrderedDict[str, None] = OrderedDict()
        self._unavailable = Episode(
            _logger, name, "sink failing: traces wait in the spool for a retry", "trace(s) delayed"
        )
        self._stuck = Episode(_logger, name, "delivery stalled by the spool's disk", "step(s)")
        # Set while a full batch was due at the last step (more is waiting than one call
        # takes); a receiver holds new requests back until it clears (wait_until_caught_up).
        self._behind = False
        self._caught_up = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"otel-bridge-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def flush(self, timeout: float, *, until_drained: bool = True) -> bool:
        """Assemble every trace whose root ended, try queued items once more now, and wait (real
        time) until the outbox is empty; or, with `until_drained=False`, only until that round
        is over (what failed waits in the spool). False at the timeout or if not drained."""
        deadline = time.monotonic() + timeout
        with self._progress:
            self._flush_requests += 1
            request = self._flush_requests
        self._wake.set()
        with self._progress:
            while self._drained_flush < request:
                if not until_drained and self._settled_flush >= request:
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self._progress.wait(min(remaining, 0.05))
                # A pass that ended with work left waits for backoff; wake it for the flush.
                self._wake.set()
            return True

    def state(self) -> DeliveryState:
        return DeliveryState(self._unavailable.state(), self._stuck.state(), self._behind)

    def wait_until_caught_up(self, timeout: float) -> bool:
        """Block (at most `timeout` seconds) while more traces are due than one `deliver` call
        takes; True once the worker caught up (or stopped). Lets a receiver pace what it
        accepts to what the sink takes, instead of filling the spool while the worker waits
        for a turn at the GIL. A sink that is failing does not count as behind: what it did
        not take waits for a retry, and the spool absorbs the outage."""
        if not self._behind:
            return True
        with self._caught_up:
            return self._caught_up.wait_for(lambda: not self._behind, timeout)

    def _set_behind(self, behind: bool) -> None:
        if behind is self._behind:
            return
        with self._caught_up:
            self._behind = behind
            if not behind:
                self._caught_up.notify_all()

    def stop(self, timeout: float) -> None:
        """Stop after the current step; a `deliver` call blocked past `timeout` is abandoned
        (the thread is a daemon, and its item stays in the spool as attempted)."""
        self._stop.set()
        self._set_behind(False)
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # --- the loop -------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            with self._progress:
                flush = self._flush_requests
            try:
                busy = self._step(flush)
            except SpoolClosedError:
                self._set_behind(False)
                return
            except Exception as error:
                self._set_behind(False)
                if expected_error(error):  # e.g. a full disk: a state, said once
                    self._stuck.occurred(f"{type(error).__name__}: {error}")
                else:
                    _logger.exception("delivery worker for %s failed a step; retrying", self._name)
                # Pause instead of spinning; shutdown still interrupts it.
                self._stop.wait(_STEP_ERROR_PAUSE)
                continue
            self._stuck.ended()
            if self._stop.is_set():
                return
            if busy:
                continue
            try:
                idle = self._spool.drained()
                wakeup = self._spool.next_wakeup(
                    grace_period=self._grace_period, max_trace_age=self._max_trace_age
                )
            except SpoolClosedError:
                return
            with self._progress:
                self._flush_served = max(self._flush_served, flush)
                self._settled_flush = max(self._settled_flush, flush)
                if idle:
                    self._drained_flush = max(self._drained_flush, flush)
                self._progress.notify_all()
            timeout = None if wakeup is None else max(0.0, wakeup - self._clock.now())
            self._clock.wait(self._wake, timeout)

    def _step(self, flush_request: int) -> bool:
        """One round; True when it delivered something and should loop again at once. While a
        flush request is unserved, grace periods and backoff are skipped once."""
        flush_pending = flush_request > self._flush_served
        now = self._clock.now()
        assembled = self._spool.assemble_ready(
            now,
            grace_period=self._grace_period,
            max_trace_age=self._max_trace_age,
            flush=flush_pending,
        )
        self._metrics.queued(assembled.complete + assembled.partial)
        self._metrics.partial(assembled.partial, "max_trace_age")
        if assembled.partial:
            _logger.warning(
                "%s: %d trace(s) reached max_trace_age=%ss before their root ended; delivering them"
                " partial",
                self._name,
                assembled.partial,
                self._max_trace_age,
            )
        items = self._spool.due(now, self._max_batch, ignore_backoff=flush_pending)
        self._set_behind(len(items) >= self._max_batch and not self._unavailable.active)
        if not items:
            return False
        self._deliver_batch(items, now)
        with self._progress:
            self._flush_served = max(self._flush_served, flush_request)
        return True

    def _deliver_batch(self, items: list[OutboxItem], now: float) -> None:
        items = self._skip_already_delivered(items, now)
        traces: dict[str, tuple[OutboxItem, FinishedTrace]] = {}
        for item in items:
            try:
                trace = item.trace()
            except Exception as error:
                self._spool.dead_letter(item.id, f"unreadable spool payload: {error!r}", now)
                self._metrics.dead_lettered(1)
                continue
            if not self._accepts(trace):
                self._spool.remove([item.id])
                self._metrics.dropped(len(trace.spans), "filtered")
                continue
            traces[item.key] = (item, trace)
        if not traces:
            return
        self._spool.mark_attempted([item.id for item, _ in traces.values()], now)
        report = self._call_deliver([trace for _, trace in traces.values()])
        if self._stop.is_set() and self._spool.closed:
            return
        finished = self._clock.now()
        delivered = [item for key, (item, _) in traces.items() if key in report.delivered]
        if delivered:
            self._unavailable.ended()
        self._spool.remove([item.id for item in delivered])
        self._metrics.delivered(len(delivered))
        for item in delivered:
            self._metrics.latency(finished - item.enqueued_at)
        for key, (item, _) in traces.items():
            if key in report.delivered:
                continue
            if key in report.permanent:
                self._dead_letter(item, report.permanent[key], finished)
            else:
                reason = report.retryable.get(key, "not reported by the sink")
                self._retry_later(item, reason, report.retry_after, finished)

    def _skip_already_delivered(self, items: list[OutboxItem], now: float) -> list[OutboxItem]:
        """Items attempted before (a retry, or a crash mid-delivery) are checked with the sink
        first, which makes at-least-once delivery effectively once."""
        attempted = [item for item in items if item.attempts > 0]
        if not attempted:
            return items
        try:
            present = set(self._sink.already_delivered([item.key for item in attempted]))
        except Exception as error:
            # Sending again without knowing could store a duplicate: these items wait instead.
            self._spool.mark_attempted([item.id for item in attempted], now)
            for item in attempted:
                if isinstance(error, PermanentError):
                    self._dead_letter(item, f"already_delivered: {error.reason}", now)
                    continue
                if isinstance(error, RetryableError):
                    reason, retry_after = f"already_delivered: {error.reason}", error.retry_after
                else:
                    self._log_once(error, "already_delivered")
                    reason, retry_after = f"already_delivered: {error!r}", None
                self._retry_later(item, reason, retry_after, now)
            return [item for item in items if item.attempts == 0]
        done = [item.id for item in attempted if item.key in present]
        if done:
            self._spool.remove(done)
            self._metrics.delivered(len(done))
        return [item for item in items if item.id not in done]

    def _accepts(self, trace: FinishedTrace) -> bool:
        try:
            return bool(self._sink.accepts(trace))
        except Exception as error:
            self._log_once(error, "accepts")
            return True

    def _call_deliver(self, traces: list[FinishedTrace]) -> DeliveryReport:
        keys = [format(trace.trace_id, "032x") for trace in traces]
        try:
            report = self._sink.deliver(traces)
            if not isinstance(report, DeliveryReport):
                raise TypeError(f"deliver() returned {type(report).__name__}, not a DeliveryReport")
            return report
        except RetryableError as error:
            return DeliveryReport(
                retryable=dict.fromkeys(keys, error.reason), retry_after=error.retry_after
            )
        except PermanentError as error:
            return DeliveryReport(permanent=dict.fromkeys(keys, error.reason))
        except Exception as error:
            self._log_once(error, "deliver")
            return DeliveryReport(retryable=dict.fromkeys(keys, f"{type(error).__name__}: {error}"))

    def _retry_later(
        self, item: OutboxItem, reason: str, retry_after: float | None, now: float
    ) -> None:
        attempts = item.attempts + 1
        first_attempt = item.first_attempt_at if item.first_attempt_at is not None else now
        delay = _usable_hint(retry_after)
        if delay is None:
            delay = self._policy.backoff(attempts, self._rng)
        delay = max(delay, _MIN_RETRY_DELAY)
        if now + delay > first_attempt + self._policy.deadline:
            self._dead_letter(
                item,
                f"gave up after {attempts} attempt(s) over {now - first_attempt:.0f}s"
                f" (deadline {self._policy.deadline:.0f}s): {reason}",
                now,
            )
            return
        self._spool.reschedule(item.id, now + delay, reason)
        self._metrics.retried(1)
        self._unavailable.occurred(reason, 1)
        _logger.debug(
            "%s: delivery of trace %s failed (%s); retry %d in %.1fs",
            self._name,
            item.key,
            reason,
            attempts,
            delay,
        )

    def _dead_letter(self, item: OutboxItem, reason: str, now: float) -> None:
        self._spool.dead_letter(item.id, reason, now)
        self._metrics.dead_lettered(1)
        _logger.error(
            "%s: trace %s moved to the dead-letter table (%s); `otel-bridge replay --sink %s`"
            " re-delivers it",
            self._name,
            item.key,
            reason,
            self._name,
        )

    def _log_once(self, error: Exception, where: str) -> None:
        signature = f"{where}:{type(error).__qualname__}:{error}"
        if signature in self._logged_errors:
            self._logged_errors.move_to_end(signature)
            _logger.warning("%s: %s raised %r again", self._name, where, error)
            return
        self._logged_errors[signature] = None
        if len(self._logged_errors) > _LOGGED_ERRORS_KEPT:
            self._logged_errors.popitem(last=False)
        _logger.error("%s: %s raised; counted as retryable", self._name, where, exc_info=error)
