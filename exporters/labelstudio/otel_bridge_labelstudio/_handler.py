"""The drop-in for langchain_community's `LabelStudioCallbackHandler`: OTel spans, tasks off the hot path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import metrics, trace

from otel_bridge.sink_handler import SinkCallbackHandler
from otel_bridge_labelstudio._exporter import LabelStudioSpanExporter
from otel_bridge_labelstudio._label_config import LabelStudioMode
from otel_bridge_labelstudio.settings import DEFAULT_PROJECT_NAME


class LabelStudioCallbackHandler(SinkCallbackHandler):
    """`callbacks=[LabelStudioCallbackHandler(...)]` with langchain_community's arguments.

    Every run becomes an OpenTelemetry span; a `LabelStudioSpanExporter` built from the same
    arguments (`exporter_options` adds its own, e.g. `task_per`, `trace_filter`, `spool_dir`)
    turns the LLM calls of each finished trace into review tasks on a background thread, so
    the call returns without waiting for Label Studio. Like the seed, the project receives the
    runs this handler is passed (see `SinkCallbackHandler`). Other keyword arguments go to
    `OTelCallbackHandler` (e.g. `tracer_provider`, `capture_content`, `raise_error`).
    """

    DEFAULT_PROJECT_NAME: str = DEFAULT_PROJECT_NAME

    def __init__(
        self,
        api_key: str | None = None,
        url: str | None = None,
        project_id: int | None = None,
        project_name: str | None = None,
        project_config: str | None = None,
        mode: str | LabelStudioMode | None = None,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        exporter_options: Mapping[str, Any] | None = None,
        **handler_options: Any,
    ) -> None:
        exporter = LabelStudioSpanExporter(
            api_key=api_key,
            url=url,
            project_id=project_id,
            project_name=project_name,
            project_config=project_config,
            mode=mode,
            **{"meter_provider": meter_provider, **(exporter_options or {})},
        )
        super().__init__(
            exporter,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            **handler_options,
        )
        self.exporter: LabelStudioSpanExporter = exporter
        self.mode = self.exporter.settings.mode
        self.project_config = self.exporter.settings.project_config
        self.project_name = self.exporter.settings.project_name
        self.url = self.exporter.settings.url
