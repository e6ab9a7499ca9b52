"""`ClearMLSpanExporter` after os.fork(), the shared fork contract: it keeps its task and transport
(ClearML's own fork hook looks after the task; see the class docstring) and replaces only its
lock, so a delivery in the child never waits for a thread of the parent. Real ClearML in offline
mode, as the other tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from otel_bridge_clearml import ClearMLSpanExporter
from otel_bridge_clearml.encoder import ACTION_RECORDS_TITLE

from otel_bridge import SeedProofIdGenerator
from otel_bridge.handler import OTelCallbackHandler
from tests.chains import QUESTION, rag_chain
from tests.contract import ForkContract

from .conftest import session_of


class TestClearMLFork(ForkContract):
    @pytest.fixture
    def fork_exporter(self, spool_dir: Path) -> Iterator[ClearMLSpanExporter]:
        exporter = ClearMLSpanExporter(spool_dir=spool_dir, grace_period=0.0)
        yield exporter
        exporter.shutdown()

    def deliver_one(self, exporter: ClearMLSpanExporter) -> None:
        provider = TracerProvider(id_generator=SeedProofIdGenerator())
        handler = OTelCallbackHandler(tracer_provider=provider, exporters=[exporter])
        rag_chain().invoke(QUESTION, {"callbacks": [handler]})
        assert provider.force_flush(20_000)
        assert exporter.force_flush(20_000)

    def delivered(self, exporter: ClearMLSpanExporter) -> int:
        return len(session_of(exporter.task).tables(ACTION_RECORDS_TITLE))

    def kept(self, exporter: ClearMLSpanExporter) -> tuple[object, ...]:
        return exporter._transport, exporter.task

    def locks(self, exporter: ClearMLSpanExporter) -> tuple[object, ...]:
        return (exporter._lock,)
