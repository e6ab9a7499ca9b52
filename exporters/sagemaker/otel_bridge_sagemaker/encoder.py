"""Pure encoding of finished traces into SageMaker Experiments data: metric points with steps,
run parameters, and JSON Lines records (no network, no clock of its own).

Record schema (one JSON object per line, version `RECORD_SCHEMA`). Every record has

    schema      "otel-bridge.sagemaker.record/1"
    record      the record type, below
    trace_id    32 hex digits (the trace's idempotency key)
    span_id     16 hex digits of the span the record comes from
    time        ISO 8601 UTC timestamp of the moment the record describes
    seq         position of the record within its trace (0, 1, ...)

and, by type (the seed `SageMakerCallbackHandler` record each one replaces in brackets):

    trace         chain_name, partial, llm_calls, tool_calls, errors, latency_s
    chain_start   name, run_type, inputs                        [on_chain_start]
    chain_end     name, run_type, outputs, latency_s            [on_chain_end]
    chain_error   name, run_type, error, latency_s              [on_chain_error]
    llm_start     name, run_type, model, provider, prompt, messages, temperature,
                  max_tokens                                    [on_llm_start]
    llm_end       name, model, generations, output_messages, input_tokens,
                  output_tokens, finish_reasons, latency_s      [on_llm_end]
    llm_error     name, model, error, latency_s                 [on_llm_error]
    tool_start    name, call_id, input                          [on_tool_start]
    tool_end      name, call_id, output, latency_s              [on_tool_end]
    tool_error    name, call_id, error, latency_s               [on_tool_error]
    agent_action  tool, tool_input, log                         [on_agent_action]
    agent_finish  output, return_values, log                    [on_agent_finish]
    text          text                                          [on_text]
    error         span_name, run_type, error_type, message      [errors counter]

Every chain-like run (run type chain, prompt, parser or agent), nested ones included, gets
its chain_start and chain_end (or chain_error). At one instant, outer runs start before inner
ones and end after them. `messages`/`output_messages` are lists of
{role, content, tool_calls, tool_call_id}.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from otel_bridge import semconv
from otel_bridge.langchain_views import (
    FinishedTrace,
    LLMCall,
    SpanError,
    TracedAgentStep,
    TracedMessage,
    TracedRun,
    TracedToolCall,
)
from otel_bridge.sink import trace_key
from otel_bridge.trace_tree import SpanRecord

RECORD_SCHEMA = "otel-bridge.sagemaker.record/1"

PARAMETER_MODEL = "langchain.model"
PARAMETER_TEMPERATURE = "langchain.temperature"
PARAMETER_MAX_TOKENS = "langchain.max_tokens"
PARAMETER_CHAIN_NAME = "langchain.chain_name"

# The run types LangChain reports through on_chain_start / on_chain_end.
_CHAIN_RUN_TYPES = frozenset(
    {
        semconv.RUN_TYPE_CHAIN,
        semconv.RUN_TYPE_PROMPT,
        semconv.RUN_TYPE_PARSER,
        semconv.RUN_TYPE_AGENT,
    }
)

# SageMaker Metrics accepts timestamps from two weeks before to two hours after "now"
# (sagemaker.core.experiments._metrics); a point outside is rejected for the whole request.
_OLDEST_METRIC_AGE_S = 14 * 24 * 3600 - 3600
_NEWEST_METRIC_LEAD_S = 2 * 3600 - 60
_MAX_METRIC_NAME = 255  # botocore model: MetricName max length
_MAX_PARAMETER_STRING = 2500  # botocore model: StringParameterValue max length

ParameterValue = str | float


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One BatchPutMetrics data point."""

    name: str
    value: float
    step: int
    timestamp_s: float


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """What one delivery writes: metric points, run parameters and the JSON Lines object.

    `traces` are the traces encoded; `failed` maps the keys of those that could not be
    encoded to the reason; `trace_steps` gives each encoded trace's metric steps, first and
    past-the-last, by trace key.
    """

    traces: tuple[FinishedTrace, ...]
    failed: Mapping[str, str]
    metrics: tuple[MetricPoint, ...]
    parameters: Mapping[str, ParameterValue]
    records: tuple[Mapping[str, Any], ...]
    next_step: int
    object_name: str
    trace_steps: Mapping[str, tuple[int, int]]

    def records_jsonl(self) -> bytes:
        return records_to_jsonl(self.records)


