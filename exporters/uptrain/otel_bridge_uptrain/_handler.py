"""`UpTrainCallbackHandler`: the drop-in for langchain_community's handler of that name, whose
runs feed an `UpTrainSpanExporter`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from otel_bridge.sink_handler import SinkCallbackHandler, drop_in_exporter_options
from otel_bridge_uptrain._exporter import UpTrainSpanExporter

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider


class UpTrainCallbackHandler(SinkCallbackHandler):
    """Takes the seed handler's arguments; evaluation happens off the app's thread, per trace.

    `exporter_options` go to `UpTrainSpanExporter` (e.g. `api_base`, `checks`, `spool_dir`);
    other keyword arguments go to `OTelCallbackHandler`. An argument left out resolves as the
    exporter's does (OTEL_BRIDGE_UPTRAIN_<SETTING>, then the seed's default: "langchain",
    "openai", "gpt-3.5-turbo", True). Like the seed, it evaluates the runs this handler is
    passed (see `SinkCallbackHandler`); scores are emitted through `tracer_provider`, else the
    app's global one.
    """

    def __init__(
        self,
        *,
        project_name: str | None = None,
        key_type: str | None = None,
        api_key: str | None = None,
        model: str | None = None,
        log_results: bool | None = None,
        tracer_provider: TracerProvider | None = None,
        exporter_options: Mapping[str, Any] | None = None,
        **handler_options: Any,
    ) -> None:
        exporter = UpTrainSpanExporter(
            project_name=project_name,
            key_type=key_type,
            api_key=api_key,
            model=model,
            log_results=log_results,
            tracer_provider=tracer_provider,
            **drop_in_exporter_options(UpTrainSpanExporter.sink_name, exporter_options),
        )
        super().__init__(exporter, tracer_provider=tracer_provider, **handler_options)
        self.exporter: UpTrainSpanExporter = exporter
