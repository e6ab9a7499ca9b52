"""`SageMakerCallbackHandler`: a drop-in for langchain_community's handler of the same name that
traces through OpenTelemetry and logs into the run via `SageMakerSpanExporter`, off the app's thread.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from otel_bridge.sink_handler import (
    CallbackCounters,
    SinkCallbackHandler,
    drop_in_exporter_options,
)
from otel_bridge_sagemaker.exporter import SageMakerSpanExporter

if TYPE_CHECKING:
    from sagemaker.core.experiments.run import Run

__all__ = ["SageMakerCallbackHandler"]

_logger = logging.getLogger(__name__)

# How long the end of a `with Run(...)` block waits for what was traced to reach the run.
RUN_EXIT_TIMEOUT_S = 30.0


class SageMakerCallbackHandler(CallbackCounters, SinkCallbackHandler):
    """Logs the LangChain runs it is passed to into the SageMaker Experiments `run`.

    Same constructor as `langchain_community.callbacks.SageMakerCallbackHandler(run)`. `run`
    receives exactly the calls this handler traced, however many handlers (and runs) the
    process has (see `SinkCallbackHandler`). `exporter_options` go to
    `SageMakerSpanExporter` (e.g. `spool_dir`), other keyword arguments to `OTelCallbackHandler`.

    As with the original, which wrote inside the run, everything traced is in the run when a
    `with Run(...)` block ends: the run's closing first waits (up to `RUN_EXIT_TIMEOUT_S`) for
    this handler's deliveries. The original's `jsonf(data, data_dir, filename, is_output)` logs
    a JSON file artifact into the run, on the caller's thread, and `temp_dir` is a directory for it.
    `metrics` holds the original's callback counters (`step`, `llm_starts`, ...; see
    `CallbackCounters`), which `flush_tracker()` sets back to 0 as the original's did.
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
        self.temp_dir = tempfile.mkdtemp(prefix="otel-bridge-sagemaker-")
        _deliver_before_the_run_closes(run, self)

    def jsonf(
        self,
        data: dict[str, Any],
        data_dir: str,
        filename: str,
        is_output: bool | None = True,
    ) -> None:
        """The original's helper: write `data` to `<data_dir>/<filename>.json` and log it into the
        run as a file artifact (a network call on this thread, as there)."""
        file_path = os.path.join(data_dir, f"{filename}.json")
        with open(file_path, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2)
        self.run.log_file(file_path, name=filename, is_output=is_output)

    def flush_tracker(self, timeout_s: float = 30.0) -> bool:
        """Deliver everything traced so far to the run; True when nothing is left pending.

        Unlike the seed's (which deleted its directory and failed on every later call), this
        can be called any number of times; metric steps keep counting up across calls. The
        callback counters (`metrics`) start again from 0, as the original's did.
        """
        self.reset_callback_meta()
        return self.flush(timeout_s)

    @property
    def metrics(self) -> dict[str, int]:
        """The original's `metrics`: its callback counters by name."""
        return self.get_custom_callback_meta()


def _deliver_before_the_run_closes(run: Any, handler: SageMakerCallbackHandler) -> None:
    """Make `run.close()` (what `Run.__exit__` ends with) deliver the handler's traces first,
    so the run holds them when the `with` block ends. Only this run object is changed."""
    close: Callable[[], Any] | None = getattr(run, "close", None)
    if close is None:
        return

    def close_after_delivery() -> Any:
        try:
            if not handler.flush(RUN_EXIT_TIMEOUT_S):
                _logger.warning(
                    "sagemaker: not everything traced reached run %s before it closed; the rest"
                    " stays in the spool and is delivered later",
                    handler.exporter.trial_component_name,
                )
        except Exception:
            _logger.exception("sagemaker: delivering before the run closed failed")
        return close()

    try:
        run.close = close_after_delivery
    except (AttributeError, TypeError):  # a run object that does not allow it: no hook
        _logger.debug("sagemaker: cannot hook the closing of %r", run)