def encode_batch(
    traces: Sequence[FinishedTrace],
    *,
    first_step: int,
    now_s: float,
    writer_id: str,
    known_steps: Mapping[str, int] | None = None,
    new_from: int | None = None,
) -> EncodedBatch:
    """Encode `traces` (in the order they ended) with metric steps starting at `first_step`.

    Steps and the S3 object name depend only on `first_step` (the run's step counter, which
    advances only when a delivery completes) and `writer_id` (one per exporter), so a batch
    retried after a partial write overwrites its own records file instead of adding a copy,
    even when the retry holds more or fewer traces. A trace in `known_steps` (trace key ->
    its first step, from an earlier attempt) keeps its steps, and the others are numbered
    after them and from `new_from` on (past the steps of traces waiting for a retry in other
    batches), so a retry can tell the points SageMaker already took from the rest.
    """
    known = known_steps or {}
    ordered = sorted(traces, key=lambda t: (_trace_bounds(t)[1], t.trace_id))
    views: list[tuple[FinishedTrace, _TraceView]] = []
    failed: dict[str, str] = {}
    for trace in ordered:
        try:
            views.append((trace, _TraceView.of(trace)))
        except Exception as error:  # one malformed trace must not hold back the batch
            failed[trace_key(trace)] = f"cannot encode trace: {type(error).__name__}: {error}"
    step = first_step if new_from is None else max(first_step, new_from)
    for trace, view in views:
        if trace_key(trace) in known:
            step = max(step, known[trace_key(trace)] + len(view.llm_calls) + 1)
    metrics: list[MetricPoint] = []
    records: list[Mapping[str, Any]] = []
    parameters: dict[str, ParameterValue] = {}
    encoded: list[FinishedTrace] = []
    trace_steps: dict[str, tuple[int, int]] = {}
    for trace, view in views:
        key = trace_key(trace)
        start = known.get(key, step)
        try:
            trace_metrics, end = _trace_metrics(view, start, now_s)
            records_of_trace = _trace_records(view)
            parameters_of_trace = _trace_parameters(view)
        except Exception as error:
            failed[key] = f"cannot encode trace: {type(error).__name__}: {error}"
            continue
        if key not in known:
            step = end
        trace_steps[key] = (start, end)
        metrics.extend(trace_metrics)
        records.extend(records_of_trace)
        parameters.update(parameters_of_trace)
        encoded.append(trace)
    return EncodedBatch(
        traces=tuple(encoded),
        failed=failed,
        metrics=tuple(metrics),
        parameters=parameters,
        records=tuple(records),
        next_step=step,
        object_name=f"{first_step:012d}-{writer_id}.jsonl",
        trace_steps=trace_steps,
    )


def records_to_jsonl(records: Iterable[Mapping[str, Any]]) -> bytes:
    lines = (json.dumps(r, ensure_ascii=False, default=str, separators=(",", ":")) for r in records)
    return "".join(f"{line}\n" for line in lines).encode("utf-8")


def trace_records(trace: FinishedTrace) -> list[dict[str, Any]]:
    """The trace's records in time order (starts before ends at the same instant)."""
    return _trace_records(_TraceView.of(trace))


@dataclass(frozen=True, slots=True)
class _TraceView:
    """What the encoder reads from one trace, each helper asked once."""

    trace: FinishedTrace
    runs: tuple[TracedRun, ...]
    llm_calls: tuple[LLMCall, ...]
    tool_calls: tuple[TracedToolCall, ...]
    agent_steps: tuple[TracedAgentStep, ...]
    errors: tuple[SpanError, ...]
    run_root: SpanRecord | None
    start_ns: int
    end_ns: int

    @classmethod
    def of(cls, trace: FinishedTrace) -> _TraceView:
        start_ns, end_ns = _trace_bounds(trace)
        return cls(
            trace=trace,
            runs=trace.runs(),
            llm_calls=trace.llm_calls(),
            tool_calls=trace.tool_calls(),
            agent_steps=trace.agent_steps(),
            errors=trace.errors(),
            run_root=trace.run_root(),
            start_ns=start_ns,
            end_ns=end_ns,
        )

    def span_times(self, span_id: int) -> tuple[int, int]:
        span = self.trace.span(span_id)
        return (
            (self.start_ns, self.end_ns) if span is None else (span.start_time_ns, span.end_time_ns)
        )


@dataclass(frozen=True, slots=True)
class _Entry:
    """A record before numbering: `order` breaks ties at one instant (starts before ends)."""

    time_ns: int
    order: int
    record: str
    span_id: int
    fields: Mapping[str, Any]


