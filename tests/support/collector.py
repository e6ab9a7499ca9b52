"""The project's OpenTelemetry Collector build (`make collector`) and `otel-bridge serve` as
subprocesses on loopback, for the tests of collector-config/.

Every process is started through a `Processes` registry that kills what is still running at
teardown, whatever the test's outcome. Collectors log JSON to a file the tests read (retries,
deprecation warnings); bridges are driven only through their CLI and YAML config.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.otlp import OTLPDecodeError, traces_from_json_lines

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "collector-config"
BACKEND_CONFIG = ROOT / "examples" / "collector" / "backend.yaml"
DEFAULT_BINARY = ROOT / ".cache" / "collector" / "dist" / "otelcol-bridge"
SERVE = [str(Path(sys.executable).parent / "otel-bridge"), "serve"]
TOKEN = "collector-test-token"
DEADLINE_S = 120.0
# Test-only settings layered over the shipped files (they define no `service.telemetry`): no
# internal metrics server (its default port 8888 would clash between Collectors on one host)
# and JSON logs the tests can read.
TELEMETRY_OVERLAY = (
    "yaml:service::telemetry: {metrics: {level: none}, logs: {encoding: json, level: info}}"
)


def otelcol_binary() -> Path:
    """Our Collector build: $OTELCOL_BINARY (set by `make pytest`), else the cache's."""
    path = Path(os.environ.get("OTELCOL_BINARY") or DEFAULT_BINARY)
    if not path.is_file():
        pytest.fail(f"{path} does not exist: build it with `make collector`", pytrace=False)
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def wait_for(
    condition: Callable[[], Any], what: str, *, timeout: float = DEADLINE_S, interval: float = 0.1
) -> Any:
    """The first truthy value of `condition()`; fails the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def accepts_connections(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False


class Processes:
    """Starts subprocesses and, at `close()`, kills every one still running (even stopped ones)."""

    def __init__(self) -> None:
        self._started: list[subprocess.Popen[bytes]] = []

    def start(
        self, argv: Sequence[str], *, env: Mapping[str, str], log: Path, cwd: Path
    ) -> subprocess.Popen[bytes]:
        with log.open("ab") as output:
            process = subprocess.Popen(
                list(argv), env=dict(env), stdout=output, stderr=subprocess.STDOUT, cwd=cwd
            )
        self._started.append(process)
        return process

    def close(self) -> None:
        for process in self._started:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)  # a SIGSTOPped process cannot die otherwise
                process.kill()
            process.wait(timeout=DEADLINE_S)


def base_env(**extra: str) -> dict[str, str]:
    """This environment without the OTEL_* settings a developer may have exported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL", "OTELCOL"))}
    env.update(extra)
    return env


def _assert_running(process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    """Fail the test with the child's log if `what` has exited."""
    if process.poll() is not None:
        raise AssertionError(
            f"{what} exited with {process.returncode}:\n"
            + log.read_text(encoding="utf-8", errors="replace")
        )


# --- Collector ------------------------------------------------------------------------------


@dataclass
class Collector:
    """A running Collector; `grpc_port`/`http_port` are its OTLP receiver's."""

    processes: Processes
    argv: list[str]
    env: dict[str, str]
    directory: Path
    log: Path
    health_port: int
    grpc_port: int
    http_port: int
    process: subprocess.Popen[bytes] = field(init=False)

    def start(self) -> Collector:
        # A log line per start lets tests tell this start's messages from earlier ones.
        with self.log.open("a", encoding="utf-8") as log:
            log.write(json.dumps({"msg": "test: starting the Collector"}) + "\n")
        self.process = self.processes.start(
            self.argv, env=self.env, log=self.log, cwd=self.directory
        )
        wait_for(self._healthy, f"the Collector's health check (log: {self.log})")
        return self

    def _healthy(self) -> bool:
        _assert_running(self.process, "the Collector", self.log)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/", timeout=1) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def records(self) -> list[dict[str, Any]]:
        """Every log line as a dict (lines that are not JSON under "msg")."""
        records = []
        for line in self.log_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = {"msg": line}
            records.append(record if isinstance(record, dict) else {"msg": line})
        return records

    def deprecation_warnings(self) -> list[str]:
        return [r["msg"] for r in self.records() if "deprecat" in str(r.get("msg", "")).lower()]

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=DEADLINE_S)

    def restart(self, sig: int = signal.SIGTERM) -> Collector:
        self.stop(sig)
        return self.start()


def start_collector(
    processes: Processes,
    configs: Iterable[Path | str],
    directory: Path,
    *,
    env: Mapping[str, str],
    name: str = "collector",
    wrapper: Sequence[str] = (),
) -> Collector:
    """A Collector running `configs` (files, or `yaml:` snippets merged in order) with its OTLP
    receiver and health check on free loopback ports, read from the OTELCOL_* variables that
    every file in collector-config/ uses for its listen addresses. `wrapper` is a command that
    runs the Collector's command line (it must exec it, keeping the process id)."""
    grpc_port, http_port, health_port = free_port(), free_port(), free_port()
    full_env = base_env(
        OTELCOL_OTLP_GRPC_ENDPOINT=f"127.0.0.1:{grpc_port}",
        OTELCOL_OTLP_HTTP_ENDPOINT=f"127.0.0.1:{http_port}",
        OTELCOL_HEALTH_CHECK_ENDPOINT=f"127.0.0.1:{health_port}",
        **env,
    )
    argv = [*wrapper, str(otelcol_binary())]
    for config in [*configs, TELEMETRY_OVERLAY]:
        argv += ["--config", str(config)]
    collector = Collector(
        processes, argv, full_env, directory, directory / f"{name}.log", health_port, grpc_port,
        http_port,
    )  # fmt: skip
    return collector.start()


