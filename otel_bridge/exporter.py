"""`TraceExporter`: the SpanExporter every sink stands on. `export()` persists spans to the sink's
SQLite spool; a background worker hands each finished trace to the sink's `deliver()`, with retry.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence, Sized
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, TypeVar

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_bridge import otlp, settings
from otel_bridge.delivery import (
    Clock,
    DeliveryMetrics,
    DeliveryState,
    DeliveryWorker,
    RetryPolicy,
    SystemClock,
)
from otel_bridge.episodes import Episode, expected_error
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.settings import Setting
from otel_bridge.sink import DeliveryReport
from otel_bridge.spool import (
    Spool,
    SpoolClosedError,
    SpoolDestinationError,
    SpoolLockedError,
    WhenFull,
    describe_destination,
    destination_key,
    spool_path,
)
from otel_bridge.spool_assembly import SpanBatch
from otel_bridge.spool_survey import survey

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["TraceExporter", "default_spool_dir", "spool_file_stem"]

_logger = logging.getLogger(__name__)
_T = TypeVar("_T")

# Exporters of one sink in one process (e.g. two drop-in handlers) each get their own file, and
# so does every process forked with a live exporter (e.g. each gunicorn --preload worker).
_MAX_SPOOL_SUFFIX = 128

# A spool that cannot be opened at start (a full or read-only disk) is tried again after 1 s,
# then twice as long each time up to 30 s: an open reads and checks the whole file, too much to
# repeat every second for a large spool that waits for room.
_REOPEN_FIRST_S = 1.0
_REOPEN_MAX_S = 30.0


def default_spool_dir() -> Path:
    """$OTEL_BRIDGE_SPOOL_DIR, else the per-user cache dir ($XDG_CACHE_HOME or ~/.cache)."""
    configured = settings.SPOOL_DIR.resolve()
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "otel-bridge" / "spool"


class TraceExporter(SpanExporter, ABC):
    """Groups spans into finished traces and delivers them durably to one sink.

    A sink overrides `deliver` (and optionally `already_delivered` and `accepts`); the base
    provides the SDK contract. `export` only writes the spans to the spool (one SQLite
    transaction, no network) and never raises; it runs on the BatchSpanProcessor's worker or
    the receiver's thread, never the app's.

    A trace is finished when its local root (a span with no parent, or a remote one) has
    arrived and `grace_period` seconds passed, or, marked partial, `max_trace_age` seconds after
    its first span arrived. When the spool reaches `max_spool_bytes`, `when_full` decides:
    "drop_newest" rejects the incoming spans (export returns FAILURE, so an OTLP client retries),
    "drop_oldest" evicts the oldest queued data; either way an error is logged and the
    `otel_bridge.delivery.dropped` counter counts the spans. Dead letters count toward
    `max_spool_bytes` too, and the oldest give way first, whatever `when_full` says (logged, and
    counted as dropped with reason "dead_letter_evicted"). More than `max_traces` unfinished
    traces, or `max_spans_per_trace` spans in one, hand the oldest/that trace over early
    (partial) instead of dropping anything.

    Settings resolve as: argument > OTEL_BRIDGE_<SINK>_<SETTING> > OTEL_BRIDGE_<SETTING> >
    default, for SPOOL_DIR (default: `default_spool_dir()`), GRACE_PERIOD (2 s), MAX_TRACE_AGE
    (300 s), MAX_SPOOL_BYTES (256 MiB) and WHEN_FULL ("drop_newest"). Every spooled item belongs
    to the destination it was accepted for (`destination_identity()`: the project, run or server,
    from settings, never secrets): the spool file is `<spool_dir>/<spool_name or sink_name>
    [-<digest of the destination>].sqlite3`, and what it holds is delivered after a restart by an
    exporter for that same destination, never another (others are reported at start and listed
    by `otel-bridge replay --list`).
    `retry` is the `RetryPolicy` (backoff, jitter, one deadline, then the dead-letter table that
    `otel-bridge replay --sink NAME` re-delivers); `clock` a `delivery.FakeClock` in tests;
    `shutdown()` spends at most `shutdown_timeout` seconds.
    """

    sink_name: ClassVar[str] = "trace"
    # A sink whose results mean nothing without prompts and answers (a review task, a graded
    # answer): with content capture off it says so once and skips what has no content.
    needs_content: ClassVar[bool] = False

    def __init__(
        self,
        *,
        spool_dir: str | os.PathLike[str] | None = None,
        spool_name: str | None = None,
        grace_period: float | None = None,
        max_trace_age: float | None = None,
        max_batch: int = 64,
        retry: RetryPolicy | None = None,
        max_spool_bytes: int | None = None,
        max_traces: int = 10_000,
        max_spans_per_trace: int = 10_000,
        when_full: WhenFull | None = None,
        meter_provider: MeterProvider | None = None,
        clock: Clock | None = None,
        shutdown_timeout: float = 10.0,
    ) -> None:
        directory = Path(
            self._setting(settings.SPOOL_DIR, None if spool_dir is None else os.fspath(spool_dir))
            or default_spool_dir()
        )
        self.grace_period = self._setting(settings.GRACE_PERIOD, grace_period)
        self.max_trace_age = self._setting(settings.MAX_TRACE_AGE, max_trace_age)
        if self.max_trace_age < self.grace_period:
            raise ValueError("max_trace_age must not be shorter than grace_period")
        when_full_value = self._setting(settings.WHEN_FULL, when_full)
        if when_full_value not in ("drop_newest", "drop_oldest"):
            raise ValueError(
                f"when_full must be 'drop_newest' or 'drop_oldest', not {when_full_value!r}"
            )
        self._clock: Clock = clock or SystemClock()
        self._shutdown_timeout = shutdown_timeout
        self._metrics = DeliveryMetrics(self.sink_name, meter_provider)
        self._spool_dir = directory
        self.destination: dict[str, str] = dict(self.destination_identity())
        self._spool_name = spool_file_stem(spool_name or self.sink_name, self.destination)
        self._spool_bounds: dict[str, object] = {
            "max_bytes": self._setting(settings.MAX_SPOOL_BYTES, max_spool_bytes),
            "max_traces": max_traces,
            "max_spans_per_trace": max_spans_per_trace,
            "when_full": when_full_value,
            "destination": self.destination,
        }
        lost = "rejected" if when_full_value == "drop_newest" else "evicted"
        self._spool_full = Episode(
            _logger, self.sink_name, f"spool full: spans are {lost}", f"span(s) {lost}"
        )
        self._unwritable = Episode(
            _logger, self.sink_name, "spool not writable: spans are refused", "span(s) refused"
        )
        self._warned_without_content = False
        if not settings.CAPTURE_CONTENT.resolve():
            self.warn_without_content()
        self._metrics.observe_spool(functools.partial(_spool_of, weakref.ref(self)), meter_provider)
        self._shutdown_lock = threading.Lock()
        self._is_shutdown = False
        self._retry = retry or RetryPolicy()
        self._max_batch = max_batch
        # Both None while the spool cannot be opened (see _try_open); an export that finds the
        # spool before its worker (set right after) only skips waking it.
        self._spool: Spool | None = None
        self._worker: DeliveryWorker | None = None
        self._stop_opening = threading.Event()
        self._opener: threading.Thread | None = None
        self._cannot_open = ""
        spool = self._try_open()
        if spool is None:
            self._keep_opening_in_background()
        else:
            self._attach(spool)
        self._report_other_destinations(spool_name or self.sink_name)
        self._metrics.observe_state(
            functools.partial(_delivery_state_of, weakref.ref(self)), meter_provider
        )
        # A child forked from this process (gunicorn --preload, multiprocessing "fork") gets a
        # copy of this exporter without the worker thread; see _restart_in_child.
        os.register_at_fork(after_in_child=functools.partial(_restart_in_child, weakref.ref(self)))

    def destination_identity(self) -> Mapping[str, str]:
        """Where this exporter's results go, from its settings (never a secret): e.g. the server
        and project. Items are spooled for it and only an exporter with the same identity
        delivers them. Override in a sink that has more than one destination; the default (an
        empty identity) means the sink has only one."""
        return {}

    def warn_without_content(self) -> None:
        """Say once that content capture is off, when this sink needs content."""
        if self.needs_content and not self._warned_without_content:
            self._warned_without_content = True
            _logger.warning(
                "otel-bridge %s: content capture is off (capture_content=False, or %s says "
                "so): %s needs prompts and answers, so traces without them are not sent",
                self.sink_name,
                settings.CAPTURE_CONTENT.generic[0],
                self.sink_name,
            )

    # --- what a sink overrides ------------------------------------------------------------------

    @abstractmethod
    def deliver(self, traces: Sequence[FinishedTrace]) -> DeliveryReport:
        """Deliver a batch; report per `trace_key`, or raise RetryableError / PermanentError for
        the whole batch. Any other exception counts as retryable. Runs on the worker thread;
        give every network call a timeout, since a call that never returns stalls this sink."""

    def already_delivered(self, keys: Sequence[str]) -> set[str]:
        """Which of these trace keys the sink already holds. Consulted before re-delivering an
        item that was attempted before (after a failure, a timeout or a crash)."""
        return set()

    def accepts(self, trace: FinishedTrace) -> bool:
        """Filter or sample finished traces; rejected ones are counted as dropped ("filtered")."""
        return True

    def _after_fork_in_child(self) -> None:
        """Let go of what this sink shares with the process it was forked from. Runs once in a
        forked child, after the child's own spool is open (on a full disk: while its opening is
        retried) and before its delivery worker starts; not at all if the exporter was shut
        down before the fork. Network clients (requests/httpx/urllib3/boto3 pools) hold
        keep-alive sockets the parent goes on using, so drop them here to be rebuilt on first
        use, and replace any threading lock the sink holds: another thread may have held it at
        the fork. Keep it quick and off the network. An exception is logged and the child delivers anyway."""

    # --- SDK contract ---------------------------------------------------------------------------

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Each span encoded once as OTLP protobuf and written to the spool."""
        count = len(spans) if isinstance(spans, Sized) else 0
        return self._spool_batch(lambda: SpanBatch.from_readable(spans, self._malformed), count)

    def export_request(
        self, request: ExportTraceServiceRequest, *, ids_checked: bool = False
    ) -> SpanExportResult:
        """`export` for a decoded OTLP request, as the receiver hands it over: the spans go
        to the spool as the protobuf they came in, without becoming SDK spans first (spans with
        invalid ids are skipped, as the receiver already rejected them; `ids_checked`: the
        caller removed them already)."""
        return self._spool_batch(
            lambda: SpanBatch.from_request(request, ids_checked=ids_checked),
            otlp.span_count(request),
        )

    def _spool_batch(self, batch: Callable[[], SpanBatch], count: int) -> SpanExportResult:
        if self._is_shutdown:
            return SpanExportResult.FAILURE
        spool = self._spool
        if spool is None:
            # Refused, as by a spool whose disk filled up: the SDK counts a FAILURE as dropped,
            # an OTLP sender retries, and the episode's lines say how many.
            self._unwritable.occurred(self._cannot_open, count)
            self._metrics.dropped(count, "spool_error")
            return SpanExportResult.FAILURE
        try:
            result = self._export(spool, batch())
        except SpoolClosedError:  # shutdown() raced this call
            return SpanExportResult.FAILURE
        except Exception as error:
            if expected_error(error):
                # A full or read-only disk: a state, said once (no traceback), not a bug.
                self._unwritable.occurred(f"{spool.path}: {error}", count)
            else:
                _logger.exception(
                    "%s: could not write %d span(s) to the spool", self.sink_name, count
                )
            self._metrics.dropped(count, "spool_error")
            return SpanExportResult.FAILURE
        self._unwritable.ended()
        return result

    def _export(self, spool: Spool, batch: SpanBatch) -> SpanExportResult:
        result = spool.add(batch, self._clock.now())
        self._metrics.queued(result.early_traces)
        self._metrics.partial(result.early_traces, "bound")
        if result.rejected or result.evicted:
            # Counted in otel_bridge.delivery.dropped; logged once per episode, not per batch.
            lost = result.rejected or result.evicted
            room = (
                ""
                if spool.disk_limit >= spool.max_bytes
                else f" (the disk has room for {spool.disk_limit} bytes of spool files)"
            )
            self._spool_full.occurred(
                f"{spool.path}: {spool.bytes_used} bytes, max_spool_bytes="
                f"{spool.max_bytes}{room}, when_full={spool.when_full}; "
                f"{'rejected' if result.rejected else 'evicted the oldest'} {lost} span(s)",
                lost,
            )
            self._metrics.dropped(result.rejected, "spool_full")
            self._metrics.dropped(result.evicted, "evicted")
        else:
            self._spool_full.ended()
        # The spool logs these itself: making room this way is expected, not an error.
        self._metrics.dropped(result.dead_letter_spans_evicted, "dead_letter_evicted")
        worker = self._worker
        if worker is not None and (
            result.traces_with_root or result.new_traces or result.early_traces or result.evicted
        ):
            # Only these can move the worker's next deadline (grace, max age) earlier.
            worker.wake()
        return SpanExportResult.FAILURE if result.rejected else SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Deliver every trace whose root has ended (grace skipped) and everything queued, one
        immediate attempt each; False if the outbox is not empty at the timeout."""
        worker = self._worker
        if self._is_shutdown or worker is None:
            return False
        return worker.flush(timeout_millis / 1000)

    def shutdown(self) -> None:
        """Flush within `shutdown_timeout`, stop the worker; what is left stays in the spool."""
        with self._shutdown_lock:
            if self._is_shutdown:
                return
            self._is_shutdown = True
            worker, spool = self._worker, self._spool
        self._stop_opening.set()
        if worker is None or spool is None:
            return  # the spool never opened: nothing was accepted
        try:
            # One more round for everything ready; what fails stays for the next start.
            worker.flush(self._shutdown_timeout / 2, until_drained=False)
        finally:
            worker.stop(self._shutdown_timeout / 2)
            spool.close()

    def delivery_state(self) -> DeliveryState:
        """How delivery to the sink is going (for `/health` and the metrics)."""
        worker = self._worker
        if worker is None:  # no spool yet: its disk stops everything
            return DeliveryState(stalled=self._unwritable.state())
        return worker.state()

    def wait_for_delivery(self, timeout: float) -> bool:
        """Block up to `timeout` seconds while more traces are due than one delivery takes
        (see DeliveryWorker.wait_until_caught_up); the receiver's pacing. True if caught up."""
        worker = self._worker
        return True if worker is None else worker.wait_until_caught_up(timeout)

    @property
    def spool_full(self) -> bool:
        """True while the spool is near its byte limit, or not open yet (its disk was full or
        read-only at start): the receiver answers 429/503 meanwhile."""
        spool = self._spool
        return spool is None or spool.full

    @property
    def spool(self) -> Spool | None:
        """The open spool; None until it could be opened (its disk was full or read-only when
        the exporter was built: exports are refused and it is tried again meanwhile)."""
        return self._spool

    @property
    def spool_stem(self) -> str:
        """The name of this exporter's own spool file, without `.sqlite3` (a second exporter of
        the same destination in this process uses `<stem>.1`, and so on)."""
        return self._spool_name

    @property
    def clock(self) -> Clock:
        return self._clock

    # --- private --------------------------------------------------------------------------------

    def _setting(self, setting: Setting[_T], value: _T | None) -> _T:
        return setting.for_sink(self.sink_name).resolve(value)

    def _malformed(self, span: object, error: Exception) -> None:
        _logger.error(
            "%s: dropping a malformed span %r: %r", self.sink_name, span, error, exc_info=True
        )
        self._metrics.dropped(1, "malformed")

    def _try_open(self) -> Spool | None:
        """The spool, opened; or None where a full or read-only disk (or missing permissions)
        keeps it from opening. The exporter starts anyway: it says so once, refuses exports
        (counted as dropped, as when the disk fills later) and `_keep_opening` opens the spool
        as soon as it can, then delivers what it holds. Nothing is kept in memory meanwhile: a
        span export() accepted is a span on disk, and what a crash would lose must not pass
        for accepted."""
        try:
            return self._open_spool(self._spool_dir, self._spool_name, **self._spool_bounds)
        except Exception as error:
            if not expected_error(error):
                raise
            self._unwritable.occurred(self._opening_failed(error))
            return None

    def _keep_opening_in_background(self) -> None:
        self._opener = threading.Thread(
            target=self._keep_opening, name=f"otel-bridge-{self.sink_name}-spool", daemon=True
        )
        self._opener.start()

    def _keep_opening(self) -> None:
        wait = _REOPEN_FIRST_S
        while not self._stop_opening.wait(wait):
            wait = min(wait * 2, _REOPEN_MAX_S)
            try:
                spool = self._open_spool(self._spool_dir, self._spool_name, **self._spool_bounds)
            except Exception as error:
                if not expected_error(error):
                    _logger.exception("%s: could not open the spool", self.sink_name)
                self._unwritable.occurred(self._opening_failed(error))
                continue
            with self._shutdown_lock:
                if self._is_shutdown:
                    spool.close()
                    return
                self._attach(spool)
            self._unwritable.ended()
            return

    def _opening_failed(self, error: Exception) -> str:
        """What the refusals say until the spool opens: the file, SQLite's words (for a full
        disk often only "disk I/O error") and the disk's free bytes, which tell what they mean."""
        try:
            free = f"{shutil.disk_usage(self._spool_dir).free} bytes free on its disk"
        except OSError as unreadable:
            free = f"its disk unreadable: {unreadable}"
        path = spool_path(self._spool_dir, self._spool_name)
        self._cannot_open = f"{path}: {error}, {free}; opening it again meanwhile"
        return self._cannot_open

    def _attach(self, spool: Spool) -> None:
        self._worker = self._start_worker(spool)
        self._spool = spool

    def _start_worker(self, spool: Spool) -> DeliveryWorker:
        worker = DeliveryWorker(
            name=self.sink_name,
            spool=spool,
            sink=self,
            policy=self._retry,
            clock=self._clock,
            metrics=self._metrics,
            grace_period=self.grace_period,
            max_trace_age=self.max_trace_age,
            max_batch=self._max_batch,
        )
        # Whatever a previous run left in the spool is delivered from here on.
        worker.start()
        return worker

    def _restart_in_child(self) -> None:
        """Run in a freshly forked child, while it has a single thread. The inherited spool is
        the parent's, which keeps delivering what it queued: the child lets go of it untouched
        and continues on a spool and worker of its own (the next free suffixed file, since the
        parent holds the lock on its own). Locks other threads of the parent may have held at
        the fork are replaced, so nothing in the child waits for a thread that is not there."""
        self._shutdown_lock = threading.Lock()
        # The parent's opener thread (if its spool never opened) is not in this process.
        self._stop_opening = threading.Event()
        self._opener = None
        if self._spool is not None:
            self._spool.abandon_after_fork()
        if self._is_shutdown:
            return
        try:
            spool = self._try_open()
        except Exception:
            # An exception here would only be printed by os.fork(); fail exports instead.
            _logger.exception(
                "%s: could not open a spool in the forked process %d; its exports fail",
                self.sink_name,
                os.getpid(),
            )
            self._is_shutdown = True
            return
        self._spool = spool  # the child's own (None while its disk is full); the worker next
        try:
            self._after_fork_in_child()
        except Exception:
            # A sink that builds its clients lazily rebuilds them on first use anyway.
            _logger.exception(
                "%s: _after_fork_in_child failed in the forked process %d; delivering anyway",
                self.sink_name,
                os.getpid(),
            )
        if spool is None:
            self._worker = None
            self._keep_opening_in_background()
        else:
            self._worker = self._start_worker(spool)

    def _open_spool(self, directory: Path, name: str, **bounds: object) -> Spool:
        for suffix in range(_MAX_SPOOL_SUFFIX):
            path = spool_path(directory, name if suffix == 0 else f"{name}.{suffix}")
            try:
                spool = Spool(path, **bounds)  # type: ignore[arg-type]
            except SpoolLockedError:
                continue
            except SpoolDestinationError as error:
                # Only a spool_name shared by exporters of different destinations gets here.
                _logger.warning("%s: %s; using another file", self.sink_name, error)
                continue
            self._adopt_orphans(spool, directory, name)
            return spool
        raise SpoolLockedError(
            f"{_MAX_SPOOL_SUFFIX} exporters already use spools named {name!r} in {directory}"
        )

    def _adopt_orphans(self, spool: Spool, directory: Path, name: str) -> None:
        """Take over spools of this sink that extra exporters left last time (e.g. a second
        drop-in handler), so what they queued is not stranded when fewer exporters run now."""
        siblings = [spool_path(directory, f"{name}.{n}") for n in range(1, _MAX_SPOOL_SUFFIX)]
        for path in [spool_path(directory, name), *siblings]:
            if path == spool.path or not path.exists():
                continue
            try:
                adopted = spool.adopt(path)
            except (SpoolLockedError, SpoolDestinationError):
                continue  # its exporter is alive and delivers it / not ours to deliver
            except Exception:
                _logger.exception("%s: could not take over the spool %s", self.sink_name, path)
                continue
            _logger.info(
                "%s: took over %d queued item(s) from %s", self.sink_name, adopted, path.name
            )

    def _report_other_destinations(self, base: str) -> None:
        """Say once, at start, what this sink's spool directory holds for other destinations:
        it stays where it is until an exporter for that destination runs."""
        try:
            others = [
                summary
                for summary in survey(self._spool_dir, prefix=base)
                if summary.held and not summary.in_use and summary.destination != self.destination
            ]
        except Exception:  # a report only; never a reason not to start
            _logger.debug("%s: could not survey %s", self.sink_name, self._spool_dir, exc_info=True)
            return
        for summary in others:
            where = (
                "an unrecorded destination (written by an older otel-bridge)"
                if summary.destination is None
                else describe_destination(summary.destination)
            )
            _logger.warning(
                "%s: %s holds %d trace(s) for %s, not this exporter's (%s); they stay there"
                " until an exporter for that destination runs (otel-bridge replay --list)",
                self.sink_name,
                summary.path,
                summary.held,
                where,
                describe_destination(self.destination),
            )


def spool_file_stem(base: str, destination: Mapping[str, str]) -> str:
    """`base`, or `base-<digest>` for a destination: one file name per destination."""
    if not destination:
        return base
    digest = hashlib.sha256(destination_key(destination).encode()).hexdigest()[:12]
    return f"{base}-{digest}"


# The fork hook and the spool gauge hold the exporter weakly: neither can be unregistered, and
# neither should keep an exporter alive.


def _spool_of(exporter: weakref.ref[TraceExporter]) -> Spool | None:
    alive = exporter()
    return None if alive is None else alive._spool


def _delivery_state_of(exporter: weakref.ref[TraceExporter]) -> DeliveryState | None:
    live = exporter()
    return None if live is None or live._is_shutdown else live.delivery_state()


def _restart_in_child(exporter: weakref.ref[TraceExporter]) -> None:
    alive = exporter()
    if alive is not None:
        alive._restart_in_child()