_FIRST, _START, _END = 0, 1, 2


def _trace_records(view: _TraceView) -> list[dict[str, Any]]:
    depths = {span.span_id: sum(1 for _ in view.trace.ancestors(span)) for span in view.trace.spans}

    def chronological(entry: _Entry) -> tuple[int, int, int]:
        # At one instant (a coarse clock), outer runs start before inner ones and end after them.
        depth = depths.get(entry.span_id, 0)
        return entry.time_ns, entry.order, depth if entry.order <= _START else -depth

    entries = sorted(
        [
            *_summary_entries(view),
            *_chain_entries(view),
            *_llm_entries(view),
            *_tool_entries(view),
            *_agent_entries(view),
            *_run_event_entries(view),
            *_error_entries(view),
        ],
        key=chronological,
    )
    trace_id = trace_key(view.trace)
    return [
        {
            "schema": RECORD_SCHEMA,
            "record": entry.record,
            "trace_id": trace_id,
            "span_id": format(entry.span_id, "016x"),
            "seq": seq,
            "time": _iso(entry.time_ns),
            **entry.fields,
        }
        for seq, entry in enumerate(entries)
    ]


def _summary_entries(view: _TraceView) -> Iterator[_Entry]:
    root = view.run_root or view.trace.root
    yield _Entry(
        view.start_ns,
        _FIRST,
        "trace",
        root.span_id,
        {
            "chain_name": view.run_root.name if view.run_root is not None else None,
            "partial": view.trace.partial,
            "llm_calls": len(view.llm_calls),
            "tool_calls": len(view.tool_calls),
            "errors": len(view.errors),
            "latency_s": (view.end_ns - view.start_ns) / 1e9,
        },
    )


def _chain_entries(view: _TraceView) -> Iterator[_Entry]:
    fields: dict[str, Any]
    for run in view.runs:
        if run.run_type not in _CHAIN_RUN_TYPES:
            continue
        identity = {"name": run.name, "run_type": run.run_type}
        yield _Entry(
            run.start_time_ns,
            _START,
            "chain_start",
            run.span_id,
            {**identity, "inputs": run.inputs},
        )
        record, fields = "chain_error", {"error": run.error_type}
        if run.status == "ok":
            record, fields = "chain_end", {"outputs": run.outputs}
        yield _Entry(
            run.end_time_ns,
            _END,
            record,
            run.span_id,
            {**identity, **fields, "latency_s": run.latency_s},
        )


def _llm_entries(view: _TraceView) -> Iterator[_Entry]:
    fields: dict[str, Any]
    for call in view.llm_calls:
        yield _Entry(
            call.start_time_ns,
            _START,
            "llm_start",
            call.span_id,
            {
                "name": call.name,
                "run_type": call.run_type,
                "model": call.model,
                "provider": call.provider,
                "prompt": call.prompt,
                "messages": [_message(m) for m in call.messages],
                "temperature": call.temperature,
                "max_tokens": call.max_tokens,
            },
        )
        record, fields = "llm_error", {"error": call.error}
        if call.error is None:
            record, fields = (
                "llm_end",
                {
                    "generations": list(call.generations),
                    "output_messages": [_message(m) for m in call.output_messages],
                    "input_tokens": call.input_tokens,
                    "output_tokens": call.output_tokens,
                    "finish_reasons": list(call.finish_reasons),
                },
            )
        yield _Entry(
            call.end_time_ns,
            _END,
            record,
            call.span_id,
            {"name": call.name, "model": call.model, **fields, "latency_s": call.latency_s},
        )


def _tool_entries(view: _TraceView) -> Iterator[_Entry]:
    fields: dict[str, Any]
    for tool in view.tool_calls:
        start_ns, end_ns = view.span_times(tool.span_id)
        identity = {"name": tool.name, "call_id": tool.call_id}
        yield _Entry(
            start_ns, _START, "tool_start", tool.span_id, {**identity, "input": tool.arguments}
        )
        record, fields = "tool_error", {"error": tool.error}
        if tool.error is None:
            record, fields = "tool_end", {"output": tool.result}
        yield _Entry(
            end_ns, _END, record, tool.span_id, {**identity, **fields, "latency_s": tool.latency_s}
        )


def _agent_entries(view: _TraceView) -> Iterator[_Entry]:
    for step in view.agent_steps:
        yield _Entry(
            step.timestamp_ns,
            _START,
            "agent_action",
            step.span_id,
            {"tool": step.tool, "tool_input": step.tool_input, "log": step.log},
        )


