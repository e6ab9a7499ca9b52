"""collector-config/agent.yaml end to end in our Collector build (`make collector`):
app (OTLP/gRPC) -> agent Collector -> `otel-bridge serve` (file sink) and, in parallel, a backend
(a second Collector writing a file, examples/collector/backend.yaml).

Each test checks what reached each side span by span: every trace in the bridge's file exactly
once, in one piece (one line), with exactly its spans; every span at the backend. The bridge is
stopped (SIGSTOP), killed and restarted (SIGKILL), made to refuse with 429 + Retry-After, and
the agent itself is killed and restarted on its on-disk queues.
"""

from __future__ import annotations

import re
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from otel_bridge import otlp
from tests.support.collector import (
    CONFIG_DIR,
    TOKEN,
    Bridge,
    Collector,
    Processes,
    assert_no_deprecation_warnings,
    read_lines,
    retries,
    span_ids,
    start_backend,
    start_bridge,
    start_collector,
    wait_for,
)
from tests.support.collector_app import Trace, export_each, make_traces, trace_id
from tests.support.collector_app import span_ids as sent_span_ids

pytestmark = pytest.mark.slow

BRIDGE_EXPORTER = "otlp_http/bridge"
GRACE_PERIOD_S = 0.5


@dataclass
class AgentPath:
    processes: Processes
    directory: Path
    bridge: Bridge
    backend: Collector
    backend_file: Path
    agent: Collector

    def send(self, traces: Sequence[Trace]) -> None:
        export_each(self.agent.grpc_port, traces)

    def bridge_has(self, traces: Sequence[Trace]) -> bool:
        delivered = span_ids(self.bridge.deliveries())
        return all(
            sorted(delivered.get(trace_id(t), [])) == sorted(sent_span_ids(t)) for t in traces
        )

    def backend_has(self, traces: Sequence[Trace]) -> bool:
        received = span_ids(read_lines(self.backend_file))
        return all(sent_span_ids(t) <= set(received.get(trace_id(t), [])) for t in traces)


def start_agent(
    processes: Processes, directory: Path, bridge: Bridge, backend: Collector
) -> Collector:
    return start_collector(
        processes,
        [CONFIG_DIR / "agent.yaml"],
        directory,
        env={
            "BACKEND_OTLP_ENDPOINT": f"127.0.0.1:{backend.grpc_port}",
            "BACKEND_OTLP_INSECURE": "true",
            "OTEL_BRIDGE_ENDPOINT": bridge.http_endpoint,
            "OTEL_BRIDGE_TOKEN": TOKEN,
            "OTELCOL_STORAGE_DIR": str(directory / "agent-storage"),
        },
        name="agent",
    )


def agent_path(
    processes: Processes,
    directory: Path,
    *,
    sink: str = "",
    receiver: str = "",
    http: str = "",
) -> AgentPath:
    bridge = start_bridge(
        processes,
        directory / "bridge",
        receiver=receiver,
        http=http,
        sink=sink or f"    grace_period: {GRACE_PERIOD_S}",
    )
    backend, backend_file = start_backend(processes, directory)
    agent = start_agent(processes, directory, bridge, backend)
    assert_no_deprecation_warnings(agent, backend)
    return AgentPath(processes, directory, bridge, backend, backend_file, agent)


def assert_each_delivered_once_and_whole(bridge: Bridge, traces: Sequence[Trace]) -> None:
    deliveries = bridge.deliveries()
    lines = Counter(trace.trace_id for trace in deliveries)
    delivered = span_ids(deliveries)
    for trace in traces:
        key = trace_id(trace)
        assert lines[key] == 1, f"trace {key:032x} handed over {lines[key]} times"
        assert sorted(delivered[key]) == sorted(sent_span_ids(trace)), f"trace {key:032x}"


