"""The receiver as one object: sinks built from the config, both transports, orderly shutdown."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace.export import SpanExporter

from otel_bridge.plugins import TRACES_EXPORTER_GROUP, sink_entry_points
from otel_bridge.receiver.auth import server_ssl_context
from otel_bridge.receiver.config import BridgeConfig, ConfigError, SinkConfig
from otel_bridge.receiver.grpc_server import OTLPGRPCServer
from otel_bridge.receiver.http_server import HTTPLimits, OTLPHTTPServer
from otel_bridge.receiver.ingest import Ingestor, Sink

__all__ = ["Receiver", "build_sinks", "check_sinks"]

_logger = logging.getLogger(__name__)


def check_sinks(config: BridgeConfig) -> None:
    """ConfigError unless every configured sink names an installed exporter (nothing built)."""
    available = {ep.name: ep for ep in sink_entry_points()}
    for sink in config.sinks:
        _entry_point(sink, available)


def build_sinks(config: BridgeConfig) -> list[Sink]:
    """Instantiate each configured sink from its entry point, with its options.

    The top-level `spool_dir` is passed to every sink that does not set its own.
    """
    available = {ep.name: ep for ep in sink_entry_points()}
    sinks: list[Sink] = []
    try:
        for sink_config in config.sinks:
            sinks.append(Sink(sink_config.id, _build_sink(sink_config, config, available)))
    except BaseException:
        for sink in sinks:
            sink.exporter.shutdown()
        raise
    return sinks


def _entry_point(sink: SinkConfig, available: dict[str, Any]) -> Any:
    entry_point = available.get(sink.type)
    if entry_point is None:
        installed = ", ".join(sorted(available)) or "none"
        raise ConfigError(
            f"sinks.{sink.id}: no exporter named {sink.type!r} in entry point group "
            f"{TRACES_EXPORTER_GROUP} (installed: {installed})"
        )
    return entry_point


def _build_sink(sink: SinkConfig, config: BridgeConfig, available: dict[str, Any]) -> SpanExporter:
    entry_point = _entry_point(sink, available)
    options = dict(sink.options)
    if config.spool_dir is not None and "spool_dir" not in options:
        options["spool_dir"] = config.spool_dir
        # Two instances of one sink type must not share a spool file.
        if "/" in sink.id and "spool_name" not in options:
            options["spool_name"] = sink.id.replace("/", "-")
    try:
        exporter = entry_point.load()(**options)
    except TypeError as exc:
        raise ConfigError(f"sinks.{sink.id}: invalid options: {exc}") from exc
    except ValueError as exc:  # exporters report missing settings this way
        raise ConfigError(f"sinks.{sink.id}: {exc}") from exc
    if not isinstance(exporter, SpanExporter):
        raise ConfigError(f"sinks.{sink.id}: {entry_point.value} is not a SpanExporter")
    return exporter


class Receiver:
    """Both OTLP transports over one Ingestor. `start()`, then `stop()` (idempotent)."""

    def __init__(
        self,
        config: BridgeConfig,
        sinks: Sequence[Sink],
        *,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        receiver = config.receiver
        self.ingestor = Ingestor(
            sinks, retry_after_seconds=receiver.retry_after_seconds, meter_provider=meter_provider
        )
        auth = receiver.auth
        self.http: OTLPHTTPServer | None = None
        self.grpc: OTLPGRPCServer | None = None
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()
        http, grpc = receiver.http, receiver.grpc
        try:
            if http is not None:
                limits = HTTPLimits(
                    max_request_bytes=receiver.max_request_bytes,
                    max_concurrent_requests=receiver.max_concurrent_requests,
                    max_connections=http.max_connections,
                    idle_timeout_seconds=http.idle_timeout_seconds,
                    read_timeout_seconds=http.read_timeout_seconds,
                    tls_handshake_timeout_seconds=http.tls_handshake_timeout_seconds,
                    backlog=http.backlog,
                )
                self.http = OTLPHTTPServer(
                    http.endpoint,
                    self.ingestor,
                    limits,
                    bearer_token=auth.bearer_token,
                    ssl_context=server_ssl_context(auth.tls) if auth.tls else None,
                    cors=http.cors,
                )
            if grpc is not None:
                self.grpc = OTLPGRPCServer(
                    str(grpc.endpoint),
                    self.ingestor,
                    max_request_bytes=receiver.max_request_bytes,
                    max_workers=receiver.max_concurrent_requests,
                    max_connections=grpc.max_connections,
                    max_connection_age_seconds=grpc.max_connection_age_seconds,
                    max_connection_age_grace_seconds=grpc.max_connection_age_grace_seconds,
                    idle_timeout_seconds=grpc.idle_timeout_seconds,
                    read_timeout_seconds=grpc.read_timeout_seconds,
                    tls_handshake_timeout_seconds=grpc.tls_handshake_timeout_seconds,
                    bearer_token=auth.bearer_token,
                    tls=auth.tls,
                )
        except BaseException:
            if self.http is not None:
                self.http.stop(0)
            raise

    @property
    def http_port(self) -> int | None:
        return self.http.port if self.http else None

    @property
    def grpc_port(self) -> int | None:
        return self.grpc.port if self.grpc else None

    def start(self) -> None:
        self.ingestor.start()
        if self.http is not None:
            self.http.start()
        if self.grpc is not None:
            self.grpc.start()

    def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop accepting, let in-flight requests finish, then flush and shut down the sinks."""
        with self._stop_lock:
            if self._stopped.is_set():
                return
            if self.http is not None:
                self.http.stop(grace_seconds)
            if self.grpc is not None:
                self.grpc.stop(grace_seconds)
            self.ingestor.close(grace_seconds)
            self._stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until `stop()` finished; True unless the timeout passed first."""
        return self._stopped.wait(timeout)
