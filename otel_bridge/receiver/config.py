"""`otel-bridge serve` configuration: the YAML schema (pydantic models), `${env:VAR}`
substitution, and validation errors that name the offending key path (`receiver.http.endpoint`),
so a bad file is fixed from the message alone.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, PlainValidator

__all__ = [
    "DEFAULT_GRPC_ENDPOINT",
    "DEFAULT_HTTP_ENDPOINT",
    "DEFAULT_MAX_REQUEST_BYTES",
    "AuthConfig",
    "BridgeConfig",
    "CORSConfig",
    "ConfigError",
    "Endpoint",
    "GRPCConfig",
    "HTTPConfig",
    "ReceiverConfig",
    "SinkConfig",
    "TLSConfig",
    "TelemetryConfig",
    "load_config",
    "parse_config",
    "substitute_env",
]

# The OTLP specification's default ports; loopback so nothing is exposed unless asked for.
DEFAULT_HTTP_ENDPOINT = "127.0.0.1:4318"
DEFAULT_GRPC_ENDPOINT = "127.0.0.1:4317"
# The Collector's confighttp default max_request_body_size (20 MiB), applied after decompression.
DEFAULT_MAX_REQUEST_BYTES = 20 * 1024 * 1024

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

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:  # a host name other than localhost may resolve anywhere
            return False


@dataclass(frozen=True, slots=True)
class SinkConfig:
    """One sink: `id` as written (`type` or `type/instance`), `type` the entry point name."""

    id: str
    type: str
    options: Mapping[str, Any] = field(default_factory=dict)


def _endpoint(value: Any) -> Endpoint:
    if isinstance(value, Endpoint):
        return value
    host, sep, port = str(value).rpartition(":") if isinstance(value, str) else ("", "", "")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected host:port, got {value!r}")
    return Endpoint(host, int(port))


def _existing_file(value: Any) -> Path:
    if not isinstance(value, str) or not Path(value).is_file():
        raise ValueError(f"no such file {value!r}")
    return Path(value)


def _protocol_section(value: Any) -> Any:
    """`http: false`/`null` disables a transport, `http: true` keeps its defaults."""
    disabled = value is None or value is False
    return (
        None
        if disabled or (isinstance(value, dict) and value.get("enabled") is False)
        else ({} if value is True else value)
    )


def _sinks(value: Any) -> tuple[SinkConfig, ...]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping of sink names to options, got {type(value).__name__}")
    if not value:
        raise ValueError("at least one sink is required")
    sinks = []
    for sink_id, options in value.items():
        sink_type = str(sink_id).split("/", 1)[0]
        if not sink_type:
            raise ValueError(f"sink {sink_id!r}: expected a name like 'file' or 'file/archive'")
        if not isinstance(options or {}, dict):
            raise ValueError(
                f"sink {sink_id!r}: expected a mapping of options, got {type(options).__name__}"
            )
        sinks.append(SinkConfig(str(sink_id), sink_type, dict(options or {})))
    return tuple(sinks)


EndpointValue = Annotated[Endpoint, PlainValidator(_endpoint)]
ExistingFile = Annotated[Path, PlainValidator(_existing_file)]
Seconds = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class TLSConfig(_Section):
    """Server certificate; with `client_ca_file` clients must present a certificate (mTLS)."""

    cert_file: ExistingFile
    key_file: ExistingFile
    client_ca_file: ExistingFile | None = None


class AuthConfig(_Section):
    bearer_token: Annotated[str, Field(min_length=1)] | None = None
    tls: TLSConfig | None = None


class CORSConfig(_Section):
    """Browser senders: origins may hold one `*` wildcard (`https://*.example.com`), or be `*`."""

    allowed_origins: tuple[str, ...] = Field(min_length=1, strict=False)
    allowed_headers: tuple[str, ...] = Field(default=(), strict=False)
    max_age_seconds: Annotated[int, Field(ge=0)] = 7200


class _Transport(_Section):
    enabled: bool = True
    tls_handshake_timeout_seconds: Seconds = 10.0
    # The time to receive a request's body (HTTP: 408) or a call's message (gRPC:
    # DEADLINE_EXCEEDED).
    read_timeout_seconds: Seconds = 30.0
    max_connections: PositiveInt = 1000


class HTTPConfig(_Transport):
    endpoint: EndpointValue = _endpoint(DEFAULT_HTTP_ENDPOINT)
    # A connection must complete its request headers this long after it opened or after its
    # previous answer, else it is closed: idle keep-alive and slowloris headers alike.
    idle_timeout_seconds: Seconds = 30.0
    backlog: PositiveInt = 1024
    cors: CORSConfig | None = None


class GRPCConfig(_Transport):
    endpoint: EndpointValue = _endpoint(DEFAULT_GRPC_ENDPOINT)
    idle_timeout_seconds: Seconds = 60.0
    # As the Collector's keepalive.server_parameters: connections are closed gracefully at this
    # age, and calls still running get the grace before the connection is cut.
    max_connection_age_seconds: Seconds = 60.0
    max_connection_age_grace_seconds: Seconds = 30.0


class ReceiverConfig(_Section):
    http: Annotated[HTTPConfig | None, pydantic.BeforeValidator(_protocol_section)] = HTTPConfig()
    grpc: Annotated[GRPCConfig | None, pydantic.BeforeValidator(_protocol_section)] = GRPCConfig()
    max_request_bytes: PositiveInt = DEFAULT_MAX_REQUEST_BYTES
    # Bodies held in memory at once are at most this times max_request_bytes.
    max_concurrent_requests: PositiveInt = 8
    retry_after_seconds: Annotated[float, Field(ge=0)] = 5.0
    insecure: bool = False
    auth: AuthConfig = AuthConfig()

    @pydantic.model_validator(mode="after")
    def _safe(self) -> ReceiverConfig:
        if self.http is None and self.grpc is None:
            raise ValueError("both http and grpc are disabled; enable at least one")
        if self.insecure or self.auth.bearer_token or self.auth.tls:
            return self
        for name, section in (("http", self.http), ("grpc", self.grpc)):
            if section is not None and not section.endpoint.is_loopback:
                raise ValueError(
                    f"{name}.endpoint {section.endpoint} is reachable from the network with "
                    "neither auth.bearer_token nor auth.tls set: configure one of them, or "
                    "set receiver.insecure: true (or pass --insecure) to accept "
                    "unauthenticated spans"
                )
        return self


class TelemetryConfig(_Section):
    metrics_endpoint: str | None = None


class BridgeConfig(_Section):
    receiver: ReceiverConfig = ReceiverConfig()
    sinks: Annotated[tuple[SinkConfig, ...], PlainValidator(_sinks)] = (SinkConfig("file", "file"),)
    spool_dir: str | None = None
    telemetry: TelemetryConfig = TelemetryConfig()

    @property
    def metrics_endpoint(self) -> str | None:
        return self.telemetry.metrics_endpoint or None


def load_config(
    path: str | Path, environ: Mapping[str, str] | None = None, *, insecure: bool = False
) -> BridgeConfig:
    """Read, substitute and validate a bridge YAML file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror}") from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {' '.join(str(exc).split())}") from exc
    return parse_config(document, environ, insecure=insecure)


