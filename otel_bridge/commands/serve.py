"""`otel-bridge serve`: run the OTLP receiver in front of the configured sinks until SIGTERM.

Exit codes: 0 stopped cleanly (or `--check-config` found the configuration valid), 1 failed at
run time (e.g. a port already in use), 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from otel_bridge.commands import EXIT_FAILED, EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider

HELP = "receive OTLP traces (HTTP and gRPC) and hand them to the sink exporters"

_logger = logging.getLogger("otel_bridge.serve")
_SWITCH_INTERVAL_S = 0.0005


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="bridge YAML (receiver, sinks, spool_dir); default: the file sink into "
        "./otel-bridge-traces.jsonl, OTLP on 127.0.0.1:4318 (HTTP) and :4317 (gRPC)",
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the configuration (keys, files, sink names) and exit: 0 valid, 2 not",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="allow listening beyond loopback with neither a bearer token nor TLS "
        "(as receiver.insecure: true)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level, any case (default INFO)",
    )


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        # Imported here so `otel-bridge --help` works without the serve extra installed.
        from otel_bridge.receiver import (
            ConfigError,
            Receiver,
            build_sinks,
            check_sinks,
            load_config,
            parse_config,
        )
    except ImportError as exc:
        print(
            f"otel-bridge serve: {exc.name} is missing; install the serve extra: "
            "pip install 'otel-bridge[serve]' (in a checkout: pip install '.[serve]')",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        if args.config:
            config = load_config(args.config, insecure=args.insecure)
        else:
            config = parse_config(None, insecure=args.insecure)
        check_sinks(config)
        if args.check_config:
            print(f"otel-bridge serve: {args.config or 'default config'}: valid")
            return EXIT_OK
        sinks = build_sinks(config)
    except ConfigError as exc:
        print(f"otel-bridge serve: {args.config or 'default config'}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    meter_provider = _meter_provider(config.metrics_endpoint)
    try:
        receiver = Receiver(config, sinks, meter_provider=meter_provider)
    except OSError as exc:
        for sink in sinks:
            sink.exporter.shutdown()
        print(f"otel-bridge serve: cannot listen: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED

    stop_requested = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        _logger.info("received %s; stopping", signal.Signals(signum).name)
        stop_requested.set()

    # Handler threads convert spans (CPU) while others wait on sockets; with the default 5 ms
    # switch interval a thread back from I/O waits that long for the GIL, which halved OTLP/HTTP
    # throughput in bench/receiver.py. This process is ours, so the setting is too.
    sys.setswitchinterval(_SWITCH_INTERVAL_S)
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    receiver.start()
    tls = "s" if config.receiver.auth.tls else ""
    http, grpc = config.receiver.http, config.receiver.grpc
    if receiver.http_port is not None and http is not None:
        host = http.endpoint.host
        _announce(f"OTLP/HTTP listening on http{tls}://{host}:{receiver.http_port}/v1/traces")
    if receiver.grpc_port is not None and grpc is not None:
        _announce(f"OTLP/gRPC listening on {grpc.endpoint.host}:{receiver.grpc_port}")
    _announce(f"sinks: {', '.join(sink.id for sink in sinks)}")
    from otel_bridge.file_sink import FileSpanExporter
    from otel_bridge.otlp_json import spans_walk

    if any(
        isinstance(sink.exporter, FileSpanExporter) and sink.exporter.format == "json"
        for sink in sinks
    ):
        _announce(f"file sink: OTLP JSON lines written in {spans_walk()}")
    # Event.wait with a timeout keeps the main thread responsive to signals.
    while not stop_requested.wait(0.5):
        pass
    receiver.stop()
    if meter_provider is not None:
        meter_provider.shutdown()
    _announce("stopped")
    return EXIT_OK


def _announce(line: str) -> None:
    # Plain stdout lines: scripts and tests wait for "listening on" to learn the bound ports.
    print(f"otel-bridge serve: {line}", flush=True)


def _meter_provider(endpoint: str | None) -> MeterProvider | None:
    if not endpoint:
        return None
    # Imported only when asked for: the metrics SDK and exporter take a second to import, and
    # every `otel-bridge` command loads this module.
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint))
    return MeterProvider(metric_readers=[reader])
