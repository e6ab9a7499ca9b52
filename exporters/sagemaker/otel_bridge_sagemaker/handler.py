"""`SageMakerCallbackHandler`: a drop-in for langchain_community's handler of the same name that
traces through OpenTelemetry and logs into the run via `SageMakerSpanExporter`, off the app's thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from otel_bridge.handler import OTelCallbackHandler
from otel_bridge_sagemaker.exporter import SageMakerSpanExporter

if TYPE_CHECKING:
    from sagemaker.core.experiments.run import Run

__all__ = ["SageMakerCallbackHandler"]


class SageMakerCallbackHandler(OTelCallbackHandler):
    """Logs the LangChain runs it is passed to into the SageMaker Experiments `run`.

    Same constructor as `langchain_community.callbacks.SageMakerCallbackHandler(run)`. The
    handler has its own TracerProvider, so `run` receives exactly the calls this handler traced,
    however many handlers (and runs) the process has. `exporter_options` go to
    `SageMakerSpanExporter` (e.g. `spool_dir`), other keyword arguments to `OTelCallbackHandler`.
    """

    def __init__(
        self,
        run: Run,
        *,
        exporter_options: Mapping[str, Any] | None = None,
        **handler_options: Any,
    ) -> None:
        self.run = run
        self.exporter = SageMakerSpanExporter(run=run, **dict(exporter_options or {}))
        self._provider = TracerProvider(resource=Resource.create())
        super().__init__(
            tracer_provider=self._provider, exporters=[self.exporter], **handler_options
        )

    def flush_tracker(self, timeout_s: float = 30.0) -> bool:
        """Deliver everything traced so far to the run; True when nothing is left pending.

        Unlike the seed's (which deleted its directory and failed on every later call), this
        can be called any number of times; metric steps keep counting up across calls.
        """
        spans_handed_over = self._provider.force_flush(int(timeout_s * 1000))
        return spans_handed_over and self.exporter.force_flush(int(timeout_s * 1000))

    def shutdown(self) -> None:
        """Deliver what is pending (within the exporter's shutdown timeout) and stop tracing."""
        self._provider.shutdown()
