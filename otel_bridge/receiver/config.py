"""`otel-bridge serve` configuration: the YAML schema, `${env:VAR}` substitution and validation.

Every error names the offending key path (e.g. `receiver.http.endpoint`), so a bad file is
fixed from the message alone.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "DEFAULT_GRPC_ENDPOINT",
    "DEFAULT_HTTP_ENDPOINT",
    "DEFAULT_MAX_CONCURRENT_REQUESTS",
    "DEFAULT_MAX_REQUEST_BYTES",
    "AuthConfig",
    "BridgeConfig",
    "ConfigError",
    "Endpoint",
    "ReceiverConfig",
    "SinkConfig",
    "TLSConfig",
    "load_config",
    "parse_config",
    "substitute_env",
]

# The OTLP specification's default ports; loopback so nothing is exposed unless asked for.
DEFAULT_HTTP_ENDPOINT = "127.0.0.1:4318"
DEFAULT_GRPC_ENDPOINT = "127.0.0.1:4317"
# The Collector's confighttp default max_request_body_size (20 MiB), applied after decompression.
DEFAULT_MAX_REQUEST_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_CONCURRENT_REQUESTS = 8
DEFAULT_RETRY_AFTER_SECONDS = 5.0
DEFAULT_FILE_SINK = "file"

# ${env:NAME} or ${env:NAME:-default}, as in the Collector's confmap; $${...} escapes.
_ENV_REFERENCE = re.compile(r"\$\$|\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key path and what was expected."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """Server certificate; with `client_ca_file` clients must present a certificate (mTLS)."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None


@dataclass(frozen=True, slots=True)
class AuthConfig:
    bearer_token: str | None = None
    tls: TLSConfig | None = None


@dataclass(frozen=True, slots=True)
class ReceiverConfig:
    http: Endpoint | None = field(default_factory=lambda: _endpoint(DEFAULT_HTTP_ENDPOINT, ""))
    grpc: Endpoint | None = field(default_factory=lambda: _endpoint(DEFAULT_GRPC_ENDPOINT, ""))
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    # Bodies held in memory at once is at most this times max_request_bytes.
    max_concurrent_requests: int = DEFAULT_MAX_CONCURRENT_REQUESTS
    retry_after_seconds: float = DEFAULT_RETRY_AFTER_SECONDS
    auth: AuthConfig = field(default_factory=AuthConfig)


