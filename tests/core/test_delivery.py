"""Delivery under injected faults, against a real loopback HTTP service (tests/support).

Nothing is lost, nothing is stored twice on the service side, shutdown never hangs. Grace and
backoff run on a FakeClock, so no test sleeps through them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_bridge.delivery import (
    RETRYABLE_HTTP_STATUS,
    FakeClock,
    RetryPolicy,
    error_for_http_status,
    retry_after_seconds,
)
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.sink import PermanentError, RetryableError
from tests.contract import DeliverySpy, MemorySink, make_spans
from tests.support.factories import shut_down_after
from tests.support.fault_service import Fault, FaultService, HttpTestSink
from tests.support.waiting import wait_until

POLICY = RetryPolicy(initial_backoff=4.0, max_backoff=60.0, jitter=0.0, deadline=600.0)


@pytest.fixture
def service() -> Iterator[FaultService]:
    with FaultService() as running:
        yield running


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_sink(
    service: FaultService, clock: FakeClock, tmp_path: Path
) -> Iterator[Callable[..., HttpTestSink]]:
    settings: dict[str, Any] = {
        "spool_dir": tmp_path / "spool",
        "grace_period": 1.0,
        "clock": clock,
        "retry": POLICY,
        "shutdown_timeout": 2.0,
    }
    yield from shut_down_after(
        lambda **options: HttpTestSink(service.url, **{**settings, **options})
    )


def key_of(spans: list[Any]) -> str:
    return format(spans[0].context.trace_id, "032x")


def posts(service: FaultService) -> int:
    return sum(1 for _, method in service.requests if method == "POST")


def waiting_for_retry(sink: HttpTestSink, clock: FakeClock) -> bool:
    """The item failed, went back to the outbox and waits for a later (fake) time."""
    return sink.spool.counts().outbox == 1 and sink.spool.due(clock.now(), 10) == []


def test_503_is_retried_after_backoff_and_delivered_once(
    service: FaultService, clock: FakeClock, make_sink: Callable[..., HttpTestSink]
) -> None:
    service.fail_next(Fault(status=503))
    sink = make_sink()
    spans = make_spans()
    sink.export(spans)
    clock.advance(1.0)  # the grace period
    wait_until(lambda: waiting_for_retry(sink, clock), what="the retry to be scheduled")
    assert posts(service) == 1 and service.keys() == set()
    (item,) = sink.spool.due(clock.now() + 4.0, 10)  # backoff attempt 1 = initial_backoff
    assert item.attempts == 1
    clock.advance(4.0)
    wait_until(lambda: service.keys() == {key_of(spans)}, what="delivery")
    assert [method for _, method in service.requests] == ["POST", "GET", "POST"]
    assert service.duplicates() == {}
    wait_until(lambda: sink.spool.counts().outbox == 0)


def test_429_retry_after_is_honoured(
    service: FaultService, clock: FakeClock, make_sink: Callable[..., HttpTestSink]
) -> None:
    service.fail_next(Fault(status=429, retry_after="30"))
    sink = make_sink()
    spans = make_spans()
    sink.export(spans)
    clock.advance(1.0)
    wait_until(lambda: waiting_for_retry(sink, clock))
    assert sink.spool.due(clock.now() + 29.9, 10) == []
    assert len(sink.spool.due(clock.now() + 30.0, 10)) == 1
    clock.advance(30.0)
    wait_until(lambda: service.keys() == {key_of(spans)})
    assert service.duplicates() == {}


@pytest.mark.parametrize("header", ["inf", "nan", "-5", "Infinity"])
def test_an_unusable_retry_after_falls_back_to_the_backoff(
    service: FaultService,
    clock: FakeClock,
    make_sink: Callable[..., HttpTestSink],
    header: str,
) -> None:
    """Not retried at once (nan, -5 read as 0 once), nor dead-lettered (inf read as forever)."""
    service.fail_next(Fault(status=503, retry_after=header))
    sink = make_sink()
    spans = make_spans()
    sink.export(spans)
    clock.advance(1.0)
    wait_until(lambda: waiting_for_retry(sink, clock))
    assert sink.spool.counts().dead_letters == 0
    assert sink.spool.due(clock.now() + 3.9, 10) == []
    assert len(sink.spool.due(clock.now() + 4.0, 10)) == 1  # backoff attempt 1
    clock.advance(4.0)
    wait_until(lambda: service.keys() == {key_of(spans)})


def test_a_timed_out_request_that_was_stored_is_not_sent_again(
    service: FaultService, clock: FakeClock, make_sink: Callable[..., HttpTestSink]
) -> None:
    service.fail_next(Fault(slow=3.0))  # stores the item, answers after the client gave up
    sink = make_sink(timeout=0.3)
    spans = make_spans()
    sink.export(spans)
    clock.advance(1.0)
    wait_until(lambda: waiting_for_retry(sink, clock))
    assert service.keys() == {key_of(spans)}
    clock.advance(4.0)
    wait_until(lambda: sink.spool.counts().outbox == 0, what="the already-delivered check")
    assert posts(service) == 1
    assert service.received[key_of(spans)] == 1


def test_connection_refused_delays_delivery_until_the_service_is_back(
    service: FaultService, clock: FakeClock, make_sink: Callable[..., HttpTestSink]
) -> None:
    service.refuse()
    sink = make_sink()
    spans = make_spans()
    sink.export(spans)
    clock.advance(1.0)
    wait_until(lambda: waiting_for_retry(sink, clock))
    clock.advance(4.0)  # a second refused attempt: backoff doubles
    wait_until(lambda: sink.spool.due(clock.now() + 1e6, 1)[0].attempts == 2)
    service.resume()
    clock.advance(8.0)
    wait_until(lambda: service.keys() == {key_of(spans)})
    assert service.duplicates() == {}


def test_400_goes_to_the_dead_letter_table_with_its_reason_and_can_be_replayed(
    service: FaultService, clock: FakeClock, make_sink: Callable[..., HttpTestSink]
) -> None:
    service.fail_next(Fault(status=400))
    sink = make_sink()
    rejected, accepted = make_spans(), make_spans()
    sink.export(rejected)
    clock.advance(1.0)
    wait_until(lambda: sink.spool.counts().dead_letters == 1)
    (dead,) = sink.spool.dead_letters()
    assert dead.key == key_of(rejected)
    assert "HTTP 400" in dead.reason
    sink.export(accepted)  # the sink keeps delivering other traces
    clock.advance(1.0)
    wait_until(lambda: service.keys() == {key_of(accepted)})

    assert sink.spool.requeue_dead_letters(clock.now()) == 1
    assert sink.force_flush(20_000)
    assert service.keys() == {key_of(rejected), key_of(accepted)}
    assert service.duplicates() == {}
    assert sink.spool.counts().dead_letters == 0


def test_an_item_failing_past_the_deadline_is_dead_lettered(
    service: FaultService, clock: FakeClock, make_sink: Callable[..., HttpTestSink]
) -> None:
    service.fail_next(*[Fault(status=503)] * 5)
    sink = make_sink(retry=RetryPolicy(initial_backoff=4.0, jitter=0.0, deadline=10.0))
    sink.export(make_spans())
    clock.advance(1.0)
    wait_until(lambda: waiting_for_retry(sink, clock))
    clock.advance(4.0)  # attempt 2 fails; the next wait (8 s) would pass the 10 s deadline
    wait_until(lambda: sink.spool.counts().dead_letters == 1)
    (dead,) = sink.spool.dead_letters()
    assert dead.reason.startswith("gave up after 2 attempt(s)")
    assert "HTTP 503" in dead.reason


def test_shutdown_never_hangs_behind_a_slow_sink_and_the_restart_delivers_once(
    service: FaultService, clock: FakeClock, make_sink: Callable[..., HttpTestSink]
) -> None:
    service.fail_next(Fault(slow=8.0))
    first = make_sink(timeout=30.0, shutdown_timeout=0.5)
    spans = make_spans()
    first.export(spans)
    clock.advance(1.0)
    wait_until(lambda: posts(service) == 1, what="the slow request to start")
    stopper = threading.Thread(target=first.shutdown)
    stopper.start()
    stopper.join(10)
    assert not stopper.is_alive(), "shutdown hung behind a blocked request"

    second = make_sink()
    assert second.spool.path == first.spool.path
    assert second.force_flush(20_000)
    assert service.received[key_of(spans)] == 1
    assert posts(service) == 1


def test_many_threads_exporting_at_once(
    service: FaultService, clock: FakeClock, make_sink: Callable[..., HttpTestSink]
) -> None:
    sink = make_sink(max_batch=16)
    traces = [make_spans() for _ in range(8 * 25)]
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def export_share(share: list[list[Any]]) -> None:
        try:
            start.wait()
            for grandchild, child, root in share:
                # Children and root in separate calls, as several processor batches would.
                sink.export([grandchild])
                sink.export([root, child])
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=export_share, args=(traces[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sink.force_flush(60_000)
    assert service.keys() == {key_of(spans) for spans in traces}
    assert service.duplicates() == {}
    for spans in traces[:5]:
        stored = FinishedTrace.from_dict(service.payloads[key_of(spans)])
        assert len(stored.spans) == 3 and not stored.partial


def test_health_metrics(
    service: FaultService, clock: FakeClock, make_sink: Callable[..., HttpTestSink]
) -> None:
    reader = InMemoryMetricReader()
    service.fail_next(Fault(status=400), Fault(status=503))
    sink = make_sink(meter_provider=MeterProvider(metric_readers=[reader]))
    sink.export(make_spans())
    clock.advance(1.0)
    wait_until(lambda: sink.spool.counts().dead_letters == 1)
    sink.export(make_spans())
    clock.advance(1.0)
    wait_until(lambda: waiting_for_retry(sink, clock))
    clock.advance(4.0)
    wait_until(lambda: sink.spool.counts().outbox == 0)
    values: dict[str, float] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    values[metric.name] = getattr(point, "value", getattr(point, "count", 0))
                    assert point.attributes["otel_bridge.sink"] == "httptest"
    assert values["otel_bridge.delivery.queued"] == 2
    assert values["otel_bridge.delivery.retried"] == 1
    assert values["otel_bridge.delivery.delivered"] == 1
    assert values["otel_bridge.delivery.dead_lettered"] == 1
    assert values["otel_bridge.delivery.latency"] == 1
    # The delivered trace left the spool; the dead letter still takes its room there.
    assert values["otel_bridge.delivery.spool.usage"] == sink.spool.bytes_used > 0
    assert sink.spool.counts().outbox == 0


# --- the retry policy as data ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        *((status, RetryableError) for status in (408, 429, 500, 502, 503, 504)),
        (400, PermanentError),
        (401, PermanentError),
        (403, PermanentError),
        (404, PermanentError),
        (413, PermanentError),
        (422, PermanentError),
    ],
)
def test_http_status_classification(status: int, kind: type[Exception]) -> None:
    assert isinstance(error_for_http_status(status, "x"), kind)
    assert (status in RETRYABLE_HTTP_STATUS) is (kind is RetryableError)


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412480.0) == 30.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
    error = error_for_http_status(429, "slow down", "7")
    assert isinstance(error, RetryableError) and error.retry_after == 7.0


def test_backoff_grows_exponentially_within_jitter_and_cap() -> None:
    policy = RetryPolicy(initial_backoff=1.0, multiplier=2.0, max_backoff=10.0, jitter=0.25)
    for attempt, base in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)]:
        for _ in range(20):
            assert base * 0.75 <= policy.backoff(attempt) <= base * 1.25


def test_the_logged_errors_the_worker_remembers_are_bounded(
    make_sink: Callable[..., HttpTestSink], caplog: pytest.LogCaptureFixture
) -> None:
    """Errors whose text changes every time (ids, times) must not grow the memory for good:
    the oldest is forgotten (and logged in full again should it come back)."""
    worker = make_sink()._worker
    with caplog.at_level("WARNING", logger="otel_bridge.delivery"):
        for number in range(1000):
            worker._log_once(ValueError(f"request {number} failed"), "deliver")
        caplog.clear()
        worker._log_once(ValueError("request 999 failed"), "deliver")
        worker._log_once(ValueError("request 0 failed"), "deliver")
    assert [record.levelname for record in caplog.records] == ["WARNING", "ERROR"]
    assert len(worker._logged_errors) <= 256


@pytest.mark.parametrize(
    ("hint", "due_after"),
    [(float("inf"), 4.0), (float("nan"), 4.0), (-1.0, 4.0), (7.0, 7.0), (1e9, 3600.0)],
)
def test_a_sinks_own_retry_hint_is_used_only_when_usable_and_bounded(
    clock: FakeClock, tmp_path: Path, hint: float, due_after: float
) -> None:
    """A sink may raise RetryableError(retry_after=...) with any float: not a number or below 0
    means the backoff (4 s here), and a long one is bounded (never past the deadline at once)."""
    policy = RetryPolicy(initial_backoff=4.0, jitter=0.0, deadline=24 * 3600.0)
    sink = MemorySink(spool_dir=tmp_path / "spool", grace_period=1.0, clock=clock, retry=policy)
    spy = DeliverySpy(sink)
    spy.fail_with = RetryableError("slow down", retry_after=hint)
    try:
        sink.export(make_spans())
        clock.advance(1.0)
        wait_until(lambda: sink.spool.counts().outbox == 1 and spy.entered.is_set())
        wait_until(lambda: sink.spool.due(clock.now(), 10) == [])
        assert sink.spool.counts().dead_letters == 0
        assert sink.spool.due(clock.now() + due_after - 0.01, 10) == []
        assert len(sink.spool.due(clock.now() + due_after, 10)) == 1
    finally:
        sink.shutdown()
