"""`otel-bridge serve`: an OTLP/HTTP and OTLP/gRPC receiver feeding the sink exporters."""

from __future__ import annotations

from otel_bridge.receiver.config import (
    BridgeConfig,
    ConfigError,
    ReceiverConfig,
    SinkConfig,
    load_config,
    parse_config,
)
from otel_bridge.receiver.ingest import Ingestor, Outcome, Sink, Verdict
from otel_bridge.receiver.server import Receiver, build_sinks, check_sinks

__all__ = [
    "BridgeConfig",
    "ConfigError",
    "Ingestor",
    "Outcome",
    "Receiver",
    "ReceiverConfig",
    "Sink",
    "SinkConfig",
    "Verdict",
    "build_sinks",
    "check_sinks",
    "load_config",
    "parse_config",
]
