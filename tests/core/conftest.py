"""Fixtures shared by the handler tests: a real SDK provider exporting to memory, and the
loopback LLM API with models traced in handler or instrument() mode."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.support.loopback_llm import LoopbackAPI, Setup
from tests.support.recording import recording_provider


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    instance, _ = recording_provider(exporter)
    yield instance
    instance.shutdown()


@pytest.fixture(scope="session")
def loopback_api() -> Iterator[LoopbackAPI]:
    """The loopback "LLM API" (the paid-API stand-in) shared by the context tests."""
    instance = LoopbackAPI()
    yield instance
    instance.close()


@pytest.fixture(params=["handler", "instrument"])
def traced(request: pytest.FixtureRequest, loopback_api: LoopbackAPI) -> Iterator[Setup]:
    """The loopback models traced by an `OTelCallbackHandler` passed in the config, or by
    `otel_bridge.instrument()` with no callbacks at all."""
    instance = Setup(loopback_api, request.param)
    yield instance
    instance.close()


@pytest.fixture
def no_warnings_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fails the test if anything (the handler, OTel's context API) logged a warning."""
    caplog.set_level(logging.WARNING)
    yield
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not problems, [r.getMessage() for r in problems]


@pytest.fixture
def exporters() -> Iterator[list[Any]]:
    """Exporters a test makes; each is shut down after the test."""
    made: list[Any] = []
    yield made
    for exporter in made:
        exporter.shutdown()
