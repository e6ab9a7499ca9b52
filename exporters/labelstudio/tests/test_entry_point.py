"""`OTEL_TRACES_EXPORTER=labelstudio`: the entry point resolves, and the exporter it names is
built with no arguments from the environment and delivers to the real server."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest
from label_studio_sdk import LabelStudio
from opentelemetry.sdk._configuration import _import_exporters
from otel_bridge_labelstudio import LabelStudioSpanExporter

from .conftest import projects_titled, tasks_of
from .test_exporter import chat_trace, flushed


def test_the_entry_point_names_the_exporter() -> None:
    (entry_point,) = entry_points(group="opentelemetry_traces_exporter", name="labelstudio")
    assert entry_point.load() is LabelStudioSpanExporter
    assert entry_point.dist is not None and entry_point.dist.name == "otel-bridge-labelstudio"


def test_the_sdk_resolves_labelstudio_like_opentelemetry_instrument_does() -> None:
    span_exporters, _, _ = _import_exporters(["labelstudio"], [], [])
    assert span_exporters == {"labelstudio": LabelStudioSpanExporter}


def test_built_with_no_arguments_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    label_studio_url: str,
    legacy_token: str,
    project_name: str,
    reviewer: LabelStudio,
) -> None:
    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio_url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "a-generic-key-the-specific-one-overrides")
    monkeypatch.setenv("OTEL_BRIDGE_LABELSTUDIO_API_KEY", legacy_token)
    monkeypatch.setenv("OTEL_BRIDGE_LABELSTUDIO_PROJECT_NAME", project_name)
    monkeypatch.setenv("OTEL_BRIDGE_LABELSTUDIO_MODE", "chat")
    monkeypatch.setenv("OTEL_BRIDGE_LABELSTUDIO_SPOOL_DIR", str(tmp_path))
    monkeypatch.setenv("OTEL_BRIDGE_LABELSTUDIO_GRACE_PERIOD", "0")
    exporter = LabelStudioSpanExporter()
    try:
        assert exporter.spool.path.parent == tmp_path
        chat_trace(exporter)
        flushed(exporter)
    finally:
        exporter.shutdown()
    (project,) = projects_titled(reviewer, project_name)
    (task,) = tasks_of(reviewer, project.id)
    assert task.data["prompt"][-1] == {"role": "human", "content": "Say hello in French."}


def test_a_missing_key_names_the_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="OTEL_BRIDGE_LABELSTUDIO_API_KEY or LABEL_STUDIO_API_KEY"):
        LabelStudioSpanExporter(spool_dir=tmp_path)
