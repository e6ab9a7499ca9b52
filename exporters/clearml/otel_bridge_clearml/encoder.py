"""Finished trace -> what ClearML shows for it: the seed handler's action records and session
analysis, per-model scalars, text metrics and spaCy renderings. Pure: no ClearML import.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from otel_bridge import semconv
from otel_bridge.langchain_views import (
    FinishedTrace,
    LLMCall,
    RunEvent,
    TracedMessage,
    TracedRun,
    as_text,
)
from otel_bridge.sink import span_key, trace_key
from otel_bridge.trace_tree import SpanRecord
from otel_bridge_clearml.text_analysis import TextAnalysis, TextAnalyzer

__all__ = [
    "ACTION_RECORDS_TITLE",
    "ERRORS_TITLE",
    "INPUT_TOKENS_TITLE",
    "LATENCY_TITLE",
    "OUTPUT_TOKENS_TITLE",
    "SESSION_ANALYSIS_TITLE",
    "ActionRecord",
    "MediaItem",
    "ScalarPoint",
    "SessionRow",
    "StepCounters",
    "TraceReport",
    "complexity_title",
    "encode_trace",
    "serialize_langchain_asset",
    "table",
]

_logger = logging.getLogger(__name__)

ACTION_RECORDS_TITLE = "Action Records"
SESSION_ANALYSIS_TITLE = "Session Analysis"
LATENCY_TITLE = "Latency (s)"
INPUT_TOKENS_TITLE = "Input tokens"
OUTPUT_TOKENS_TITLE = "Output tokens"
ERRORS_TITLE = "Errors"
# ClearML stores a table as one plot event; the server rejects oversized events, and a trace
# with many runs of 64 KiB content each would exceed that, so table cells are shortened.
MAX_CELL_CHARS = 2000

_MODEL_RUN_TYPES = semconv.MODEL_RUN_TYPES
_CHAIN_LIKE_RUN_TYPES = frozenset(
    {
        semconv.RUN_TYPE_CHAIN,
        semconv.RUN_TYPE_PROMPT,
        semconv.RUN_TYPE_PARSER,
        semconv.RUN_TYPE_AGENT,
    }
)


def complexity_title(metric: str) -> str:
    """The scalar graph of one textstat metric."""
    return f"Complexity: {metric}"


@dataclass(frozen=True, slots=True)
class StepCounters:
    """The seed's callback counters (`get_custom_callback_meta`), counted within one trace.

    Each start, end, error, streamed generation, `on_text` and agent action/finish is one step,
    in the order LangChain called them (replayed from span and event times). Unlike the seed's,
    they never mix runs of different traces, however concurrently those ran.
    """

    step: int = 0
    starts: int = 0
    ends: int = 0
    errors: int = 0
    text_ctr: int = 0
    chain_starts: int = 0
    chain_ends: int = 0
    llm_starts: int = 0
    llm_ends: int = 0
    llm_streams: int = 0
    tool_starts: int = 0
    tool_ends: int = 0
    agent_ends: int = 0
    retriever_starts: int = 0
    retriever_ends: int = 0


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """One callback of a LangChain run, as the seed recorded them: a row of "Action Records"
    and, with stream_logs, a console line. Each run has a start row (on_llm_start,
    on_chain_start, on_tool_start, on_retriever_start: its inputs), a row per agent action,
    agent finish and on_text (the seed's tool/tool_input/log, output/log and text columns), and
    an end or error row (outputs, model, tokens, latency, status)."""

    action: str  # the seed's callback name: on_llm_start, on_agent_action, on_chain_error, ...
    run_type: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    inputs: str
    outputs: str
    model: str | None
    input_tokens: int | None
    output_tokens: int | None
    latency_s: float | None  # on end and error rows
    status: str | None  # "ok" or "error" on end and error rows
    error: str | None
    counters: StepCounters  # as of this callback
    complexity: Mapping[str, float | str] = field(default_factory=dict)
    # The seed's own columns of an agent action (tool, tool_input, log), an agent finish
    # (output, log) or on_text (text).
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def total_tokens(self) -> int | None:
        return _total(self.input_tokens, self.output_tokens)

    def as_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "action": self.action,
            "run_type": self.run_type,
            "name": self.name,
            "status": self.status,
            "error": self.error,
            "model": self.model,
            "inputs": self.inputs,
            "outputs": self.outputs,
            **self.details,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "latency_s": self.latency_s,
        }
        row.update(asdict(self.counters))
        row.update(self.complexity)
        row.update(trace_id=self.trace_id, span_id=self.span_id, parent_span_id=self.parent_span_id)
        return row


@dataclass(frozen=True, slots=True)
class SessionRow:
    """One generation beside the prompt that produced it (a row of "Session Analysis")."""

    trace_id: str
    span_id: str
    name: str
    model: str | None
    prompt_step: int
    prompts: str
    output_step: int
    output: str
    input_tokens: int | None
    output_tokens: int | None
    error: str | None
    complexity: Mapping[str, float | str] = field(default_factory=dict)

    def as_row(self) -> dict[str, Any]:
        # The seed's column names, so dashboards built on its tables keep working.
        row: dict[str, Any] = {
            "prompt_step": self.prompt_step,
            "prompts": self.prompts,
            "name": self.name,
            "model": self.model,
            "output_step": self.output_step,
            "output": self.output,
            "error": self.error,
            "token_usage_total_tokens": _total(self.input_tokens, self.output_tokens),
            "token_usage_prompt_tokens": self.input_tokens,
            "token_usage_completion_tokens": self.output_tokens,
        }
        row.update(self.complexity)
        row.update(trace_id=self.trace_id, span_id=self.span_id)
        return row


@dataclass(frozen=True, slots=True)
class ScalarPoint:
    """One value of a ClearML scalar graph (`title`), line `series` (the model)."""

    title: str
    series: str
    value: float


@dataclass(frozen=True, slots=True)
class MediaItem:
    """An HTML page to report as debug media (spaCy renderings of one generation)."""

    title: str
    series: str
    html: str


@dataclass(frozen=True, slots=True)
class TraceReport:
    """Everything one finished trace contributes to the ClearML task."""

    trace_id: str
    name: str  # the outermost LangChain run's name
    partial: bool
    action_records: tuple[ActionRecord, ...]
    session_rows: tuple[SessionRow, ...]
    scalars: tuple[ScalarPoint, ...]
    media: tuple[MediaItem, ...]

    @property
    def table_series(self) -> str:
        """The series of this trace's tables: unique per trace, readable in the ClearML UI; a
        trace handed over before its root ended says so."""
        return f"{self.name} {self.trace_id}" + (" (partial)" if self.partial else "")


def encode_trace(trace: FinishedTrace, analyzer: TextAnalyzer | None = None) -> TraceReport:
    """The ClearML view of one trace. Spans that are not LangChain runs (e.g. HTTP client spans)
    contribute nothing; a malformed run costs its own record, never the trace."""
    runs = trace.runs()
    timeline = _replay_callbacks(trace, runs)
    counters = _start_and_end_counters(timeline)
    llm_calls = {call.span_id: call for call in trace.llm_calls()}
    errors = {run.span_id: run.error_type for run in runs if run.error_type is not None}
    analyses = _Analyses(analyzer)

    records: list[ActionRecord] = []
    for callback in timeline:
        record = _guarded_record(callback, llm_calls, analyses)
        if record is not None:
            records.append(record)

    session_rows: list[SessionRow] = []
    scalars: list[ScalarPoint] = []
    media: list[MediaItem] = []
    failures: Counter[str] = Counter()
    for call in llm_calls.values():
        if call.span_id not in counters:
            continue
        series = call.model_label
        start, end = counters[call.span_id]
        error = errors.get(call.span_id) or call.error
        failures[series] += error is not None
        scalars.append(ScalarPoint(LATENCY_TITLE, series, call.latency_s))
        if call.input_tokens is not None:
            scalars.append(ScalarPoint(INPUT_TOKENS_TITLE, series, float(call.input_tokens)))
        if call.output_tokens is not None:
            scalars.append(ScalarPoint(OUTPUT_TOKENS_TITLE, series, float(call.output_tokens)))
        generations = _generation_texts(call) or ([""] if error is not None else [])
        key = span_key(call.trace_id, call.span_id)
        for index, text in enumerate(generations):
            analysis = analyses.of(text)
            session_rows.append(
                SessionRow(
                    trace_id=trace_key(trace),
                    span_id=f"{call.span_id:016x}",
                    name=call.name,
                    model=call.model,
                    prompt_step=start.step,
                    prompts=_prompt_text(call),
                    output_step=end.step,
                    output=text,
                    input_tokens=call.input_tokens,
                    output_tokens=call.output_tokens,
                    error=error,
                    complexity=analysis.metrics,
                )
            )
            scalars.extend(
                ScalarPoint(complexity_title(metric), series, value)
                for metric, value in analysis.numeric_metrics.items()
            )
            suffix = f" #{index + 1}" if len(generations) > 1 else ""
            media.extend(
                MediaItem(rendering.title, key + suffix, rendering.html)
                for rendering in analysis.renderings
            )
    scalars.extend(ScalarPoint(ERRORS_TITLE, series, float(n)) for series, n in failures.items())

    root = trace.run_root()
    root_run = None if root is None else trace.run_of(root)
    return TraceReport(
        trace_id=trace_key(trace),
        name=root_run.name if root_run is not None else trace.root.name,
        partial=trace.partial,
        action_records=tuple(records),
        session_rows=tuple(session_rows),
        scalars=tuple(scalars),
        media=tuple(media),
    )


def table(rows: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    """Rows as ClearML's list-of-rows table: a header (every column, first-seen order), then one
    list per row; missing values are empty, long text is shortened to MAX_CELL_CHARS."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    header = list(columns)
    return [header, *([_cell(row.get(column)) for column in header] for row in rows)]


def serialize_langchain_asset(asset: Any) -> str:
    """LangChain's own serialization (`dumpd`) as JSON. It covers LCEL runnables, on which the
    seed's `asset.save(path)` raised; what LangChain cannot serialize is described, not fatal."""
    from langchain_core.load import dumpd

    return json.dumps(dumpd(asset), indent=2, ensure_ascii=False, default=str)


# --- private -------------------------------------------------------------------------------------


class _Analyses:
    """Text analysis per distinct text within one trace; a failing analysis costs its metrics."""

    def __init__(self, analyzer: TextAnalyzer | None) -> None:
        self._analyzer = analyzer if analyzer is not None and analyzer.enabled else None
        self._done: dict[str, TextAnalysis] = {}

    def of(self, text: str) -> TextAnalysis:
        if self._analyzer is None or not text.strip():
            return TextAnalysis()
        if text not in self._done:
            try:
                self._done[text] = self._analyzer.analyze(text)
            except Exception:
                _logger.warning("clearml: could not analyze a generation's text", exc_info=True)
                self._done[text] = TextAnalysis()
        return self._done[text]


def _guarded_record(
    callback: _Callback, llm_calls: Mapping[int, LLMCall], analyses: _Analyses
) -> ActionRecord | None:
    try:
        if callback.what == "start":
            return _start_record(callback.run, callback.counters, llm_calls)
        if callback.what == "end":
            return _end_record(callback.run, callback.counters, llm_calls, analyses)
        if callback.event is not None and callback.event.name in _EVENT_ACTIONS:
            return _event_record(callback.run, callback.event, callback.counters)
        return None
    except Exception:
        _logger.warning(
            "clearml: skipping a record of malformed span %016x",
            callback.run.span_id,
            exc_info=True,
        )
        return None


def _bare_record(run: TracedRun, action: str, counters: StepCounters) -> ActionRecord:
    span = run.span
    return ActionRecord(
        action=action,
        run_type=run.run_type or "",
        name=run.name,
        trace_id=f"{span.trace_id:032x}",
        span_id=f"{span.span_id:016x}",
        parent_span_id=None if span.parent_span_id is None else f"{span.parent_span_id:016x}",
        inputs="",
        outputs="",
        model=None,
        input_tokens=None,
        output_tokens=None,
        latency_s=None,
        status=None,
        error=None,
        counters=counters,
    )


def _start_record(
    run: TracedRun, counters: StepCounters, llm_calls: Mapping[int, LLMCall]
) -> ActionRecord:
    record = _bare_record(run, f"on_{_kind(run.run_type or '')}_start", counters)
    call = llm_calls.get(run.span_id)
    if call is not None:
        return replace(record, inputs=_prompt_text(call), model=call.model)
    return replace(record, inputs=as_text(run.inputs))


def _event_record(run: TracedRun, event: RunEvent, counters: StepCounters) -> ActionRecord:
    attributes = event.attributes
    details: dict[str, Any]
    if event.name == semconv.EVENT_AGENT_ACTION:
        details = {
            "tool": attributes.get("tool"),
            "tool_input": as_text(attributes.get("tool_input")),
            "log": as_text(attributes.get("log")),
        }
    elif event.name == semconv.EVENT_AGENT_FINISH:
        values = attributes.get("return_values")
        output = values.get("output", values) if isinstance(values, Mapping) else values
        details = {"output": as_text(output), "log": as_text(attributes.get("log"))}
    else:
        details = {"text": as_text(attributes.get("text"))}
    return replace(_bare_record(run, _EVENT_ACTIONS[event.name], counters), details=details)


def _end_record(
    run: TracedRun,
    counters: StepCounters,
    llm_calls: Mapping[int, LLMCall],
    analyses: _Analyses,
) -> ActionRecord:
    run_type = run.run_type or ""
    record = replace(
        _bare_record(run, _action(run_type, failed=run.status == "error"), counters),
        inputs=as_text(run.inputs),
        outputs=as_text(run.outputs),
        latency_s=run.latency_s,
        status=run.status,
        error=run.error_type,
    )
    call = llm_calls.get(run.span_id)
    if call is not None:
        outputs = "\n\n".join(_generation_texts(call))
        return replace(
            record,
            inputs=_prompt_text(call),
            outputs=outputs,
            model=call.model,
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            complexity=analyses.of(outputs).metrics,
        )
    if run_type == semconv.RUN_TYPE_RETRIEVER:
        return replace(record, outputs="\n\n".join(d.page_content for d in run.documents))
    return record


_EVENT_ACTIONS: Mapping[str, str] = {
    semconv.EVENT_AGENT_ACTION: "on_agent_action",
    semconv.EVENT_AGENT_FINISH: "on_agent_finish",
    semconv.EVENT_TEXT: "on_text",
}


def _kind(run_type: str) -> str:
    if run_type in _MODEL_RUN_TYPES:
        return "llm"
    if run_type in (semconv.RUN_TYPE_TOOL, semconv.RUN_TYPE_RETRIEVER):
        return run_type
    return "chain"


def _action(run_type: str, *, failed: bool) -> str:
    return f"on_{_kind(run_type)}_{'error' if failed else 'end'}"


def _counter_kind(run_type: str | None) -> str | None:
    if run_type in _MODEL_RUN_TYPES:
        return "llm"
    if run_type in _CHAIN_LIKE_RUN_TYPES:
        return "chain"
    if run_type in (semconv.RUN_TYPE_TOOL, semconv.RUN_TYPE_RETRIEVER):
        return run_type
    return None


def _tree_order(trace: FinishedTrace) -> tuple[dict[int, int], dict[int, int]]:
    """Sequence numbers of each span's start and end in a depth-first walk: the callback order
    of a sequential run, used to order events whose timestamps are equal."""
    starts: dict[int, int] = {}
    ends: dict[int, int] = {}
    sequence = 0
    tops = [span for span in trace.spans if trace.parent(span) is None]
    stack: list[tuple[SpanRecord, bool]] = [(span, False) for span in reversed(tops)]
    while stack:
        span, leaving = stack.pop()
        if leaving:
            ends[span.span_id] = sequence
        elif span.span_id not in starts:
            starts[span.span_id] = sequence
            stack.append((span, True))
            stack.extend((child, False) for child in reversed(trace.children(span)))
        sequence += 1
    for span in trace.spans:  # spans on a parent cycle (malformed input) still get a place
        if span.span_id not in starts:
            starts[span.span_id] = sequence
            ends[span.span_id] = sequence + 1
            sequence += 2
    return starts, ends


@dataclass(frozen=True, slots=True)
class _Callback:
    """One callback LangChain made: a run's start or end, or an event of it (`what` is then
    the event's name), with the step counters as of that callback."""

    what: str
    run: TracedRun
    event: RunEvent | None
    counters: StepCounters


def _replay_callbacks(trace: FinishedTrace, runs: Sequence[TracedRun]) -> list[_Callback]:
    """Every run's start, events and end, in the order LangChain called them."""
    start_order, end_order = _tree_order(trace)
    # (time, tie-break, what, run, event); events sort just after their run's start on ties.
    happenings: list[tuple[int, float, str, TracedRun, RunEvent | None]] = []
    for run in runs:
        happenings.append((run.start_time_ns, start_order[run.span_id], "start", run, None))
        happenings.append((run.end_time_ns, end_order[run.span_id], "end", run, None))
        for happened in run.events:
            tie = start_order[run.span_id] + 0.5
            happenings.append((happened.timestamp_ns, tie, happened.name, run, happened))
    happenings.sort(key=lambda item: (item[0], item[1]))

    state = Counter[str]()
    timeline: list[_Callback] = []
    for _, _, what, run, event in happenings:
        kind = _counter_kind(run.run_type)
        if what == "start":
            state.update(("step", "starts", *([f"{kind}_starts"] if kind else [])))
        elif what == "end" and run.status == "error":
            state.update(("step", "errors"))
        elif what == "end":
            state.update(("step", "ends", *([f"{kind}_ends"] if kind else [])))
        elif what == semconv.EVENT_FIRST_TOKEN:
            state.update(("step", "llm_streams"))
        elif what == semconv.EVENT_TEXT:
            state.update(("step", "text_ctr"))
        elif what == semconv.EVENT_AGENT_ACTION:
            state.update(("step",))
        elif what == semconv.EVENT_AGENT_FINISH:
            state.update(("step", "agent_ends"))
        timeline.append(_Callback(what, run, event, _snapshot(state)))
    return timeline


def _start_and_end_counters(
    timeline: Sequence[_Callback],
) -> dict[int, tuple[StepCounters, StepCounters]]:
    """Each run's counters as of its start and as of its end."""
    starts: dict[int, StepCounters] = {}
    found: dict[int, tuple[StepCounters, StepCounters]] = {}
    for callback in timeline:
        span_id = callback.run.span_id
        if callback.what == "start":
            starts[span_id] = callback.counters
        elif callback.what == "end":
            found[span_id] = (starts.get(span_id, callback.counters), callback.counters)
    return found


_COUNTER_FIELDS = frozenset(StepCounters.__dataclass_fields__)


def _snapshot(state: Counter[str]) -> StepCounters:
    return StepCounters(**{name: state[name] for name in _COUNTER_FIELDS})


def _message_lines(message: TracedMessage) -> Iterator[str]:
    if message.content:
        yield f"{message.role}: {message.content}"
    for tool_call in message.tool_calls:
        arguments = as_text(tool_call.get("arguments"))
        yield f"{message.role}: [tool call] {tool_call.get('name')}({arguments})"


def _prompt_text(call: LLMCall) -> str:
    if call.prompt is not None:
        return call.prompt
    return "\n".join(line for message in call.messages for line in _message_lines(message))


def _generation_texts(call: LLMCall) -> list[str]:
    """Each choice's text; a choice that only asks for tool calls is shown as those calls."""
    if not call.output_messages:
        return list(call.generations)
    texts = []
    for message in call.output_messages:
        if message.tool_calls:
            texts.append("\n".join(_message_lines(message)))
        else:
            texts.append(message.content)
    return texts


def _total(first: int | None, second: int | None) -> int | None:
    if first is None and second is None:
        return None
    return (first or 0) + (second or 0)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
        return value[: MAX_CELL_CHARS - 1] + "…"
    return value
