"""TLS and mutual TLS on both transports, with a throwaway CA made for the test."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_bridge import otlp
from otel_bridge.receiver import Receiver, Sink, parse_config
from tests.contract import make_spans

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _write_pair(
    directory: Path,
    name: str,
    subject: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    server: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject_name)
        .issuer_name(issuer[0].subject if issuer else subject_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    certificate = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    (directory / f"{name}.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}-key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certificate, key


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = _write_pair(tmp_path, "ca", "otel-bridge test CA", None)
    _write_pair(tmp_path, "server", "localhost", ca, server=True)
    _write_pair(tmp_path, "client", "collector", ca)
    return Pki(
        tmp_path / "ca.pem",
        tmp_path / "server.pem",
        tmp_path / "server-key.pem",
        tmp_path / "client.pem",
        tmp_path / "client-key.pem",
    )


@pytest.fixture
def mtls_receiver(pki: Pki) -> Iterator[tuple[Receiver, InMemorySpanExporter]]:
    memory = InMemorySpanExporter()
    config = parse_config(
        {
            "receiver": {
                "http": {"endpoint": "127.0.0.1:0"},
                "grpc": {"endpoint": "127.0.0.1:0"},
                "auth": {
                    "tls": {
                        "cert_file": str(pki.server_cert),
                        "key_file": str(pki.server_key),
                        "client_ca_file": str(pki.ca),
                    }
                },
            }
        }
    )
    receiver = Receiver(config, [Sink("memory", memory)])
    receiver.start()
    yield receiver, memory
    receiver.stop()


def _https_post(port: int, context: ssl.SSLContext) -> int:
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    try:
        connection.request(
            "POST",
            "/v1/traces",
            body=otlp.request_from_spans(make_spans()).SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
        )
        return connection.getresponse().status
    finally:
        connection.close()


def test_https_with_a_client_certificate_is_accepted(
    pki: Pki, mtls_receiver: tuple[Receiver, InMemorySpanExporter]
) -> None:
    receiver, memory = mtls_receiver
    assert receiver.http_port is not None
    context = ssl.create_default_context(cafile=pki.ca)
    context.load_cert_chain(pki.client_cert, pki.client_key)
    assert _https_post(receiver.http_port, context) == 200
    assert len(memory.get_finished_spans()) == 3


def test_https_without_a_client_certificate_is_refused(
    pki: Pki, mtls_receiver: tuple[Receiver, InMemorySpanExporter]
) -> None:
    receiver, memory = mtls_receiver
    assert receiver.http_port is not None
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _https_post(receiver.http_port, ssl.create_default_context(cafile=pki.ca))
    assert memory.get_finished_spans() == ()


def _grpc_export(port: int, credentials: grpc.ChannelCredentials) -> grpc.StatusCode:
    with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
        export = channel.unary_unary(
            EXPORT_METHOD, response_deserializer=ExportTraceServiceResponse.FromString
        )
        body = otlp.request_from_spans(make_spans()).SerializeToString()
        try:
            export(body, timeout=30)
        except grpc.RpcError as error:
            return error.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def test_grpc_mtls(pki: Pki, mtls_receiver: tuple[Receiver, InMemorySpanExporter]) -> None:
    receiver, memory = mtls_receiver
    assert receiver.grpc_port is not None
    with_client_cert = grpc.ssl_channel_credentials(
        root_certificates=pki.ca.read_bytes(),
        private_key=pki.client_key.read_bytes(),
        certificate_chain=pki.client_cert.read_bytes(),
    )
    assert _grpc_export(receiver.grpc_port, with_client_cert) is grpc.StatusCode.OK
    assert len(memory.get_finished_spans()) == 3
    without = grpc.ssl_channel_credentials(root_certificates=pki.ca.read_bytes())
    assert _grpc_export(receiver.grpc_port, without) is grpc.StatusCode.UNAVAILABLE
    assert len(memory.get_finished_spans()) == 3


def test_a_client_that_never_completes_the_handshake_is_dropped(pki: Pki) -> None:
    config = parse_config(
        {
            "receiver": {
                "http": {"endpoint": "127.0.0.1:0", "tls_handshake_timeout_seconds": 0.3},
                "grpc": False,
                "auth": {
                    "tls": {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key)}
                },
            }
        }
    )
    receiver = Receiver(config, [Sink("memory", InMemorySpanExporter())])
    receiver.start()
    try:
        assert receiver.http_port is not None
        with socket.create_connection(("127.0.0.1", receiver.http_port), timeout=30) as silent:
            assert silent.recv(1) == b""  # closed by the server, not by our 30 s fail-safe
        # The server still serves a client that does the handshake.
        assert _https_post(receiver.http_port, ssl.create_default_context(cafile=pki.ca)) == 200
    finally:
        receiver.stop()
