"""Spans lost or duplicated when `otel-bridge serve` (file sink) is SIGKILLed at random moments
under sustained load and restarted: counted at the file sink, which must hold every span whose
request was acknowledged, exactly once.

The load generator sends whole traces over OTLP/HTTP from several clients and, as an OTLP
exporter does, retries a request until it is acknowledged (connection refused or reset while the
bridge is down, 429/503 while it is busy). The baseline is the promise itself: 0 lost, 0
duplicated. Exit status 1 if either is not 0.

    .venv/bin/python bench/receiver_kill.py [--kills 8] [--clients 4] [--seed 1]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from receiver import _free_port, _wait_for_port

SERVE = [str(Path(sys.executable).parent / "otel-bridge"), "serve"]
SPANS_PER_TRACE = 4
TRACES_PER_REQUEST = 16


def _request(rng: random.Random) -> tuple[bytes, list[str]]:
    """TRACES_PER_REQUEST whole traces (a root and its children), with fresh random ids."""
    request = ExportTraceServiceRequest()
    scope_spans = request.resource_spans.add().scope_spans.add()
    keys = []
    now = time.time_ns()
    for _ in range(TRACES_PER_REQUEST):
        trace_id = rng.randbytes(16)
        root_id = rng.randbytes(8)
        for index in range(SPANS_PER_TRACE):
            span = scope_spans.spans.add(
                trace_id=trace_id,
                span_id=root_id if index == 0 else rng.randbytes(8),
                parent_span_id=b"" if index == 0 else root_id,
                name="root" if index == 0 else f"child {index}",
                kind=Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=now,
                end_time_unix_nano=now + 1000,
            )
            keys.append(f"{trace_id.hex()}/{span.span_id.hex()}")
    return request.SerializeToString(), keys


class Bridge:
    """`otel-bridge serve` as a child process on a fixed port, killed and restarted at will."""

    def __init__(self, directory: Path, port: int) -> None:
        self.config = directory / "bridge.yaml"
        self.output = directory / "out.jsonl"
        self.config.write_text(
            f"receiver:\n  http: {{endpoint: '127.0.0.1:{port}'}}\n  grpc: false\n"
            f"spool_dir: {directory / 'spool'}\n"
            f"sinks:\n  file: {{path: {self.output}, grace_period: 0.2}}\n",
            encoding="utf-8",
        )
        self.log = (directory / "serve.log").open("ab")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [*SERVE, "--config", str(self.config), "--log-level", "warning"],
            stdout=self.log,
            stderr=self.log,
        )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(120)


def _client(
    port: int, seed: int, stop: threading.Event, acked: list[str], tally: dict[str, int]
) -> None:
    rng = random.Random(seed)
    connection: http.client.HTTPConnection | None = None
    while not stop.is_set():
        body, keys = _request(rng)
        while True:  # an OTLP exporter's retry: the same request until acknowledged
            try:
                if connection is None:
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                connection.request(
                    "POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"}
                )
                response = connection.getresponse()
                response.read()
                if response.status == 200:
                    acked.extend(keys)
                    tally["acknowledged"] += 1
                    break
                tally[f"HTTP {response.status}"] = tally.get(f"HTTP {response.status}", 0) + 1
            except (OSError, http.client.HTTPException):
                tally["connection errors"] += 1
                if connection is not None:
                    connection.close()
                connection = None
            time.sleep(0.05)


def _written_span_keys(path: Path) -> list[str]:
    keys = []
    if not path.exists():
        return keys
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        for resource_spans in json.loads(line).get("resourceSpans", []):
            for scope_spans in resource_spans.get("scopeSpans", []):
                for span in scope_spans.get("spans", []):
                    keys.append(f"{span['traceId']}/{span['spanId']}")
    return keys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=8)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--min-interval", type=float, default=0.5, help="seconds between kills")
    parser.add_argument("--max-interval", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-receiver-kill-") as scratch:
        port = _free_port()
        bridge = Bridge(Path(scratch), port)
        bridge.start()
        stop = threading.Event()
        acked: list[str] = []
        tally = {"acknowledged": 0, "connection errors": 0}
        clients = [
            threading.Thread(target=_client, args=(port, args.seed * 100 + i, stop, acked, tally))
            for i in range(args.clients)
        ]
        started = time.monotonic()
        for client in clients:
            client.start()
        for _ in range(args.kills):
            # Each kill lands at a random moment after the bridge serves again, under load.
            _wait_for_port(port, timeout_s=120)
            time.sleep(rng.uniform(args.min_interval, args.max_interval))
            bridge.kill()
            bridge.start()
        _wait_for_port(port, timeout_s=120)
        time.sleep(args.max_interval)  # load on the last instance too
        stop.set()
        for client in clients:
            client.join()
        elapsed = time.monotonic() - started
        exit_code = bridge.stop()  # SIGTERM: drains what the last instance holds
        written = _written_span_keys(bridge.output)
    lost = len(set(acked) - set(written))
    duplicated = len(written) - len(set(written))
    print(
        f"{args.kills} SIGKILLs at random moments while serving, {elapsed:.1f} s, {args.clients} clients, "
        f"{TRACES_PER_REQUEST * SPANS_PER_TRACE} spans/request; serve exit on SIGTERM: {exit_code}"
    )
    print(f"client outcomes: {', '.join(f'{k} {v}' for k, v in sorted(tally.items()))}")
    print(
        f"spans acknowledged {len(acked)}, written by the file sink {len(written)} "
        f"({len(set(written))} distinct): lost {lost}, duplicated {duplicated}"
    )
    return 0 if lost == 0 and duplicated == 0 and exit_code == 0 else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
