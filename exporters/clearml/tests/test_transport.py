"""How the transport decides between a ClearML server and offline mode."""

from __future__ import annotations

import pytest
from otel_bridge_clearml.transport import server_credentials_configured


def test_no_credentials_means_offline() -> None:
    assert not server_credentials_configured()


def test_an_access_key_needs_its_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLEARML_API_ACCESS_KEY", "access")
    assert not server_credentials_configured()
    monkeypatch.setenv("CLEARML_API_SECRET_KEY", "secret")
    assert server_credentials_configured()


def test_an_auth_token_is_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLEARML_AUTH_TOKEN", "token")
    assert server_credentials_configured()
