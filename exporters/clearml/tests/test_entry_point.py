"""`OTEL_TRACES_EXPORTER=clearml`: the SDK finds the exporter by entry point and builds it with no
arguments, from environment variables only; logging then lands in a real offline ClearML session.

The only stand-in is the LLM API: `otel_bridge.testing.FakeChatModel` (via tests/chains.py).
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest
from opentelemetry.sdk._configuration import _import_exporters
from opentelemetry.sdk.trace import TracerProvider
from otel_bridge_clearml import ClearMLSpanExporter
from otel_bridge_clearml.encoder import SESSION_ANALYSIS_TITLE
from otel_bridge_clearml.settings import ENV_PROJECT_NAME, ENV_SERVICE_NAME, ENV_STREAM_LOGS

from otel_bridge.handler import OTelCallbackHandler
from tests.chains import QUESTION, RAG_ANSWER, rag_chain

from .conftest import closed_session_of


def test_the_entry_point_names_the_exporter() -> None:
    (entry_point,) = entry_points(group="opentelemetry_traces_exporter", name="clearml")
    assert entry_point.load() is ClearMLSpanExporter
    span_exporters, _, _ = _import_exporters(["clearml"], [], [])
    assert span_exporters == {"clearml": ClearMLSpanExporter}


def test_built_with_no_arguments_it_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_BRIDGE_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("OTEL_BRIDGE_CLEARML_GRACE_PERIOD", "0")
    monkeypatch.setenv(ENV_SERVICE_NAME, "generic-loses")
    monkeypatch.setenv(ENV_PROJECT_NAME, "from-env")
    monkeypatch.setenv(ENV_STREAM_LOGS, "true")
    (exporter_class,) = _import_exporters(["clearml"], [], [])[0].values()
    exporter = exporter_class()
    provider = TracerProvider()
    handler = OTelCallbackHandler(tracer_provider=provider, exporters=[exporter])
    assert rag_chain().invoke(QUESTION, {"callbacks": [handler]}) == RAG_ANSWER
    assert provider.force_flush(20_000) and exporter.force_flush(20_000)
    folder = Path(exporter.task.get_offline_mode_folder())
    provider.shutdown()  # shuts the exporter down, which closes the task it created

    session = closed_session_of(folder, tmp_path / "imported")
    assert session.task["project_name"] == "from-env"
    assert session.console_records()[-1]["outputs"] == RAG_ANSWER
    ((_, rows),) = session.tables(SESSION_ANALYSIS_TITLE).items()
    assert rows[0]["output"] == RAG_ANSWER
