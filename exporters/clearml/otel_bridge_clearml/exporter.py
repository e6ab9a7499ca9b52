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
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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
# Traces whose publishing is under way or failed part way (see `_Publication`). A delivery batch
# holds at most max_batch traces, and a trace leaves the map once ClearML has taken it, so the
# bound is only reached when many batches in a row fail; the oldest is then forgotten (and, if
# it is retried after all, published from its first call again).
MAX_PENDING_PUBLICATIONS = 4 * DEFAULT_MAX_BATCH

ReportCall = Callable[[ClearMLTransport], None]


@dataclass(slots=True)
class _Publication:
    """One trace as the ClearML calls that publish it, in order, with their iterations fixed
    when the trace was first encoded, and how many of them ClearML has already taken.

    A failed call leaves `done` where it was, so the retry resumes with that call: nothing taken
    before is reported again (a table reported twice shows twice; a scalar reported again at a
    new iteration counts twice). Once every call is made, only ClearML's flush is left; a failed
    flush retries the flush alone. The rows join the session tables once, when the flush has
    succeeded. Kept in memory only: a ClearML task belongs to one process (a restarted process
    logs into a task of its own), so a retry in another process has nothing to resume.
    """

    calls: list[ReportCall]
    records: list[dict[str, Any]]
    generations: list[dict[str, Any]]
    done: int = 0

    @property
    def complete(self) -> bool:
        return self.done >= len(self.calls)

    def resume(self, transport: ClearMLTransport) -> None:
        while self.done < len(self.calls):
            self.calls[self.done](transport)
            self.done += 1


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
    reports tables): an "Action Records" table (the seed's rows: each run's start, its agent
    actions, agent finish and on_text, and its end or error, with the seed's step counters
    counted within the trace) and a "Session Analysis" table (each generation beside its
    prompt), both with the series "<root run name> <trace id>"; scalars per model ("Latency
    (s)", "Input tokens", "Output tokens" per call, "Errors" per trace; x = the model's n-th
    value); with `complexity_metrics` the textstat metrics per generation as table columns and
    "Complexity: <metric>" scalars; with `visualize` spaCy's dependency and entity renderings
    per generation as HTML media (`spacy_model` names the pipeline); with `stream_logs` each
    action record as a JSON line in the task's console. `report_session` adds the tables of
    everything delivered since its last call (what the seed's `flush_tracker` reported).

    Exactly once: a trace is published as a fixed list of ClearML calls (its iterations taken
    once); when one call fails, the retry resumes at that call, and when ClearML's final flush
    fails, the retry only flushes again (see `_Publication`).

    A task created here has ClearML's framework bindings, repository detection (the checkout's
    git diff and package analysis), argument-parser and stream capture and resource monitor off,
    does not reseed `random`, and reports from a thread rather than a forked subprocess unless
    clearml.conf sets `sdk.development.report_use_subprocess` (see `transport.open_task`). `task_init_options` go to `Task.init` over those defaults (a
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
        self._pending: OrderedDict[str, _Publication] = OrderedDict()
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
                    # what was half published went into the closed task; start over there
                    self._pending.clear()
            raise RetryableError("the ClearML task is closed; the traces stay queued")
        published: list[str] = []
        retryable: dict[str, str] = {}
        permanent: dict[str, str] = {}
        for trace in traces:
            key = trace_key(trace)
            publication = self._publication(key)
            if publication is None:
                try:
                    report = encode_trace(trace, self._analyzer)
                except Exception as error:
                    _logger.exception("clearml: cannot encode trace %s", key)
                    permanent[key] = f"cannot encode the trace: {error!r}"
                    continue
                publication = self._plan(report)
                self._remember(key, publication)
            try:
                publication.resume(transport)
            except Exception as error:
                _logger.warning(
                    "clearml: reporting trace %s failed after %d of its %d calls; the retry "
                    "resumes there",
                    key,
                    publication.done,
                    len(publication.calls),
                    exc_info=True,
                )
                retryable[key] = f"ClearML reporting failed: {error!r}"
                continue
            published.append(key)
        try:
            transport.flush()
        except Exception as error:
            # Every call of `published` was made; their retry only flushes again.
            raise RetryableError(f"ClearML did not take the reports: {error!r}") from error
        self._taken(published)
        return DeliveryReport(
            delivered=frozenset(published), retryable=retryable, permanent=permanent
        )

    def _plan(self, report: TraceReport) -> _Publication:
        """The ClearML calls of one trace, in order; scalar and media iterations are taken here,
        once, so a resumed publication reports each point at the iteration it was given."""
        records = [record.as_row() for record in report.action_records]
        generations = [row.as_row() for row in report.session_rows]
        calls: list[ReportCall] = []
        if self.tables_per == "trace":
            series = report.table_series
            if records:
                calls.append(_table_call(ACTION_RECORDS_TITLE, series, table(records)))
            if generations:
                calls.append(_table_call(SESSION_ANALYSIS_TITLE, series, table(generations)))
        for point in report.scalars:
            iteration = self._next_iteration(point.title, point.series)
            calls.append(_scalar_call(point.title, point.series, point.value, iteration))
        for item in report.media:
            iteration = self._next_iteration(item.title, item.series)
            calls.append(_html_call(item.title, item.series, item.html, iteration))
        if self.settings.stream_logs:
            calls.extend(
                _text_call(json.dumps(record, ensure_ascii=False, default=str))
                for record in records
            )
        return _Publication(calls, records, generations)

    def _publication(self, key: str) -> _Publication | None:
        with self._lock:
            return self._pending.get(key)

    def _remember(self, key: str, publication: _Publication) -> None:
        with self._lock:
            self._pending[key] = publication
            while len(self._pending) > MAX_PENDING_PUBLICATIONS:
                forgotten, _ = self._pending.popitem(last=False)
                _logger.warning(
                    "clearml: more than %d traces wait for a retry; trace %s is forgotten and, "
                    "if retried, published from its first call again",
                    MAX_PENDING_PUBLICATIONS,
                    forgotten,
                )

    def _taken(self, keys: Sequence[str]) -> None:
        """ClearML has taken every call of these traces: their rows join the session once."""
        with self._lock:
            for key in keys:
                publication = self._pending.pop(key, None)
                if publication is not None:
                    self._session_records.extend(publication.records)
                    self._session_rows.extend(publication.generations)

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


# --- the report calls a publication is made of ------------------------------------------------


def _table_call(title: str, series: str, rows: list[list[Any]]) -> ReportCall:
    return lambda transport: transport.report_table(title, series, rows)


def _scalar_call(title: str, series: str, value: float, iteration: int) -> ReportCall:
    return lambda transport: transport.report_scalar(title, series, value, iteration)


def _html_call(title: str, series: str, html: str, iteration: int) -> ReportCall:
    return lambda transport: transport.report_html(title, series, html, iteration)


def _text_call(text: str) -> ReportCall:
    return lambda transport: transport.report_text(text)
