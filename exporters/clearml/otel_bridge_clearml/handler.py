"""`ClearMLCallbackHandler`: a drop-in for langchain_community's handler of the same name that
traces through OpenTelemetry and logs into ClearML via `ClearMLSpanExporter`, off the app's thread.
"""

from __future__ import annotations

import atexit
import logging
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from otel_bridge.sink_handler import (
    CallbackCounters,
    SinkCallbackHandler,
    drop_in_exporter_options,
)
from otel_bridge_clearml.exporter import ClearMLSpanExporter

__all__ = ["ClearMLCallbackHandler"]

_logger = logging.getLogger(__name__)


class ClearMLCallbackHandler(CallbackCounters, SinkCallbackHandler):
    """Logs the LangChain runs it is passed to into a ClearML task.

    Same constructor as `langchain_community.callbacks.ClearMLCallbackHandler` (None means the
    seed's default, or the OTEL_BRIDGE_CLEARML_* variable when set; see `ClearMLSpanExporter`).
    Like the seed, its task receives exactly the calls this handler traced (see
    `SinkCallbackHandler`). `exporter_options` go to `ClearMLSpanExporter` (e.g. `spool_dir`, `spacy_model`,
    `task`), other keyword arguments to `OTelCallbackHandler`. The original's callback counters
    (`step`, `llm_starts`, ..., `get_custom_callback_meta()`, `reset_callback_meta()`) count
    the runs this handler sees (see `CallbackCounters`); `flush_tracker` sets them back to 0,
    as the original's did. The per-run counters of each trace are in the "Action Records"
    table.
    """

    def __init__(
        self,
        task_type: str | None = None,
        project_name: str | None = None,
        tags: Sequence[str] | None = None,
        task_name: str | None = None,
        visualize: bool | None = None,
        complexity_metrics: bool | None = None,
        stream_logs: bool | None = None,
        *,
        exporter_options: Mapping[str, Any] | None = None,
        flush_timeout_s: float = 30.0,
        **handler_options: Any,
    ) -> None:
        exporter = ClearMLSpanExporter(
            task_type,
            project_name,
            tags,
            task_name,
            visualize,
            complexity_metrics,
            stream_logs,
            # The original's tables: one pair per flush_tracker, with every run since the last.
            **drop_in_exporter_options(
                ClearMLSpanExporter.sink_name, exporter_options, tables_per="flush"
            ),
        )
        super().__init__(exporter, **handler_options)
        self.exporter: ClearMLSpanExporter = exporter
        settings = exporter.settings
        self.task_type = settings.task_type
        self.project_name = settings.project_name
        self.tags = list(settings.tags)
        self.task_name = settings.task_name
        self.visualize = settings.visualize
        self.complexity_metrics = settings.complexity_metrics
        self.stream_logs = settings.stream_logs
        self._flush_timeout_s = flush_timeout_s
        # The original's scratch directory (it saved the langchain asset there).
        self.temp_dir = tempfile.TemporaryDirectory(prefix="otel-bridge-clearml-")
        # Like the seed, find or create the task now: the app sees the offline-session line at
        # once, and a later Task.init of the app's own finds this task instead of racing it.
        try:
            self.exporter.task  # noqa: B018
        except Exception:
            _logger.warning(
                "clearml: the ClearML task is not available yet; delivery will retry",
                exc_info=True,
            )
        # Registered after Task.init's exit hook, so it runs before ClearML closes the task:
        # spans still in the span processor's queue reach the task too.
        atexit.register(self._deliver_before_exit)

    def _deliver_before_exit(self) -> None:
        self.flush(self._flush_timeout_s)

    @property
    def task(self) -> Any:
        """The ClearML task (the current one, or one created on first use)."""
        return self.exporter.task

    @property
    def logger(self) -> Any:
        """The task's ClearML Logger, as the seed exposed it."""
        return self.task.get_logger()

    @property
    def action_records(self) -> list[dict[str, Any]]:
        """The original's `action_records`: a row per callback (each run's start, agent action,
        agent finish, on_text, end; no per-token rows), here of the traces delivered since the
        last `flush_tracker` (the original kept them since it was built), in delivery order."""
        return self.exporter.session_records

    @property
    def callback_columns(self) -> list[str]:
        """The original's (always empty) column list."""
        return []

    @property
    def nlp(self) -> Any:
        """The spaCy pipeline `visualize` renders with, None when off (the original loaded
        en_core_web_sm whatever `visualize` said)."""
        return self.exporter.nlp

    def analyze_text(self, text: str) -> dict[str, float | str]:
        """The seed's `analyze_text`: complexity metrics (when enabled); spaCy renderings are
        reported as media when `visualize` is on."""
        return self.exporter.analyze_text(text)

    def flush_tracker(
        self,
        name: str | None = None,
        langchain_asset: Any = None,
        finish: bool = False,
    ) -> None:
        """Deliver everything traced so far, report the session's tables (series `name`), save
        `langchain_asset` (any chain, agent or LCEL runnable) as an output model, and with
        `finish` stop tracing and close the task if this handler created it.

        Everything after this call goes into new session tables. A failure is logged, never
        raised (unless the handler was built with raise_error=True).
        """
        try:
            if not self.flush(self._flush_timeout_s):
                _logger.warning(
                    "clearml: not every trace reached ClearML within %.0f s; the rest stays "
                    "queued and is delivered later",
                    self._flush_timeout_s,
                )
            self.exporter.report_session(name)
            if langchain_asset is not None:
                # Uploaded (offline: copied) before the call returns; no flush to wait for.
                self.exporter.save_langchain_asset(langchain_asset, name)
            self.reset_callback_meta()
        except Exception:
            if self.raise_error:
                raise
            _logger.exception("clearml: flush_tracker failed")
        finally:
            if finish:
                self.shutdown()

    def shutdown(self) -> None:
        """Deliver what is pending and stop tracing; closes the task if this handler created it."""
        atexit.unregister(self._deliver_before_exit)
        super().shutdown()