def parse_config(
    document: Any, environ: Mapping[str, str] | None = None, *, insecure: bool = False
) -> BridgeConfig:
    """Validate a parsed YAML document (None: all defaults); `insecure` is `--insecure`."""
    env = os.environ if environ is None else environ
    document = substitute_env(document or {}, env, "")
    if insecure and isinstance(document, dict):
        receiver = document.get("receiver") or {}
        if isinstance(receiver, dict):
            document = {**document, "receiver": {**receiver, "insecure": True}}
    try:
        return BridgeConfig.model_validate(document)
    except pydantic.ValidationError as exc:
        # A misspelt key shows up as unknown and, often, as a missing one: name those first.
        errors = sorted(exc.errors(), key=lambda e: _ERROR_ORDER.get(e["type"], len(_ERROR_ORDER)))
        raise ConfigError("; ".join(_describe(error) for error in errors)) from None


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


_ERROR_ORDER = {"extra_forbidden": 0, "missing": 1}


def _describe(error: Any) -> str:
    """One pydantic error as `key.path: what was expected, got what`."""
    # Union members and annotated wrappers add their own names to the location; drop them.
    location = [
        str(part) for part in error["loc"] if not str(part).startswith(("function-", "nullable"))
    ]
    path = ".".join(location) or "<root>"
    kind = error["type"]
    if kind == "extra_forbidden":
        expected = ", ".join(_keys_at(location[:-1]))
        return f"{path}: unknown key (expected one of: {expected})"
    if kind == "missing":
        return f"{path}: required"
    if kind in ("model_type", "dict_type"):
        return f"{path}: expected a mapping, got {type(error['input']).__name__}"
    message = str(error["msg"]).removeprefix("Value error, ")
    message = message[0].lower() + message[1:]
    if kind.endswith("_type"):
        return f"{path}: {message}, got {type(error['input']).__name__}"
    return f"{path}: {message}" + (", got {!r}".format(error["input"]) if "ctx" in error else "")


def _keys_at(location: list[str]) -> list[str]:
    model: Any = BridgeConfig
    for part in location:
        annotation = model.model_fields[part].annotation
        models = [a for a in (annotation, *getattr(annotation, "__args__", ())) if _is_model(a)]
        model = models[0]
    return sorted(model.model_fields)


def _is_model(candidate: Any) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, BaseModel)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
