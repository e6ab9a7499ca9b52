"""Does the spool hold its disk limit under load? `otel-bridge serve` with the file sink and a
small `max_spool_bytes`, fed by OTLP/HTTP clients faster than the sink writes: every file of the
spool (database, WAL, shared memory) is measured on disk every 0.1 s; the bench prints the
largest total beside the limit, the requests refused with a retryable answer (429/503, which the
clients retry as an OTLP exporter does), accepted and delivered spans/s, how long the rest took
to drain once the load stopped, and whether every acknowledged span is in the file once.

    .venv/bin/python bench/spool_limit.py [--seconds 20] [--limit-mib 32] [--clients 4]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from receiver import _drain, _free_port, _fresh, _machine, _request_body, _wait_for_port


def _serve(http_port: int, spool_dir: str, limit: int) -> None:
    """Child process: the receiver with the file sink until terminated."""
    import signal

    from otel_bridge.file_sink import FileSpanExporter
    from otel_bridge.receiver import Receiver, Sink, parse_config

    config = parse_config(
        {"receiver": {"http": {"endpoint": f"127.0.0.1:{http_port}"}, "grpc": False}}
    )
    exporter = FileSpanExporter(
        Path(spool_dir) / "out.jsonl",
        lines="trace",  # requests through the spool: its limit is what is measured
        spool_dir=Path(spool_dir) / "spool",
        grace_period=0.5,
        max_trace_age=3600.0,
        max_spool_bytes=limit,
    )
    receiver = Receiver(config, [Sink("file", exporter)])
    sys.setswitchinterval(0.0005)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    receiver.start()
    stop.wait()
    receiver.stop(grace_seconds=1)


def _spool_bytes(directory: Path) -> tuple[int, int]:
    """Every file of the spool together, and the WAL alone."""
    total = wal = 0
    for path in directory.glob("*.sqlite3*"):
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            continue
        total += size
        if path.name.endswith("-wal"):
            wal += size
    return total, wal


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--limit-mib", type=float, default=32.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--spans-per-request", type=int, default=256)
    args = parser.parse_args()
    limit = int(args.limit_mib * 1024**2)
    body = _request_body(args.spans_per_request)
    print(f"machine: {_machine()}")
    print(
        f"load: {args.clients} clients x {args.seconds:.0f} s, {args.spans_per_request} spans "
        f"({len(body):,} bytes) per request; max_spool_bytes {limit:,}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="otel-bridge-spool-limit-") as scratch:
        port = _free_port()
        server = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(port, scratch, limit)
        )
        server.start()
        _wait_for_port(port)
        spool_dir = Path(scratch) / "spool"
        largest = [0, 0]
        peaks = [0, 0]  # the largest WAL, and the largest of the rest, each on its own
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.is_set():
                total, wal = _spool_bytes(spool_dir)
                if total > largest[0]:
                    largest[:] = [total, wal]
                peaks[:] = [max(peaks[0], wal), max(peaks[1], total - wal)]
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        accepted = [0] * args.clients
        acknowledged: list[bytes] = []  # every request answered 200, to audit the file with
        refused = [0] * args.clients
        deadline = time.monotonic() + args.seconds

        def client(index: int) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            connection.connect()
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            headers = {"Content-Type": "application/x-protobuf"}
            request = _fresh(body)
            while time.monotonic() < deadline:
                connection.request("POST", "/v1/traces", body=request, headers=headers)
                response = connection.getresponse()
                response.read()
                if response.status == 200:
                    accepted[index] += 1
                    acknowledged.append(request)
                    request = _fresh(body)
                elif response.status in (429, 503):
                    refused[index] += 1
                    time.sleep(0.05)  # the same request again, as an OTLP exporter retries
                else:
                    raise RuntimeError(f"HTTP {response.status}")

        started = time.monotonic()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        load_seconds = time.monotonic() - started
        accepted_spans = sum(accepted) * args.spans_per_request
        output = Path(scratch) / "out.jsonl"
        during, written, drained = _drain(output, accepted_spans, limit_s=600.0)
        audit = _audit(output, acknowledged)
        sampling.set()
        sampler.join()
        server.terminate()
        server.join(30)
    print(
        f"spool on disk (database + WAL + shm), largest sample: {largest[0] / 1024**2:.1f} MiB "
        f"(WAL {largest[1] / 1024**2:.1f} MiB) "
        f"against max_spool_bytes {limit / 1024**2:.1f} MiB "
        f"({largest[0] / limit:.2f}x; one request is {len(body) / 1024**2:.2f} MiB); "
        f"each at its own largest: WAL {peaks[0] / 1024**2:.1f} MiB, "
        f"database + shm {peaks[1] / 1024**2:.1f} MiB"
    )
    print(f"requests: {sum(accepted):,} accepted, {sum(refused):,} refused with 429/503 (retried)")
    print(
        f"file sink: accepted {accepted_spans / load_seconds:,.0f} spans/s, delivered "
        f"{during / load_seconds:,.0f} spans/s during the load; the rest "
        f"({accepted_spans - during:,} spans) written {drained:.1f} s after it stopped"
        f"{'' if written >= accepted_spans else f' (only {written:,} of {accepted_spans:,})'}"
    )
    print(audit)
    return 0


def _audit(output: Path, acknowledged: list[bytes], wait_s: float = 30.0) -> str:
    """Every span of every acknowledged request in the file exactly once? Waits up to `wait_s`
    for missing ones (a late piece goes after the grace period)."""
    wanted: set[tuple[str, str]] = set()
    for body in acknowledged:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                wanted.update((s.trace_id.hex(), s.span_id.hex()) for s in scope_spans.spans)
    deadline = time.monotonic() + wait_s
    while True:
        written: list[tuple[str, str]] = []
        with output.open(encoding="utf-8") as lines:
            for line in lines:
                for resource_spans in json.loads(line)["resourceSpans"]:
                    for scope_spans in resource_spans["scopeSpans"]:
                        written += ((s["traceId"], s["spanId"]) for s in scope_spans["spans"])
        present = set(written)
        missing = len(wanted - present)
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    return (
        f"exactly once: {len(wanted):,} acknowledged spans, {missing:,} missing from the file,"
        f" {len(written) - len(present):,} written twice"
        f" ({len(present - wanted):,} more from requests refused and never retried)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
