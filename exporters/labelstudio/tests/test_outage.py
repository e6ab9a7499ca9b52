"""A Label Studio server stopped mid-run and started again: delivery waits, nothing is lost or
duplicated. Uses the tests' own server (see server.py), so the shared one is never stopped."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from label_studio_sdk import LabelStudio
from otel_bridge_labelstudio import LabelStudioSpanExporter

from .conftest import tasks_of
from .server import LabelStudioServer
from .test_exporter import chat_trace, flushed


def test_server_stopped_mid_run_then_restarted_loses_nothing(
    restartable_server: LabelStudioServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="otel_bridge_labelstudio")
    server = restartable_server
    exporter = LabelStudioSpanExporter(
        url=server.url,
        api_key=server.legacy_token,
        project_name="outage-%Y",
        spool_dir=tmp_path,
        grace_period=0.0,
    )
    try:
        chat_trace(exporter)
        flushed(exporter)
        project_id = exporter.project().id

        server.stop()
        for _ in range(3):
            chat_trace(exporter)  # the app keeps working while the server is down
        assert exporter.force_flush(2_000) is False
        counts = exporter.spool.counts()
        assert (counts.outbox, counts.dead_letters) == (3, 0)

        server.start()
        server.wait_ready()
        flushed(exporter)
    finally:
        exporter.shutdown()
        if not server.running:
            server.start()
    outage = [
        r.getMessage() for r in caplog.records if r.name.startswith("otel_bridge_labelstudio")
    ]
    assert len([m for m in outage if "is unreachable" in m]) == 1, outage
    assert outage[-1] == f"Label Studio at {server.url} answers again"
    tasks = tasks_of(LabelStudio(base_url=server.url, api_key=server.legacy_token), project_id)
    assert len(tasks) == 4
    assert len({task.data["otel_span_key"] for task in tasks}) == 4