def _run_event_entries(view: _TraceView) -> Iterator[_Entry]:
    """agent_finish and text records from the events of each run."""
    for run in view.runs:
        for event in run.events:
            if event.name == semconv.EVENT_AGENT_FINISH:
                return_values = event.attributes.get("return_values")
                output = (
                    return_values.get("output")
                    if isinstance(return_values, Mapping)
                    else return_values
                )
                fields = {
                    "output": output,
                    "return_values": return_values,
                    "log": event.attributes.get("log"),
                }
                yield _Entry(event.timestamp_ns, _START, "agent_finish", run.span_id, fields)
            elif event.name == semconv.EVENT_TEXT:
                fields = {"text": event.attributes.get("text")}
                yield _Entry(event.timestamp_ns, _START, "text", run.span_id, fields)


def _error_entries(view: _TraceView) -> Iterator[_Entry]:
    for error in view.errors:
        yield _Entry(
            view.span_times(error.span_id)[1],
            _END,
            "error",
            error.span_id,
            {
                "span_name": error.span_name,
                "run_type": error.run_type,
                "error_type": error.error_type,
                "message": error.message,
            },
        )


def _trace_metrics(view: _TraceView, step: int, now_s: float) -> tuple[list[MetricPoint], int]:
    """Points of one trace: one step per LLM call, then one step for the trace summary."""
    points: list[MetricPoint] = []
    errors_by_model: dict[str, int] = {}
    for call in view.llm_calls:
        model = call.model_label
        errors_by_model[model] = errors_by_model.get(model, 0) + (call.error is not None)
        when = _metric_time(call.end_time_ns, now_s)
        measures = {
            "latency_seconds": call.latency_s,
            "input_tokens": call.input_tokens,
            "output_tokens": call.output_tokens,
        }
        points.extend(
            MetricPoint(_metric_name(model, measure), float(value), step, when)
            for measure, value in measures.items()
            if value is not None
        )
        step += 1
    when = _metric_time(view.end_ns, now_s)
    points.append(
        MetricPoint("trace/latency_seconds", (view.end_ns - view.start_ns) / 1e9, step, when)
    )
    points.append(MetricPoint("trace/errors", float(len(view.errors)), step, when))
    points.extend(
        MetricPoint(_metric_name(model, "errors"), float(count), step, when)
        for model, count in sorted(errors_by_model.items())
    )
    return points, step + 1


def _trace_parameters(view: _TraceView) -> dict[str, ParameterValue]:
    parameters: dict[str, ParameterValue] = {}
    if view.run_root is not None:
        parameters[PARAMETER_CHAIN_NAME] = view.run_root.name[:_MAX_PARAMETER_STRING]
    for call in view.llm_calls:
        if call.model is not None:
            parameters[PARAMETER_MODEL] = call.model[:_MAX_PARAMETER_STRING]
        if call.temperature is not None:
            parameters[PARAMETER_TEMPERATURE] = float(call.temperature)
        if call.max_tokens is not None:
            parameters[PARAMETER_MAX_TOKENS] = float(call.max_tokens)
    return parameters


def _trace_bounds(trace: FinishedTrace) -> tuple[int, int]:
    if not trace.spans:
        return 0, 0
    if not trace.partial:
        return trace.root.start_time_ns, trace.root.end_time_ns
    return min(s.start_time_ns for s in trace.spans), max(s.end_time_ns for s in trace.spans)


def _metric_name(model: str, measure: str) -> str:
    suffix = f"/{measure}"
    return model[: _MAX_METRIC_NAME - len(suffix)] + suffix


def _metric_time(time_ns: int, now_s: float) -> float:
    # A point SageMaker would refuse takes the delivery time instead; the records keep the
    # true time, and one stale trace must not make the whole batch undeliverable.
    time_s = time_ns / 1e9
    if now_s - _OLDEST_METRIC_AGE_S <= time_s <= now_s + _NEWEST_METRIC_LEAD_S:
        return time_s
    return now_s


def _message(message: TracedMessage) -> dict[str, Any]:
    return {
        "role": message.role,
        "content": message.content,
        "tool_calls": [dict(call) for call in message.tool_calls],
        "tool_call_id": message.tool_call_id,
    }


def _iso(time_ns: int) -> str:
    return datetime.fromtimestamp(time_ns / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")
