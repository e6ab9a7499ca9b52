"""`SageMakerCallbackHandler`: a drop-in for langchain_community's handler of the same name that
traces through OpenTelemetry and logs into the run via `SageMakerSpanExporter`, off the app's thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from otel_bridge.sink_handler import SinkCallbackHandler, drop_in_exporter_options
from otel_bridge_sagemaker.exporter import SageMakerSpanExporter

if TYPE_CHECKING:
    from sagemaker.core.experiments.run import Run

__all__ = ["SageMakerCallbackHandler"]


class SageMakerCallbackHandler(SinkCallbackHandler):
    """Logs the LangChain runs it is passed to into the SageMaker Experiments `run`.

    Same constructor as `langchain_community.callbacks.SageMakerCallbackHandler(run)`. `run`
    receives exactly the calls this handler traced, however many handlers (and runs) the
    process has (see `SinkCallbackHandler`). `exporter_options` go to
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
        exporter = SageMakerSpanExporter(
            run=run, **drop_in_exporter_options(SageMakerSpanExporter.sink_name, exporter_options)
        )
        super().__init__(exporter, **handler_options)
        self.exporter: SageMakerSpanExporter = exporter

    def flush_tracker(self, timeout_s: float = 30.0) -> bool:
        """Deliver everything traced so far to the run; True when nothing is left pending.

        Unlike the seed's (which deleted its directory and failed on every later call), this
        can be called any number of times; metric steps keep counting up across calls.
        """
        return self.flush(timeout_s)