def assert_no_deprecation_warnings(*collectors: Collector) -> None:
    for collector in collectors:
        warnings = collector.deprecation_warnings()
        assert not warnings, f"{collector.log} warns of deprecated settings: {warnings}"


def retries(collector: Collector, exporter_id: str) -> list[dict[str, Any]]:
    """The exporter's 'will retry' log records (each has the error and the interval)."""
    return [
        r
        for r in collector.records()
        if r.get("otelcol.component.id") == exporter_id
        and str(r.get("msg", "")).startswith("Exporting failed. Will retry")
    ]


def start_backend(processes: Processes, directory: Path) -> tuple[Collector, Path]:
    """The stand-in for a tracing backend (examples/collector/backend.yaml): a second
    Collector writing every span it receives to a file."""
    path = directory / "backend-traces.jsonl"
    collector = start_collector(
        processes, [BACKEND_CONFIG], directory, env={"BACKEND_FILE_PATH": str(path)}, name="backend"
    )
    return collector, path


# --- otel-bridge serve ----------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    """A throwaway CA and one server certificate for the given addresses."""

    ca: Path
    cert: Path
    key: Path


def make_pki(directory: Path, addresses: Sequence[str]) -> Pki:
    now = datetime.datetime.now(datetime.UTC)

    def certificate(
        subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Name, Any] | None
    ) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer[0] if issuer else name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=2))
            .add_extension(
                x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True
            )
        )
        if issuer is not None:
            alt_names: list[x509.GeneralName] = [x509.DNSName("localhost")]
            alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        return builder.sign(issuer[1] if issuer else key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = certificate("otel-bridge test CA", ca_key, None)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = certificate("otel-bridge", server_key, (ca_cert.subject, ca_key))
    pki = Pki(directory / "ca.pem", directory / "bridge.pem", directory / "bridge-key.pem")
    pki.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki.cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    pki.key.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pki


@dataclass
class Bridge:
    """`otel-bridge serve` with the file sink; restarts keep its ports, spool and file."""

    processes: Processes
    directory: Path
    config: Path
    env: dict[str, str]
    host: str
    http_port: int
    grpc_port: int
    traces_file: Path
    process: subprocess.Popen[bytes] = field(init=False)
    starts: int = 0

    @property
    def http_endpoint(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def log(self) -> Path:
        return self.directory / f"serve-{self.starts}.log"

    def start(self) -> Bridge:
        self.starts += 1
        self.process = self.processes.start(
            [*SERVE, "--config", str(self.config)], env=self.env, log=self.log, cwd=self.directory
        )
        wait_for(self._listening, f"otel-bridge serve on {self.host} (log: {self.log})")
        return self

    def _listening(self) -> bool:
        _assert_running(self.process, "otel-bridge serve", self.log)
        return all(accepts_connections(self.host, p) for p in (self.http_port, self.grpc_port))

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=DEADLINE_S)

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout=DEADLINE_S)

    def deliveries(self) -> list[FinishedTrace]:
        """Each trace as the file sink handed it over: one entry per line and trace."""
        return read_lines(self.traces_file)


def start_bridge(
    processes: Processes,
    directory: Path,
    *,
    host: str = "127.0.0.1",
    grpc_port: int | None = None,
    pki: Pki | None = None,
    receiver: str = "",
    http: str = "",
    sink: str = "",
) -> Bridge:
    """`otel-bridge serve` with the file sink on fixed free ports (so that a restart comes back
    where the Collector sends), a token, TLS when `pki` is given, and extra YAML lines for the
    receiver and the file sink (each line indented by the caller's two spaces), and extra
    `key: value` pairs for the receiver's `http` mapping."""
    directory.mkdir(parents=True, exist_ok=True)
    traces_file = directory / "traces.jsonl"
    tls = f"\n    tls: {{cert_file: {pki.cert}, key_file: {pki.key}}}" if pki else ""
    http_port, grpc_port = free_port(host), grpc_port or free_port(host)
    config = directory / "bridge.yaml"
    config.write_text(
        f"""receiver:
  http: {{endpoint: "{host}:{http_port}"{", " + http if http else ""}}}
  grpc: {{endpoint: "{host}:{grpc_port}"}}
  auth:
    bearer_token: {TOKEN}{tls}
{receiver}
spool_dir: {directory / "spool"}
sinks:
  file:
    path: {traces_file}
{sink}
""",
        encoding="utf-8",
    )
    bridge = Bridge(
        processes, directory, config, base_env(), host, http_port, grpc_port, traces_file
    )
    return bridge.start()


def read_lines(path: Path) -> list[FinishedTrace]:
    """The traces of every complete line of an OTLP JSON lines file, line by line (a trace the
    writer split over two lines appears twice); a line still being written is left out."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    complete = text[: text.rfind("\n") + 1]
    traces = []
    for line in complete.splitlines():
        if line.strip():
            try:
                traces += traces_from_json_lines([line])
            except OTLPDecodeError as exc:
                raise AssertionError(f"{path}: {exc}: {line[:200]}") from exc
    return traces


def span_ids(traces: Iterable[FinishedTrace]) -> dict[int, list[int]]:
    """trace id -> span ids, every occurrence kept (duplicates show as repeats)."""
    by_trace: dict[int, list[int]] = {}
    for trace in traces:
        by_trace.setdefault(trace.trace_id, []).extend(span.span_id for span in trace.spans)
    return by_trace