def test_every_trace_reaches_the_bridge_whole_and_the_backend(
    processes: Processes, tmp_path: Path
) -> None:
    path = agent_path(processes, tmp_path)
    traces = make_traces(30)
    path.send(traces)
    wait_for(lambda: path.bridge_has(traces), "the traces at the bridge")
    wait_for(lambda: path.backend_has(traces), "the traces at the backend")
    assert_each_delivered_once_and_whole(path.bridge, traces)
    assert len(path.bridge.deliveries()) == len(traces)
    assert_no_deprecation_warnings(path.agent, path.backend)


def test_a_stopped_bridge_delays_neither_the_backend_nor_loses_a_trace(
    processes: Processes, tmp_path: Path
) -> None:
    """SIGSTOP: the bridge's socket still accepts, nothing answers. The backend gets every trace
    while the bridge is stopped; the agent's request times out and is sent again (the retry
    log says so); once resumed, the bridge has every trace once, though it received some twice."""
    path = agent_path(processes, tmp_path)
    before = make_traces(10)
    path.send(before)
    wait_for(lambda: path.bridge_has(before), "the first traces at the bridge")

    path.bridge.pause()
    during = make_traces(30)
    path.send(during)
    wait_for(lambda: path.backend_has(during), "the traces at the backend, bridge stopped")
    wait_for(lambda: retries(path.agent, BRIDGE_EXPORTER), "the agent retrying the bridge")
    assert path.bridge.process.poll() is None
    assert not any(path.bridge_has([trace]) for trace in during)

    path.bridge.resume()
    wait_for(lambda: path.bridge_has(during), "the traces at the resumed bridge")
    assert_each_delivered_once_and_whole(path.bridge, [*before, *during])
    assert len(path.bridge.deliveries()) == len(before) + len(during)


def test_a_bridge_killed_mid_stream_and_restarted_loses_nothing(
    processes: Processes, tmp_path: Path
) -> None:
    """SIGKILL while the app is sending: what the bridge had acknowledged is in its spool, what
    it had not waits in the agent's queue; after the restart every trace is there once."""
    path = agent_path(processes, tmp_path, sink="    grace_period: 2.0")
    traces = make_traces(60)
    sender = threading.Thread(target=_send_paced, args=(path, traces))
    sender.start()
    try:
        wait_for(lambda: path.bridge.deliveries(), "the first trace at the bridge")
        path.bridge.kill()
    finally:
        sender.join()
    wait_for(lambda: path.backend_has(traces), "every trace at the backend, bridge down")
    wait_for(lambda: retries(path.agent, BRIDGE_EXPORTER), "the agent retrying the bridge")
    delivered_before_restart = len(path.bridge.deliveries())
    assert delivered_before_restart < len(traces)

    path.bridge.start()
    wait_for(lambda: path.bridge_has(traces), "every trace at the restarted bridge")
    assert_each_delivered_once_and_whole(path.bridge, traces)
    assert len(path.bridge.deliveries()) == len(traces)


def _send_paced(path: AgentPath, traces: Sequence[Trace]) -> None:
    # Spread over a few seconds, so that the kill lands while the app is still sending.
    for trace in traces:
        path.send([trace])
        time.sleep(0.05)


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|µs|us|ns)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}


def _seconds(go_duration: str) -> float:
    """A Go duration as the Collector logs it ("4s", "1m2.5s", "553.349929ms")."""
    parts = _DURATION_PART.findall(go_duration)
    assert "".join(number + unit for number, unit in parts) == go_duration, go_duration
    return sum(float(number) * _UNIT_S[unit] for number, unit in parts)


