"""The receiver and the sinks' delivery, seen together: requests are paced to what a sink
delivers, `/health` and the metrics show how delivery is going, and a full spool's episode ends
when the spool has room, not at the next request.

Real receiver over loopback, real spools; the sinks are in-memory `TraceExporter`s whose
`deliver` can hang or fail.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_bridge import otlp
from otel_bridge.receiver import Receiver, Sink, parse_config
from tests import contract
from tests.contract import DeliverySpy, make_spans


def _receiver(sink: contract.MemorySink, **receiver: Any) -> Receiver:
    section = {"http": {"endpoint": "127.0.0.1:0"}, "grpc": False, **receiver}
    started = Receiver(parse_config({"receiver": section}), [Sink("memory", sink)])
    started.start()
    return started


def _request(receiver: Receiver, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    assert receiver.http_port is not None
    connection = http.client.HTTPConnection("127.0.0.1", receiver.http_port, timeout=60)
    try:
        headers = {"Content-Type": "application/x-protobuf"} if body else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _post_traces(receiver: Receiver, count: int) -> int:
    spans = [span for _ in range(count) for span in make_spans(("root", "child"))]
    status, _ = _request(
        receiver, "POST", "/v1/traces", otlp.request_from_spans(spans).SerializeToString()
    )
    return status


def _health(receiver: Receiver) -> dict[str, Any]:
    status, body = _request(receiver, "GET", "/health")
    assert status == 200
    document: dict[str, Any] = json.loads(body)
    return document


def _gauge(reader: InMemoryMetricReader, name: str) -> int | None:
    data = reader.get_metrics_data()
    assert data is not None
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    return int(metric.data.data_points[-1].value)
    return None


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for receiver in made:
        receiver.stop(grace_seconds=1)


def test_health_and_metrics_show_a_failing_sink_until_it_recovers(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    reader = InMemoryMetricReader()
    sink = contract.SwitchableSink(
        spool_dir=tmp_path, grace_period=0.0, meter_provider=MeterProvider(metric_readers=[reader])
    )
    receiver = _receiver(sink)
    receivers.append(receiver)
    healthy = _health(receiver)
    assert healthy["status"] == "ok"
    assert healthy["sinks"]["memory"]["delivery"] == {"state": "ok", "behind": False}
    assert _gauge(reader, "otel_bridge.delivery.failing") == 0

    sink.down = True
    assert _post_traces(receiver, 3) == 200  # accepted: the spool holds them
    sink.force_flush(2_000)  # attempts, which fail

    failing = _health(receiver)
    assert failing["status"] == "degraded"
    delivery = failing["sinks"]["memory"]["delivery"]
    assert delivery["state"] == "failing"
    assert delivery["failing"]["count"] >= 3  # attempts that failed: three traces, retried
    assert delivery["failing"]["since"]
    assert failing["sinks"]["memory"]["state"] == "ok"  # the receiver still accepts
    assert _gauge(reader, "otel_bridge.delivery.failing") == 1

    sink.down = False
    assert sink.force_flush(10_000)
    recovered = _health(receiver)
    assert recovered["status"] == "ok"
    assert recovered["sinks"]["memory"]["delivery"]["state"] == "ok"
    assert _gauge(reader, "otel_bridge.delivery.failing") == 0
    assert len(sink.delivered) == 3


def test_a_request_waits_while_the_sink_is_behind_and_nothing_is_lost(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    sink = contract.MemorySink(spool_dir=tmp_path, grace_period=0.0, max_batch=2)
    spy = DeliverySpy(sink)
    # A long pacing wait, so the request can only be answered once delivery caught up.
    receiver = _receiver(sink)
    receiver.ingestor.pace_seconds = 120.0
    receivers.append(receiver)
    spy.block()
    assert _post_traces(receiver, 6) == 200  # 6 traces due: three deliveries of two
    assert spy.entered.wait(10)
    assert not sink.wait_for_delivery(0.2)  # a full batch is in hand and more are due

    answered: list[int] = []
    late = threading.Thread(target=lambda: answered.append(_post_traces(receiver, 1)))
    late.start()
    late.join(0.5)
    assert late.is_alive() and not answered  # held while the worker is behind

    spy.release()
    late.join(30)
    assert answered == [200]
    assert sink.force_flush(10_000)
    delivered = [trace.trace_id for trace in sink.delivered]
    assert len(delivered) == len(set(delivered)) == 7


def test_a_failing_sink_is_not_behind_so_the_spool_absorbs_the_outage(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    sink = contract.SwitchableSink(spool_dir=tmp_path, grace_period=0.0, max_batch=2)
    sink.down = True
    receiver = _receiver(sink)
    receiver.ingestor.pace_seconds = 120.0
    receivers.append(receiver)
    for _ in range(3):
        assert _post_traces(receiver, 4) == 200
        sink.force_flush(2_000)
    # Every item waits for a retry: none is due, so requests are not held back.
    assert sink.wait_for_delivery(0)
    started = time.monotonic()
    assert _post_traces(receiver, 4) == 200
    assert time.monotonic() - started < 60  # far below the 120 s pacing wait
    sink.down = False
    assert sink.force_flush(10_000)
    assert len({trace.trace_id for trace in sink.delivered}) == len(sink.delivered) == 16


def test_a_full_spool_episode_ends_when_the_spool_drains_without_another_request(
    tmp_path: Path, receivers: list[Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    sink = contract.SwitchableSink(spool_dir=tmp_path, grace_period=0.0, max_spool_bytes=64 * 1024)
    sink.down = True
    receiver = _receiver(sink, retry_after_seconds=1)
    receivers.append(receiver)
    with caplog.at_level(logging.INFO, logger="otel_bridge.receiver"):
        refused = 0
        for _ in range(200):
            if _post_traces(receiver, 20) == 429:
                refused += 1
                break
        assert refused, "the spool never filled"
        assert _health(receiver)["sinks"]["memory"]["state"] == "spool_full"

        sink.down = False
        assert sink.force_flush(30_000)
        # No request comes in: the ticker ends the episode once the spool has room.
        deadline = time.monotonic() + 30
        ended = []
        while time.monotonic() < deadline and not ended:
            ended = [r for r in caplog.records if "no longer spool full" in r.getMessage()]
            time.sleep(0.1)
    assert ended and ended[0].levelname == "INFO"
    assert "1 request(s)" in ended[0].getMessage()
    health = _health(receiver)
    assert health["status"] == "ok"
    assert health["sinks"]["memory"]["state"] == "ok"
