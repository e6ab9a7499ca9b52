"""`otel-bridge serve`: run the OTLP receiver in front of the configured sinks until SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

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
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level (default INFO)",
    )


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        # Imported here so `otel-bridge --help` works without the serve extra installed.
        from otel_bridge.receiver import (
            BridgeConfig,
            ConfigError,
            Receiver,
            build_sinks,
            load_config,
        )
    except ImportError as exc:
        print(
            f"otel-bridge serve: {exc.name} is missing; install `otel-bridge[serve]`",
            file=sys.stderr,
        )
        return 2
    try:
        config = load_config(args.config) if args.config else BridgeConfig()
        sinks = build_sinks(config)
    except ConfigError as exc:
        print(f"otel-bridge serve: {args.config or 'default config'}: {exc}", file=sys.stderr)
        return 2
    meter_provider = _meter_provider(config.metrics_endpoint)
    try:
        receiver = Receiver(config, sinks, meter_provider=meter_provider)
    except OSError as exc:
        for sink in sinks:
            sink.exporter.shutdown()
        print(f"otel-bridge serve: cannot listen: {exc}", file=sys.stderr)
        return 1

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
    if receiver.http_port is not None and config.receiver.http is not None:
        _announce(
            f"OTLP/HTTP listening on http{tls}://{config.receiver.http.host}:{receiver.http_port}/v1/traces"
        )
    if receiver.grpc_port is not None and config.receiver.grpc is not None:
        _announce(f"OTLP/gRPC listening on {config.receiver.grpc.host}:{receiver.grpc_port}")
    _announce(f"sinks: {', '.join(sink.id for sink in sinks)}")
    # Event.wait with a timeout keeps the main thread responsive to signals.
    while not stop_requested.wait(0.5):
        pass
    receiver.stop()
    if meter_provider is not None:
        meter_provider.shutdown()
    _announce("stopped")
    return 0


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