@dataclass(frozen=True, slots=True)
class SinkConfig:
    """One sink: `id` as written (`type` or `type/instance`), `type` the entry point name."""

    id: str
    type: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BridgeConfig:
    receiver: ReceiverConfig = field(default_factory=ReceiverConfig)
    sinks: tuple[SinkConfig, ...] = (SinkConfig(DEFAULT_FILE_SINK, DEFAULT_FILE_SINK),)
    spool_dir: Path | None = None
    metrics_endpoint: str | None = None


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> BridgeConfig:
    """Read, substitute and validate a bridge YAML file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    return parse_config(document, environ)


def parse_config(document: Any, environ: Mapping[str, str] | None = None) -> BridgeConfig:
    """Validate an already parsed YAML document (None means all defaults)."""
    env = os.environ if environ is None else environ
    root = _mapping(substitute_env(document or {}, env, ""), "", _ROOT_KEYS)
    receiver = _receiver(_mapping(root.get("receiver") or {}, "receiver", _RECEIVER_KEYS))
    sinks = _sinks(root.get("sinks"))
    spool_dir = root.get("spool_dir")
    metrics = _mapping(root.get("telemetry") or {}, "telemetry", frozenset({"metrics_endpoint"}))
    metrics_endpoint = metrics.get("metrics_endpoint")
    return BridgeConfig(
        receiver=receiver,
        sinks=sinks,
        spool_dir=Path(_string(spool_dir, "spool_dir")) if spool_dir is not None else None,
        metrics_endpoint=(
            _string(metrics_endpoint, "telemetry.metrics_endpoint") if metrics_endpoint else None
        ),
    )


def substitute_env(value: Any, environ: Mapping[str, str], path: str) -> Any:
    """Replace `${env:VAR}` / `${env:VAR:-default}` in every string of a parsed YAML document.

    A string that is exactly one reference takes the YAML type of the value (so a port stays an
    int); an unset variable without a default is an error naming the key and the variable.
    """
    if isinstance(value, dict):
        return {k: substitute_env(v, environ, _join(path, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(v, environ, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(f"{path or '<root>'}: environment variable {name} is not set")

    whole = _ENV_REFERENCE.fullmatch(value)
    substituted = _ENV_REFERENCE.sub(replace, value)
    if whole and whole.group(0) != "$$":
        try:
            typed = yaml.safe_load(substituted)
        except yaml.YAMLError:
            return substituted
        if isinstance(typed, str | int | float | bool):
            return typed
    return substituted


_ROOT_KEYS = frozenset({"receiver", "sinks", "spool_dir", "telemetry"})
_RECEIVER_KEYS = frozenset(
    {"http", "grpc", "max_request_bytes", "max_concurrent_requests", "retry_after_seconds", "auth"}
)
_PROTOCOL_KEYS = frozenset({"endpoint", "enabled"})
_AUTH_KEYS = frozenset({"bearer_token", "tls"})
_TLS_KEYS = frozenset({"cert_file", "key_file", "client_ca_file"})


def _receiver(section: Mapping[str, Any]) -> ReceiverConfig:
    max_bytes = _positive_int(section, "max_request_bytes", DEFAULT_MAX_REQUEST_BYTES)
    max_concurrent = _positive_int(
        section, "max_concurrent_requests", DEFAULT_MAX_CONCURRENT_REQUESTS
    )
    retry_after = section.get("retry_after_seconds", DEFAULT_RETRY_AFTER_SECONDS)
    if isinstance(retry_after, bool) or not isinstance(retry_after, int | float) or retry_after < 0:
        raise ConfigError(
            f"receiver.retry_after_seconds: expected a number >= 0, got {retry_after!r}"
        )
    http = _protocol(section.get("http", {}), "receiver.http", DEFAULT_HTTP_ENDPOINT)
    grpc = _protocol(section.get("grpc", {}), "receiver.grpc", DEFAULT_GRPC_ENDPOINT)
    if http is None and grpc is None:
        raise ConfigError("receiver: both http and grpc are disabled; enable at least one")
    return ReceiverConfig(
        http=http,
        grpc=grpc,
        max_request_bytes=max_bytes,
        max_concurrent_requests=max_concurrent,
        retry_after_seconds=float(retry_after),
        auth=_auth(_mapping(section.get("auth") or {}, "receiver.auth", _AUTH_KEYS)),
    )


def _positive_int(section: Mapping[str, Any], key: str, default: int) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"receiver.{key}: expected a positive integer, got {value!r}")
    return value


def _protocol(value: Any, path: str, default: str) -> Endpoint | None:
    if value is None or value is False:
        return None
    section = _mapping({} if value is True else value, path, _PROTOCOL_KEYS)
    enabled = section.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{path}.enabled: expected true or false, got {enabled!r}")
    if not enabled:
        return None
    return _endpoint(_string(section.get("endpoint", default), f"{path}.endpoint"), path)


def _endpoint(text: str, path: str) -> Endpoint:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{path}.endpoint: expected host:port, got {text!r}")
    return Endpoint(host, int(port))


def _auth(section: Mapping[str, Any]) -> AuthConfig:
    token = section.get("bearer_token")
    if token is not None:
        token = _string(token, "receiver.auth.bearer_token")
        if not token:
            raise ConfigError("receiver.auth.bearer_token: must not be empty when set")
    tls = None
    if section.get("tls") is not None:
        tls_section = _mapping(section["tls"], "receiver.auth.tls", _TLS_KEYS)
        for required in ("cert_file", "key_file"):
            if required not in tls_section:
                raise ConfigError(f"receiver.auth.tls.{required}: required when tls is set")
        files = {}
        for key, raw in tls_section.items():
            file = Path(_string(raw, f"receiver.auth.tls.{key}"))
            if not file.is_file():
                raise ConfigError(f"receiver.auth.tls.{key}: no such file {str(file)!r}")
            files[key] = file
        tls = TLSConfig(files["cert_file"], files["key_file"], files.get("client_ca_file"))
    return AuthConfig(bearer_token=token, tls=tls)


def _sinks(value: Any) -> tuple[SinkConfig, ...]:
    if value is None:
        return BridgeConfig().sinks
    section = _mapping(value, "sinks", None)
    if not section:
        raise ConfigError("sinks: at least one sink is required")
    sinks = []
    for sink_id, options in section.items():
        sink_id = str(sink_id)
        sink_type = sink_id.split("/", 1)[0]
        if not sink_type:
            raise ConfigError(f"sinks.{sink_id}: expected a name like 'file' or 'file/archive'")
        sinks.append(
            SinkConfig(sink_id, sink_type, dict(_mapping(options or {}, f"sinks.{sink_id}", None)))
        )
    return tuple(sinks)


def _mapping(value: Any, path: str, allowed: frozenset[str] | None) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{path or '<root>'}: expected a mapping, got {type(value).__name__}")
    if allowed is not None:
        for key in value:
            if key not in allowed:
                expected = ", ".join(sorted(allowed))
                raise ConfigError(
                    f"{_join(path, str(key))}: unknown key (expected one of: {expected})"
                )
    return {str(k): v for k, v in value.items()}


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ConfigError(f"{path}: expected a string, got {type(value).__name__}")
    return str(value)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
