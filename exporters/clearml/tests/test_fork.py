"""`ClearMLSpanExporter` after os.fork(): it keeps its task and transport (ClearML's own fork hook
looks after the task; see the class docstring) and replaces only its lock, so a delivery in the
child never waits for a thread of the parent. Real ClearML in offline mode, as the other tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from otel_bridge_clearml import ClearMLSpanExporter
from otel_bridge_clearml.encoder import ACTION_RECORDS_TITLE

from otel_bridge import SeedProofIdGenerator
from otel_bridge.handler import OTelCallbackHandler
from tests.chains import QUESTION, rag_chain

from .conftest import session_of


@pytest.fixture
def provider() -> Iterator[TracerProvider]:
    provider = TracerProvider(id_generator=SeedProofIdGenerator())
    yield provider
    provider.shutdown()


def _deliver_one_rag(provider: TracerProvider, exporter: ClearMLSpanExporter) -> None:
    handler = OTelCallbackHandler(tracer_provider=provider, exporters=[exporter])
    rag_chain().invoke(QUESTION, {"callbacks": [handler]})
    assert provider.force_flush(20_000)
    assert exporter.force_flush(20_000)


def test_after_the_hook_it_delivers_into_the_same_task_with_a_new_lock(
    provider: TracerProvider, spool_dir: Path
) -> None:
    exporter = ClearMLSpanExporter(spool_dir=spool_dir, grace_period=0.0)
    _deliver_one_rag(provider, exporter)
    transport, task, lock = exporter._transport, exporter.task, exporter._lock
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            release.wait(30)

    # As at a fork in the middle of a delivery: the old lock stays held by a thread.
    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(30)
        exporter._after_fork_in_child()
        assert exporter._lock is not lock
        _deliver_one_rag(provider, exporter)
    finally:
        release.set()
        holder.join(30)

    assert exporter._transport is transport and exporter.task is task
    series = session_of(task).tables(ACTION_RECORDS_TITLE)
    assert len(series) == 2
    exporter.shutdown()
