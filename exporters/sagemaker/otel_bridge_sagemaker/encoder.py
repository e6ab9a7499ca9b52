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
    chain_start   name, inputs                                  [on_chain_start]
    chain_end     name, outputs, latency_s                      [on_chain_end]
    llm_start     name, run_type, model, provider, prompt, messages, temperature,
                  max_tokens                                    [on_llm_start]
    llm_end       name, model, generations, output_messages, input_tokens,
                  output_tokens, finish_reasons, latency_s      [on_llm_end]
    llm_error     name, model, error, latency_s                 [on_llm_error]
    tool_start    name, call_id, input                          [on_tool_start]
    tool_end      name, call_id, output, latency_s              [on_tool_end]
    tool_error    name, call_id, error, latency_s               [on_tool_error]
    agent_action  tool, tool_input, log                         [on_agent_action]
    error         span_name, run_type, error_type, message      [errors counter]

`messages`/`output_messages` are lists of {role, content, tool_calls, tool_call_id}.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from otel_bridge.sink import trace_key
from otel_bridge.traces import FinishedTrace, LLMCall, Message

RECORD_SCHEMA = "otel-bridge.sagemaker.record/1"

PARAMETER_MODEL = "langchain.model"
PARAMETER_TEMPERATURE = "langchain.temperature"
PARAMETER_MAX_TOKENS = "langchain.max_tokens"
PARAMETER_CHAIN_NAME = "langchain.chain_name"

UNKNOWN_MODEL = "unknown-model"

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
    encoded to the reason.
    """

    traces: tuple[FinishedTrace, ...]
    failed: Mapping[str, str]
    metrics: tuple[MetricPoint, ...]
    parameters: Mapping[str, ParameterValue]
    records: tuple[Mapping[str, Any], ...]
    next_step: int
    object_name: str

    def records_jsonl(self) -> bytes:
        return records_to_jsonl(self.records)


def encode_batch(
    traces: Sequence[FinishedTrace], *, first_step: int, now_s: float, writer_id: str
) -> EncodedBatch:
    """Encode `traces` (in the order they ended) with metric steps starting at `first_step`.

    Steps and the S3 object name depend only on `first_step` (the run's step counter, which
    advances only when a delivery completes) and `writer_id` (one per exporter), so a batch
    retried after a partial write overwrites its own metric points and records file instead
    of adding copies, even when the retry holds more or fewer traces.
    """
    ordered = sorted(traces, key=lambda t: (_trace_bounds(t)[1], t.trace_id))
    step = first_step
    metrics: list[MetricPoint] = []
    records: list[Mapping[str, Any]] = []
    parameters: dict[str, ParameterValue] = {}
    encoded: list[FinishedTrace] = []
    failed: dict[str, str] = {}
    for trace in ordered:
        try:
            trace_metrics, next_step = _trace_metrics(trace, step, now_s)
            records_of_trace = trace_records(trace)
            parameters_of_trace = _trace_parameters(trace)
        except Exception as error:  # one malformed trace must not hold back the batch
            failed[trace_key(trace)] = f"cannot encode trace: {type(error).__name__}: {error}"
            continue
        step = next_step
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
    )


def records_to_jsonl(records: Iterable[Mapping[str, Any]]) -> bytes:
    lines = (json.dumps(r, ensure_ascii=False, default=str, separators=(",", ":")) for r in records)
    return "".join(f"{line}\n" for line in lines).encode("utf-8")


def trace_records(trace: FinishedTrace) -> list[dict[str, Any]]:
    """The trace's records in time order (starts before ends at the same instant)."""
    # (time, order among records of the same instant, record type, span id, type's fields)
    timed: list[tuple[int, int, str, int, dict[str, Any]]] = []

    def add(time_ns: int, order: int, span_id: int, record: str, **fields: Any) -> None:
        timed.append((time_ns, order, record, span_id, fields))

    llm_calls = trace.llm_calls()
    tool_calls = trace.tool_calls()
    errors = trace.errors()
    start_ns, end_ns = _trace_bounds(trace)
    run_root = trace.run_root()
    root_span_id = run_root.span_id if run_root is not None else trace.root.span_id
    add(
        start_ns,
        0,
        root_span_id,
        "trace",
        chain_name=run_root.name if run_root is not None else None,
        partial=trace.partial,
        llm_calls=len(llm_calls),
        tool_calls=len(tool_calls),
        errors=len(errors),
        latency_s=(end_ns - start_ns) / 1e9,
    )

    call_span_ids = {c.span_id for c in llm_calls} | {t.span_id for t in tool_calls}
    if run_root is not None and run_root.span_id not in call_span_ids:
        add(
            run_root.start_time_ns,
            1,
            run_root.span_id,
            "chain_start",
            name=run_root.name,
            inputs=trace.root_input(),
        )
        add(
            run_root.end_time_ns,
            3,
            run_root.span_id,
            "chain_end",
            name=run_root.name,
            outputs=trace.root_output(),
            latency_s=run_root.duration_s,
        )

    for call in llm_calls:
        add(
            call.start_time_ns,
            1,
            call.span_id,
            "llm_start",
            name=call.name,
            run_type=call.run_type,
            model=call.model,
            provider=call.provider,
            prompt=call.prompt,
            messages=[_message(m) for m in call.messages],
            temperature=call.temperature,
            max_tokens=call.max_tokens,
        )
        if call.error is None:
            add(
                call.end_time_ns,
                2,
                call.span_id,
                "llm_end",
                name=call.name,
                model=call.model,
                generations=list(call.generations),
                output_messages=[_message(m) for m in call.output_messages],
                input_tokens=call.input_tokens,
                output_tokens=call.output_tokens,
                finish_reasons=list(call.finish_reasons),
                latency_s=call.latency_s,
            )
        else:
            add(
                call.end_time_ns,
                2,
                call.span_id,
                "llm_error",
                name=call.name,
                model=call.model,
                error=call.error,
                latency_s=call.latency_s,
            )

    for tool in tool_calls:
        span = trace.span(tool.span_id)
        tool_start_ns = span.start_time_ns if span is not None else start_ns
        tool_end_ns = span.end_time_ns if span is not None else end_ns
        add(
            tool_start_ns,
            1,
            tool.span_id,
            "tool_start",
            name=tool.name,
            call_id=tool.call_id,
            input=tool.arguments,
        )
        if tool.error is None:
            add(
                tool_end_ns,
                2,
                tool.span_id,
                "tool_end",
                name=tool.name,
                call_id=tool.call_id,
                output=tool.result,
                latency_s=tool.latency_s,
            )
        else:
            add(
                tool_end_ns,
                2,
                tool.span_id,
                "tool_error",
                name=tool.name,
                call_id=tool.call_id,
                error=tool.error,
                latency_s=tool.latency_s,
            )

    for step in trace.agent_steps():
        add(
            step.timestamp_ns,
            1,
            step.span_id,
            "agent_action",
            tool=step.tool,
            tool_input=step.tool_input,
            log=step.log,
        )

    for error in errors:
        span = trace.span(error.span_id)
        add(
            span.end_time_ns if span is not None else end_ns,
            2,
            error.span_id,
            "error",
            span_name=error.span_name,
            run_type=error.run_type,
            error_type=error.error_type,
            message=error.message,
        )

    timed.sort(key=lambda item: (item[0], item[1]))
    trace_id = trace_key(trace)
    records: list[dict[str, Any]] = []
    for seq, (time_ns, _order, record, span_id, fields) in enumerate(timed):
        records.append(
            {
                "schema": RECORD_SCHEMA,
                "record": record,
                "trace_id": trace_id,
                "span_id": format(span_id, "016x"),
                "seq": seq,
                "time": _iso(time_ns),
                **fields,
            }
        )
    return records


