"""Spans per second accepted by `otel-bridge serve` over OTLP/HTTP (protobuf) and OTLP/gRPC,
beside rotel (a Rust OpenTelemetry collector, blackhole exporter) fed the same load in the same run.

The bridge runs in its own process with a no-op sink taking decoded requests (`export_request`:
the receiver's own cost, HTTP/gRPC, decoding, validation), and once more with the real file
sink, which writes each request to its file before acknowledging it (a sink with a remote
destination spools it instead): the bench prints the spans/s it accepted beside those in the
file meanwhile, and how long the rest took once the load stopped. The load generator is the
same Python client for every target, so rotel's figure is a lower bound (the client may
saturate first); the last lines give each of ours as a fraction of rotel's on the same protocol.

    .venv/bin/python bench/receiver.py [--seconds 5] [--spans-per-request 256] [--clients 4]
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc
import rotel
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_bridge import otlp, otlp_json
from otel_bridge.trace_files import requests_in_file

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
ROTEL_BINARY = Path(rotel.__file__).parent / "rotel-agent"
TRACE_ID_TAIL = bytes.fromhex("5eed0fb1d9e7c0de")


class _NoOpSink(SpanExporter):
    """Takes decoded requests as they come (`export_request`), so what is measured is the
    receiver's own cost: HTTP/gRPC, decoding, validation, acknowledgement."""

    def export_request(self, request: ExportTraceServiceRequest) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _request_body(spans_per_request: int) -> bytes:
    """A request shaped like LangChain traces: chains with LLM children and GenAI attributes."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    while len(memory.get_finished_spans()) < spans_per_request:
        with (
            tracer.start_as_current_span(
                "RunnableSequence", attributes={"langchain.run.type": "chain"}
            ),
            tracer.start_as_current_span(
                "chat FakeChatModel",
                attributes={
                    "langchain.run.type": "chat_model",
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "fake-model",
                    "gen_ai.usage.input_tokens": 120,
                    "gen_ai.usage.output_tokens": 42,
                    "gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text",'
                    '"content":"What is the capital of France?"}]}]',
                },
            ),
        ):
            pass
    spans = list(memory.get_finished_spans())[:spans_per_request]
    request = otlp.request_from_spans(spans)
    for span in request.resource_spans[0].scope_spans[0].spans:
        span.trace_id = span.trace_id[:8] + TRACE_ID_TAIL
    return request.SerializeToString()


def _fresh(body: bytes) -> bytes:
    """The body with new trace ids: every trace id ends in TRACE_ID_TAIL, replaced in one pass,
    so each request carries spans never sent before (a sink drops spans it already has)."""
    return body.replace(TRACE_ID_TAIL, os.urandom(len(TRACE_ID_TAIL)))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def _serve_bridge(http_port: int, grpc_port: int, sink: str, spool_dir: str) -> None:
    """Child process: the receiver with the chosen sink until terminated."""
    import signal

    from otel_bridge.file_sink import FileSpanExporter
    from otel_bridge.receiver import Receiver, Sink, parse_config

    if sink == "file-python":  # the walk otel_bridge uses without otel_bridge_speedups
        otlp_json._native_spans_json = None

    config = parse_config(
        {
            "receiver": {
                "http": {"endpoint": f"127.0.0.1:{http_port}"},
                "grpc": {"endpoint": f"127.0.0.1:{grpc_port}"},
            }
        }
    )
    exporter: SpanExporter = (
        _NoOpSink()
        if sink == "no-op"
        else FileSpanExporter(
            Path(spool_dir) / "out.jsonl",
            format="proto" if sink == "file-proto" else "json",  # json: file, file-python
            spool_dir=spool_dir,
            grace_period=0.5,
            max_trace_age=3600.0,
            max_spool_bytes=8 * 1024**3,
        )
    )
    receiver = Receiver(config, [Sink(sink, exporter)])
    sys.setswitchinterval(0.0005)  # as `otel-bridge serve` does (see commands/serve.py)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    receiver.start()
    stop.wait()
    receiver.stop(grace_seconds=1)


def _drive(clients: int, seconds: float, send: Callable[[], Callable[[], None]]) -> int:
    """Run `clients` threads, each sending back to back for `seconds`; return requests sent."""
    counts = [0] * clients
    errors: list[BaseException] = []
    start = threading.Barrier(clients + 1)

    def client(index: int) -> None:
        try:
            one = send()
            start.wait()
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                one()
                counts[index] += 1
        except BaseException as error:
            errors.append(error)
            raise

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"a client failed: {errors[0]!r}")
    return sum(counts)


def _http_sender(port: int, body: bytes) -> Callable[[], Callable[[], None]]:
    def make() -> Callable[[], None]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.connect()
        # As urllib3 (the OTel SDK's HTTP exporter) and Go clients do: http.client sends the
        # headers and a large body in two writes, which Nagle would hold for a delayed ACK.
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        headers = {"Content-Type": "application/x-protobuf"}

        def send() -> None:
            connection.request("POST", "/v1/traces", body=_fresh(body), headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}")

        return send

    return make


def _grpc_sender(port: int, body: bytes) -> Callable[[], Callable[[], None]]:
    def make() -> Callable[[], None]:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        export = channel.unary_unary(EXPORT_METHOD)

        def send() -> None:
            export(_fresh(body), timeout=60)

        return send

    return make


def _spans_in(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as file:
        if file.read(1) not in (b"{", b""):  # format: proto
            return sum(otlp.span_count(request) for request in requests_in_file(path))
        file.seek(0)
        return sum(line.count(b'"spanId"') for line in file)


def _drain(output: Path, accepted: int, limit_s: float = 300.0) -> tuple[int, int, float]:
    """Spans the file sink had written when the load stopped, spans written once it caught up
    (or gave up after `limit_s`), and the seconds that took."""
    during = _spans_in(output)
    stopped = time.monotonic()
    written = during
    while written < accepted and time.monotonic() - stopped < limit_s:
        time.sleep(0.5)
        written = _spans_in(output)
    return during, written, time.monotonic() - stopped


def _print_delivery(output: Path, accepted: int, load_seconds: float) -> None:
    """What the file sink had written when the load stopped, and how long it took to catch up."""
    during, written, drained = _drain(output, accepted)
    print(
        f"file sink: accepted {accepted / load_seconds:,.0f} spans/s, delivered "
        f"{during / load_seconds:,.0f} spans/s during the load; the rest "
        f"({accepted - during:,} spans) written {drained:.1f} s after it "
        f"stopped{'' if written >= accepted else f' (only {written:,} of {accepted:,})'}",
        flush=True,
    )


def _machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return (
        f"{platform.platform()}; {model}; {os.cpu_count()} CPUs; {memory:.0f} GiB; "
        f"Python {platform.python_version()}; grpcio {grpc.__version__}; "
        f"load average {os.getloadavg()[0]:.1f} (shared machine)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per target and protocol")
    parser.add_argument("--spans-per-request", type=int, default=256)
    parser.add_argument("--clients", type=int, default=4, help="concurrent client connections")
    args = parser.parse_args()
    body = _request_body(args.spans_per_request)
    print(f"machine: {_machine()}")
    print(
        f"load: {args.clients} clients, {args.spans_per_request} spans/request "
        f"({len(body)} bytes protobuf), {args.seconds:.0f} s per row, same client for all targets"
    )
    print(f"{'target':<58}{'protocol':<10}{'requests':>10}{'spans/s':>12}")
    context = multiprocessing.get_context("spawn")
    results: list[tuple[str, str, int, float]] = []
    rotel_rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-receiver-") as scratch:
        sinks = ["no-op", "file", "file-python", "file-proto"]
        if otlp_json._native_spans_json is None:
            sinks.remove("file-python")  # "file" is already the Python walk
        for sink in sinks:
            http_port, grpc_port = _free_port(), _free_port()
            spool = Path(scratch) / sink
            process = context.Process(
                target=_serve_bridge, args=(http_port, grpc_port, sink, str(spool))
            )
            process.start()
            try:
                _wait_for_port(http_port)
                _wait_for_port(grpc_port)
                label = f"otel-bridge serve, {sink} sink"
                if sink == "file-proto":
                    label = "otel-bridge serve, file sink, format: proto"
                elif sink == "file":
                    walk = "Python" if otlp_json._native_spans_json is None else "C"
                    label = f"otel-bridge serve, file sink, format: json ({walk} walk)"
                elif sink == "file-python":
                    label = "otel-bridge serve, file sink, format: json (Python walk)"
                for protocol, sender in (
                    ("http", _http_sender(http_port, body)),
                    ("grpc", _grpc_sender(grpc_port, body)),
                ):
                    requests = _drive(args.clients, args.seconds, sender)
                    results.append(
                        (
                            label,
                            protocol,
                            requests,
                            requests * args.spans_per_request / args.seconds,
                        )
                    )
                    print(
                        f"{label:<58}{protocol:<10}{requests:>10}{results[-1][3]:>12,.0f}",
                        flush=True,
                    )
                if sink != "no-op":
                    accepted = sum(r[2] for r in results[-2:]) * args.spans_per_request
                    _print_delivery(spool / "out.jsonl", accepted, 2 * args.seconds)
            finally:
                process.terminate()
                process.join(30)
        http_port, grpc_port = _free_port(), _free_port()
        rotel_process = subprocess.Popen(
            [
                str(ROTEL_BINARY),
                "start",
                "--otlp-grpc-endpoint",
                f"127.0.0.1:{grpc_port}",
                "--otlp-http-endpoint",
                f"127.0.0.1:{http_port}",
                "--exporter",
                "blackhole",
                "--pid-file",
                str(Path(scratch) / "rotel.pid"),
                "--log-file",
                str(Path(scratch) / "rotel.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for_port(http_port)
            _wait_for_port(grpc_port)
            for protocol, sender in (
                ("http", _http_sender(http_port, body)),
                ("grpc", _grpc_sender(grpc_port, body)),
            ):
                requests = _drive(args.clients, args.seconds, sender)
                rate = requests * args.spans_per_request / args.seconds
                rotel_rates[protocol] = rate
                print(
                    f"{'rotel (blackhole exporter)':<58}{protocol:<10}{requests:>10}{rate:>12,.0f}"
                )
        finally:
            rotel_process.terminate()
            rotel_process.wait(30)
    for label, protocol, _, rate in results:
        print(f"{label} / rotel, {protocol}: {rate / rotel_rates[protocol]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
