"""Receiver authentication: a bearer token compared in constant time, and server TLS/mTLS."""

from __future__ import annotations

import hmac
import ssl

from otel_bridge.receiver.config import TLSConfig

__all__ = ["bearer_token_matches", "server_ssl_context"]


def bearer_token_matches(expected: str | None, authorization: str | None) -> bool:
    """True when no token is configured, or the Authorization header carries exactly it."""
    if expected is None:
        return True
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())


def server_ssl_context(tls: TLSConfig) -> ssl.SSLContext:
    """A server context; with a client CA every client must present a certificate it signed."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.client_ca_file is not None:
        context.load_verify_locations(cafile=tls.client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    return context