def _post_direct(bridge: Bridge, trace: Trace) -> int:
    """One OTLP/HTTP request straight to the bridge; its status code."""
    request = urllib.request.Request(
        f"{bridge.http_endpoint}/v1/traces",
        data=otlp.request_from_spans(trace).SerializeToString(),
        headers={"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {TOKEN}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as refused:
        return refused.code


def test_a_full_spool_answers_429_with_retry_after_and_the_agent_waits_it_out(
    processes: Processes, tmp_path: Path
) -> None:
    """The spool is filled straight through the bridge's port with large traces that wait out a
    grace period, until the bridge answers 429. A trace sent through the agent then is refused;
    the agent logs a throttled retry after at least Retry-After (longer than its own first
    backoff of about 1 s), and delivers the trace once the spool drained."""
    retry_after = 4
    path = agent_path(
        processes,
        tmp_path,
        receiver=f"  retry_after_seconds: {retry_after}",
        sink="    grace_period: 8.0\n    max_spool_bytes: 2000000\n    lines: trace",  # spooled
    )
    statuses = []
    for filler in make_traces(100, service="filler", padding=200_000):
        statuses.append(_post_direct(path.bridge, filler))
        if statuses[-1] != 200:
            break
    assert statuses[-1] == 429, statuses
    assert statuses[:-1] == [200] * (len(statuses) - 1)

    (trace,) = make_traces(1)
    path.send([trace])
    throttled = wait_for(
        lambda: [r for r in retries(path.agent, BRIDGE_EXPORTER) if "429" in r.get("error", "")],
        "the agent's retry after a 429",
    )
    assert f"Throttle ({retry_after}s)" in throttled[0]["error"]
    assert _seconds(throttled[0]["interval"]) >= retry_after
    wait_for(lambda: path.bridge_has([trace]), "the trace once the spool drained")
    assert_each_delivered_once_and_whole(path.bridge, [trace])
    assert all(_seconds(r["interval"]) >= retry_after for r in retries(path.agent, BRIDGE_EXPORTER))


def test_a_bridge_out_of_connections_answers_503_with_retry_after_and_the_agent_waits_it_out(
    processes: Processes, tmp_path: Path
) -> None:
    """The bridge allows one connection and the test holds it (an idle client, as a stuck
    sender would). The agent's connection is answered 503 with Retry-After and closed; the agent
    retries no sooner than Retry-After, and once the idle client leaves the trace arrives once."""
    retry_after = 4
    path = agent_path(
        processes,
        tmp_path,
        receiver=f"  retry_after_seconds: {retry_after}",
        http="max_connections: 1, idle_timeout_seconds: 120",
    )
    with socket.create_connection((path.bridge.host, path.bridge.http_port)) as idle:
        time.sleep(0.5)  # accepted and counted before the agent's connection arrives
        (trace,) = make_traces(1)
        path.send([trace])
        refused = wait_for(
            lambda: [
                r for r in retries(path.agent, BRIDGE_EXPORTER) if "503" in r.get("error", "")
            ],
            "the agent's retry after a 503",
        )
        assert _seconds(refused[0]["interval"]) >= retry_after, refused[0]
        assert not path.bridge_has([trace])
        idle.close()
        wait_for(lambda: path.bridge_has([trace]), "the trace once the connection was free")
    assert_each_delivered_once_and_whole(path.bridge, [trace])
    wait_for(lambda: path.backend_has([trace]), "the trace at the backend")


def test_a_killed_agent_restarted_on_its_disk_queues_loses_nothing(
    processes: Processes, tmp_path: Path
) -> None:
    """With the bridge down, the app's traces are acknowledged by the agent, which is then killed
    (SIGKILL, no shutdown) at once. Restarted on the same file_storage directory, with the bridge
    back, it delivers every trace to both sides."""
    path = agent_path(processes, tmp_path)
    path.bridge.kill()
    traces = make_traces(40)
    path.send(traces)  # every request acknowledged (export_each checks)
    path.agent.stop(signal.SIGKILL)
    path.bridge.start()
    path.agent.start()
    assert_no_deprecation_warnings(path.agent)
    wait_for(lambda: path.bridge_has(traces), "every trace at the bridge after the restart")
    wait_for(lambda: path.backend_has(traces), "every trace at the backend after the restart")
    assert_each_delivered_once_and_whole(path.bridge, traces)
