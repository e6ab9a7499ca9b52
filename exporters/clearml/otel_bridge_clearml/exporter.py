"""`ClearMLSpanExporter`: finished LangChain traces as ClearML tables, scalars, console lines and
media, delivered off the app's thread by the core `TraceExporter`.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import sys
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from otel_bridge.exporter import TraceExporter
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.sink import DeliveryReport, RetryableError, trace_key
from otel_bridge_clearml.encoder import (
    ACTION_RECORDS_TITLE,
    SESSION_ANALYSIS_TITLE,
    TraceReport,
    encode_trace,
    serialize_langchain_asset,
    table,
)
from otel_bridge_clearml.settings import DEFAULT_MAX_SESSION_ROWS, ClearMLSettings
from otel_bridge_clearml.text_analysis import TextAnalyzer
from otel_bridge_clearml.transport import ClearMLTransport, open_task

__all__ = ["DEFAULT_SESSION_SERIES", "ClearMLSpanExporter"]

_logger = logging.getLogger(__name__)

DEFAULT_SESSION_SERIES = "session"
DEFAULT_SHUTDOWN_TIMEOUT_S = 30.0
DEFAULT_MAX_BATCH = 512


class ClearMLSpanExporter(TraceExporter):
    """Logs each finished LangChain trace into a ClearML task.

    The arguments are those of langchain_community's `ClearMLCallbackHandler` (defaults:
    task_type "inference", project_name "langchain_callback_demo", no tags, ClearML's default
    task name, all switches off), each also settable as OTEL_BRIDGE_CLEARML_<NAME> (tags
    comma-separated; the project name also from OTEL_SERVICE_NAME). The task is `task` if given,
    else ClearML's current task, else one created on first delivery (offline when no server
    credentials are configured; see `transport.open_task`). Only a task created here is closed
    by `shutdown`.

    Per trace (with `tables_per="trace"`, the default; with "flush" only `report_session`
    reports tables): an "Action Records" table (one row per run, with the seed's step counters
    counted within the trace) and a "Session Analysis" table (each generation beside its
    prompt), both with the series "<root run name> <trace id>"; scalars per model ("Latency
    (s)", "Input tokens", "Output tokens" per call, "Errors" per trace; x = the model's n-th
    value); with `complexity_metrics` the textstat metrics per generation as table columns and
    "Complexity: <metric>" scalars; with `visualize` spaCy's dependency and entity renderings
    per generation as HTML media (`spacy_model` names the pipeline); with `stream_logs` each
    action record as a JSON line in the task's console. `report_session` adds the tables of
    everything delivered since its last call (what the seed's `flush_tracker` reported).

    A task created here has ClearML's framework bindings, repository detection (the checkout's
    git diff and package analysis), argument-parser and stream capture and resource monitor off,
    and does not reseed `random`. `task_init_options` go to `Task.init` over those defaults (a
    dict for `auto_connect_frameworks` is merged over the all-off one); `**options` to
    `TraceExporter`.

    In a forked child the exporter keeps its task and transport: every call goes through the
    ClearML Task, whose API session and reporting ClearML owns. `Task.init` registers its own
    fork hook (`clearml.binding.environ_bind.PatchOsFork`) that gives the child new reporter
    threads and exit hooks for the same task, and a new transport here would wrap that same
    Task and rebuild no connection. Only this exporter's lock is replaced.
    """

    sink_name: ClassVar[str] = "clearml"

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
        spacy_model: str | None = None,
        task: Any = None,
        task_init_options: Mapping[str, Any] | None = None,
        max_session_rows: int = DEFAULT_MAX_SESSION_ROWS,
        tables_per: Literal["trace", "flush"] = "trace",
        **options: Any,
    ) -> None:
        if tables_per not in ("trace", "flush"):
            raise ValueError(f"tables_per={tables_per!r}: use 'trace' or 'flush'")
        self.tables_per = tables_per
        self.settings = ClearMLSettings.resolve(
            task_type=task_type,
            project_name=project_name,
            tags=tags,
            task_name=task_name,
            visualize=visualize,
            complexity_metrics=complexity_metrics,
            stream_logs=stream_logs,
            spacy_model=spacy_model,
        )
        self._analyzer = TextAnalyzer(
            complexity_metrics=self.settings.complexity_metrics,
            visualize=self.settings.visualize,
            spacy_model=self.settings.spacy_model,
        )
        self._given_task = task
        self._task_init_options = dict(task_init_options or {})
        self._transport: ClearMLTransport | None = None
        self._created_task = False
        self._task_closed = False
        self._lock = threading.Lock()
        self._iterations: dict[tuple[str, str], int] = {}
        self._session_records: deque[dict[str, Any]] = deque(maxlen=max_session_rows)
        self._session_rows: deque[dict[str, Any]] = deque(maxlen=max_session_rows)
        # ClearML's own flush takes seconds with its default subprocess reporting; the base's
        # 10 s would often cut the last delivery short at exit (it is then redelivered later).
        options.setdefault("shutdown_timeout", DEFAULT_SHUTDOWN_TIMEOUT_S)
        # Each delivery ends with one such flush, whatever its size: bigger batches amortize it.
        options.setdefault("max_batch", DEFAULT_MAX_BATCH)
        self._exit_flush_timeout_ms = int(float(options["shutdown_timeout"]) * 1000)
        # Last: the base starts the delivery worker, which may deliver spooled traces at once.
        super().__init__(**options)

    def destination_identity(self) -> dict[str, str]:
        """The ClearML project and task name results are logged under (the given task's, else
        the settings'; ClearML names a task after its script when no name is given)."""
        task = self._given_task
        if task is not None:
            return {"project": str(task.get_project_name()), "task": str(task.name)}
        task_name = self.settings.task_name or Path(sys.argv[0] or "python").name
        return {"project": self.settings.project_name, "task": task_name}

    # --- the task ---------------------------------------------------------------------------

    @property
    def task(self) -> Any:
        """The ClearML task this exporter logs into (found or created on first use)."""
        return self._connect().task

    @property
    def created_task(self) -> bool:
        """True when this exporter created its task (and so closes it on shutdown)."""
        return self._created_task

    def _connect(self) -> ClearMLTransport:
        with self._lock:
            if self._transport is None:
                if self._task_closed:
                    raise RuntimeError("the ClearML exporter is shut down")
                if self._given_task is not None:
                    task, created = self._given_task, False
                else:
                    opened = open_task(self.settings, self._task_init_options)
                    task, created = opened.task, opened.created
                self._transport = ClearMLTransport(task)
                self._created_task = created
                if created:
                    # ClearML closes its task in an exit hook registered by Task.init; ours,
                    # registered later, runs first and delivers what is queued while it is open.
                    atexit.register(self._deliver_before_exit)
            return self._transport

    def _after_fork_in_child(self) -> None:
        # Another thread (a delivery, report_session) may have held it at the fork.
        self._lock = threading.Lock()

    # --- delivery ---------------------------------------------------------------------------

    def deliver(self, traces: Sequence[FinishedTrace]) -> DeliveryReport:
        try:
            transport = self._connect()
        except Exception as error:
            raise RetryableError(f"cannot open the ClearML task: {error!r}") from error
        if not transport.is_open:
            with self._lock:
                if not self._created_task:
                    self._transport = None  # the app closed its task: use its next one
            raise RetryableError("the ClearML task is closed; the traces stay queued")
        delivered: set[str] = set()
        retryable: dict[str, str] = {}
        permanent: dict[str, str] = {}
        for trace in traces:
            key = trace_key(trace)
            try:
                report = encode_trace(trace, self._analyzer)
            except Exception as error:
                _logger.exception("clearml: cannot encode trace %s", key)
                permanent[key] = f"cannot encode the trace: {error!r}"
                continue
            try:
                self._publish(transport, report)
            except Exception as error:
                _logger.warning("clearml: reporting trace %s failed", key, exc_info=True)
                retryable[key] = f"ClearML reporting failed: {error!r}"
                continue
            delivered.add(key)
        try:
            transport.flush()
        except Exception as error:
            raise RetryableError(f"ClearML did not take the reports: {error!r}") from error
        return DeliveryReport(
            delivered=frozenset(delivered), retryable=retryable, permanent=permanent
        )

    def _publish(self, transport: ClearMLTransport, report: TraceReport) -> None:
        records = [record.as_row() for record in report.action_records]
        generations = [row.as_row() for row in report.session_rows]
        if self.tables_per == "trace":
            if records:
                transport.report_table(ACTION_RECORDS_TITLE, report.table_series, table(records))
            if generations:
                transport.report_table(
                    SESSION_ANALYSIS_TITLE, report.table_series, table(generations)
                )
        for point in report.scalars:
            iteration = self._next_iteration(point.title, point.series)
            transport.report_scalar(point.title, point.series, point.value, iteration)
        for item in report.media:
            iteration = self._next_iteration(item.title, item.series)
            transport.report_html(item.title, item.series, item.html, iteration)
        if self.settings.stream_logs:
            for record in records:
                transport.report_text(json.dumps(record, ensure_ascii=False, default=str))
        with self._lock:
            self._session_records.extend(records)
            self._session_rows.extend(generations)

    def _next_iteration(self, title: str, series: str) -> int:
        with self._lock:
            iteration = self._iterations.get((title, series), 0)
            self._iterations[title, series] = iteration + 1
            return iteration

    # --- what the drop-in handler's flush_tracker adds ---------------------------------------

    @property
    def session_records(self) -> list[dict[str, Any]]:
        """The "Action Records" rows delivered since the last `report_session`."""
        with self._lock:
            return list(self._session_records)

    @property
    def nlp(self) -> Any:
        """The spaCy pipeline `visualize` renders with (None when off)."""
        return self._analyzer.nlp

    def report_session(self, name: str | None = None) -> None:
        """Report the tables of every run delivered since the last call (series `name`, else
        "session"), then start a new session. Records beyond `max_session_rows` drop the oldest."""
        transport = self._connect()
        with self._lock:
            records = list(self._session_records)
            generations = list(self._session_rows)
            self._session_records.clear()
            self._session_rows.clear()
        series = name or DEFAULT_SESSION_SERIES
        if records:
            transport.report_table(ACTION_RECORDS_TITLE, series, table(records))
        if generations:
            transport.report_table(SESSION_ANALYSIS_TITLE, series, table(generations))
        if self.settings.stream_logs:
            transport.report_text(
                f"session {series}: {len(records)} action records, {len(generations)} generations"
            )
        transport.flush()

    def save_langchain_asset(self, asset: Any, name: str | None = None) -> None:
        """Save a chain, agent or any LCEL runnable as an output model of the task (its
        `langchain_core.load.dumpd` JSON as config and weights file)."""
        self._connect().save_output_model(name, serialize_langchain_asset(asset))

    def analyze_text(self, text: str) -> dict[str, float | str]:
        """The seed's `analyze_text`: the complexity metrics of `text` (when enabled); with
        `visualize`, its spaCy renderings are reported as media (series "text <sha1 prefix>")."""
        analysis = self._analyzer.analyze(text)
        if analysis.renderings:
            transport = self._connect()
            series = "text " + hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]
            for rendering in analysis.renderings:
                iteration = self._next_iteration(rendering.title, series)
                transport.report_html(rendering.title, series, rendering.html, iteration)
        return dict(analysis.metrics)

    def _deliver_before_exit(self) -> None:
        self.force_flush(self._exit_flush_timeout_ms)

    # --- SDK contract -----------------------------------------------------------------------

    def shutdown(self) -> None:
        """Deliver what is pending (see TraceExporter), then close the task if it was created here."""
        super().shutdown()
        atexit.unregister(self._deliver_before_exit)
        with self._lock:
            transport = None if self._task_closed or not self._created_task else self._transport
            self._task_closed = True
        if transport is not None:
            try:
                transport.close()
            except Exception:
                _logger.warning("clearml: closing the task failed", exc_info=True)