def _trace_metrics(trace: FinishedTrace, step: int, now_s: float) -> tuple[list[MetricPoint], int]:
    """Points of one trace: one step per LLM call, then one step for the trace summary."""
    points: list[MetricPoint] = []
    errors_by_model: dict[str, int] = {}
    for call in trace.llm_calls():
        model = _model_name(call)
        errors_by_model[model] = errors_by_model.get(model, 0) + (call.error is not None)
        when = _metric_time(call.end_time_ns, now_s)
        points.append(
            MetricPoint(_metric_name(model, "latency_seconds"), call.latency_s, step, when)
        )
        if call.input_tokens is not None:
            points.append(
                MetricPoint(
                    _metric_name(model, "input_tokens"), float(call.input_tokens), step, when
                )
            )
        if call.output_tokens is not None:
            points.append(
                MetricPoint(
                    _metric_name(model, "output_tokens"), float(call.output_tokens), step, when
                )
            )
        step += 1
    start_ns, end_ns = _trace_bounds(trace)
    when = _metric_time(end_ns, now_s)
    points.append(MetricPoint("trace/latency_seconds", (end_ns - start_ns) / 1e9, step, when))
    points.append(MetricPoint("trace/errors", float(len(trace.errors())), step, when))
    for model, count in sorted(errors_by_model.items()):
        points.append(MetricPoint(_metric_name(model, "errors"), float(count), step, when))
    return points, step + 1


def _trace_parameters(trace: FinishedTrace) -> dict[str, ParameterValue]:
    parameters: dict[str, ParameterValue] = {}
    run_root = trace.run_root()
    if run_root is not None:
        parameters[PARAMETER_CHAIN_NAME] = run_root.name[:_MAX_PARAMETER_STRING]
    for call in trace.llm_calls():
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


def _model_name(call: LLMCall) -> str:
    return call.model or UNKNOWN_MODEL


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


def _message(message: Message) -> dict[str, Any]:
    return {
        "role": message.role,
        "content": message.content,
        "tool_calls": [dict(call) for call in message.tool_calls],
        "tool_call_id": message.tool_call_id,
    }


def _iso(time_ns: int) -> str:
    return datetime.fromtimestamp(time_ns / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")
