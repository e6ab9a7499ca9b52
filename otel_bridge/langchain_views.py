"""LangChain views over a finished trace: the model calls, runs, tool calls, agent steps and
errors the sinks ask for, decoded from span attributes only (names in `otel_bridge.semconv`).

A trace built from in-process spans and one decoded from OTLP by the receiver answer the same way.
Each view is guarded: a malformed attribute costs that item or field, never the whole helper.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from otel_bridge import semconv
from otel_bridge.trace_tree import AttributeValue, EventRecord, SpanRecord, TraceTree

__all__ = [
    "FinishedTrace",
    "LLMCall",
    "RetrievedDocument",
    "RunEvent",
    "SpanError",
    "TracedAgentStep",
    "TracedMessage",
    "TracedRun",
    "TracedToolCall",
    "as_text",
    "guarded",
    "json_attribute",
    "retrieved_documents",
    "span_run_name",
    "span_run_type",
]

_logger = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class TracedMessage:
    """One chat message flattened for sinks: role is system/user/assistant/tool."""

    role: str
    content: str
    tool_calls: tuple[Mapping[str, Any], ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class LLMCall:
    """One LLM or chat-model span."""

    trace_id: int
    span_id: int
    run_type: str  # "llm" or "chat_model"
    name: str
    prompt: str | None  # text-completion prompt(s) joined with blank lines; None for chat
    messages: tuple[TracedMessage, ...]  # chat input (for llm runs: one user message per prompt)
    generations: tuple[str, ...]  # text of each output choice
    output_messages: tuple[TracedMessage, ...]
    model: str | None  # response model, else request model
    provider: str | None
    input_tokens: int | None
    output_tokens: int | None
    latency_s: float
    finish_reasons: tuple[str, ...]
    temperature: float | None
    max_tokens: int | None
    error: str | None  # error.type when the call failed
    start_time_ns: int
    end_time_ns: int

    @property
    def model_label(self) -> str:
        """What to name the model in per-model metrics: its name as the call reported it (the
        provider's `ls_model_name` is one), else the run's name, the model's class
        ("ChatOpenAI") unless the app renamed the run, never one label shared by every model
        that reports no name."""
        return self.model or self.name or "unnamed model"


@dataclass(frozen=True, slots=True)
class RetrievedDocument:
    page_content: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TracedToolCall:
    trace_id: int
    span_id: int
    name: str
    call_id: str | None
    arguments: Any
    result: Any
    error: str | None
    latency_s: float


@dataclass(frozen=True, slots=True)
class TracedAgentStep:
    trace_id: int
    span_id: int
    tool: str
    tool_input: Any
    log: str
    timestamp_ns: int


@dataclass(frozen=True, slots=True)
class SpanError:
    trace_id: int
    span_id: int
    span_name: str
    run_type: str | None
    error_type: str
    message: str


@dataclass(frozen=True, slots=True)
class RunEvent:
    """A callback LangChain made during a run (agent action or finish, text, custom event, retry,
    first streamed token), recorded as an event on the run's span."""

    name: str  # semconv.EVENT_AGENT_ACTION, EVENT_AGENT_FINISH, EVENT_TEXT, EVENT_CUSTOM, ...
    timestamp_ns: int
    # Content the handler JSON-encoded (tool_input, log, return_values, text, data) comes back
    # decoded; the other attributes (tool, name, attempt, error.type, ...) as they are.
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TracedRun:
    """One LangChain run: the span the handler made from it, with its attributes decoded.

    Each field is decoded on its own, so a malformed attribute leaves that field empty (None,
    (), {}) and the others intact.
    """

    span: SpanRecord
    run_id: str | None
    parent_run_id: str | None
    run_type: str | None  # semconv.RUN_TYPE_*: "chain", "chat_model", "tool", ...
    name: str  # the run name, else the span name
    tags: tuple[str, ...]
    metadata: Mapping[str, AttributeValue]
    # Non-model runs: decoded `langchain.input` / `langchain.output` (text when it was cut).
    # Model runs: the input messages (a text-completion prompt is one user message) / the text
    # of each generation.
    inputs: Any
    outputs: Any
    documents: tuple[RetrievedDocument, ...]  # what a retriever run returned
    model: str | None  # response model, else request model
    status: str  # "ok" or "error"
    error_type: str | None  # set when status is "error"
    start_time_ns: int
    end_time_ns: int
    latency_s: float
    events: tuple[RunEvent, ...]

    @property
    def span_id(self) -> int:
        return self.span.span_id


class FinishedTrace(TraceTree):
    """All spans of one trace id, handed to a sink once, with the LangChain views over them.

    `partial` is True when the trace was handed over because it reached the maximum age (or a
    buffer bound) before its local root ended.
    """

    __slots__ = ()

    # --- helpers for sinks (each guarded: a malformed attribute costs that field only) ---------

    def llm_calls(self) -> tuple[LLMCall, ...]:
        """Every LLM / chat-model call, in start order."""
        return tuple(
            call
            for span in self.spans
            if _is_model(span) and (call := guarded("LLM call", span, _llm_call, span)) is not None
        )

    def tool_calls(self) -> tuple[TracedToolCall, ...]:
        return tuple(
            item
            for span in self.spans
            if span_run_type(span) == semconv.RUN_TYPE_TOOL
            or span.attributes.get(semconv.GEN_AI_OPERATION_NAME) == semconv.OP_EXECUTE_TOOL
            if (item := guarded("tool call", span, _tool_call, span)) is not None
        )

    def agent_steps(self) -> tuple[TracedAgentStep, ...]:
        """Agent actions: from agent-action events, else the tool calls the chat models asked for."""
        steps = [
            step
            for span in self.spans
            for event in span.events
            if event.name == semconv.EVENT_AGENT_ACTION
            if (step := guarded("agent step", span, _agent_action, span, event)) is not None
        ]
        if steps:
            return tuple(steps)
        for call in self.llm_calls():
            for message in call.output_messages:
                for tool_call in message.tool_calls:
                    steps.append(
                        TracedAgentStep(
                            trace_id=call.trace_id,
                            span_id=call.span_id,
                            tool=str(tool_call.get("name") or ""),
                            tool_input=tool_call.get("arguments"),
                            log=message.content,
                            timestamp_ns=call.end_time_ns,
                        )
                    )
        return tuple(steps)

    def errors(self) -> tuple[SpanError, ...]:
        return tuple(
            item
            for span in self.spans
            if _failed(span)
            if (item := guarded("error", span, _span_error, span)) is not None
        )

    def root_input(self) -> Any:
        """The outermost LangChain run's input (`langchain.input` decoded, a tool's arguments, a
        retriever's query; None when absent)."""
        root = self.run_root()
        return None if root is None else _run_inputs(root)

    def root_output(self) -> Any:
        """The outermost LangChain run's output (`langchain.output` decoded, a tool's result; None
        when absent)."""
        root = self.run_root()
        return None if root is None else _run_outputs(root)

    def tags(self) -> tuple[str, ...]:
        """Run tags of every span, first occurrence order, without duplicates."""
        seen: dict[str, None] = {}
        for span in self.spans:
            seen.update(dict.fromkeys(_span_tags(span)))
        return tuple(seen)

    def metadata(self) -> dict[str, AttributeValue]:
        """Run metadata merged over all spans; the outermost run's values win."""
        merged: dict[str, AttributeValue] = {}
        for span in reversed(self.spans):
            merged.update(_span_metadata(span))
        return merged

    def runs(self) -> tuple[TracedRun, ...]:
        """Every span made from a LangChain run, decoded, in start order."""
        return tuple(_run(span) for span in self.spans if _is_run(span))

    def run_of(self, span: SpanRecord) -> TracedRun | None:
        """The decoded run `span` was made from; None for a span that is no LangChain run's."""
        return _run(span) if _is_run(span) else None


def guarded(what: str, span: SpanRecord, build: Callable[..., _T | None], *args: Any) -> _T | None:
    """`build(*args)`, or None (logged at debug) when a malformed attribute of `span` breaks it."""
    try:
        return build(*args)
    except Exception:  # a malformed attribute must cost one item, never the whole helper
        _logger.debug(
            "skipping %s of span %016x: malformed attributes", what, span.span_id, exc_info=True
        )
        return None


def span_run_type(span: SpanRecord) -> str | None:
    """The run type (`semconv.RUN_TYPE_*`) of a span made from a LangChain run, else None."""
    value = span.attributes.get(semconv.RUN_TYPE)
    return value if isinstance(value, str) else None


def span_run_name(span: SpanRecord) -> str:
    """The run's name, else the span's."""
    value = span.attributes.get(semconv.RUN_NAME)
    return value if isinstance(value, str) else span.name


def _is_model(span: SpanRecord) -> bool:
    run_type = span_run_type(span)
    if run_type is not None:
        return run_type in semconv.MODEL_RUN_TYPES
    return span.attributes.get(semconv.GEN_AI_OPERATION_NAME) in (
        semconv.OP_CHAT,
        semconv.OP_TEXT_COMPLETION,
    )


def json_attribute(span: SpanRecord, key: str) -> Any:
    """A content attribute decoded from JSON; its text when it is not JSON (e.g. truncated)."""
    value = span.attributes.get(key)
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value  # bounded (truncated) content is no longer JSON: keep the text


def _str_attr(span: SpanRecord, key: str) -> str | None:
    value = span.attributes.get(key)
    return value if isinstance(value, str) else None


def _int_attr(span: SpanRecord, key: str) -> int | None:
    value = span.attributes.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float_attr(span: SpanRecord, key: str) -> float | None:
    value = span.attributes.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def as_text(value: Any) -> str:
    """A decoded input, output or argument as plain text: strings as they are, the rest as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _messages(value: Any) -> tuple[TracedMessage, ...]:
    if not isinstance(value, list):
        return ()
    messages = []
    for item in value:
        if not isinstance(item, Mapping):
            continue
        texts: list[str] = []
        tool_calls: list[Mapping[str, Any]] = []
        tool_call_id = None
        for part in item.get("parts") or ():
            if not isinstance(part, Mapping):
                continue
            kind = part.get("type")
            if kind == "text":
                texts.append(as_text(part.get("content")))
            elif kind == "tool_call":
                tool_calls.append(
                    {
                        "id": part.get("id"),
                        "name": part.get("name"),
                        "arguments": part.get("arguments"),
                    }
                )
            elif kind == "tool_call_response":
                tool_call_id = part.get("id")
                texts.append(as_text(part.get("response")))
        if "content" in item and not texts:
            texts.append(as_text(item["content"]))
        messages.append(
            TracedMessage(
                role=str(item.get("role") or "user"),
                content="\n".join(texts),
                tool_calls=tuple(tool_calls),
                tool_call_id=tool_call_id if isinstance(tool_call_id, str) else None,
            )
        )
    return tuple(messages)


def _finish_reasons(span: SpanRecord, output: Any) -> tuple[str, ...]:
    value = span.attributes.get(semconv.GEN_AI_RESPONSE_FINISH_REASONS)
    if isinstance(value, tuple):
        return tuple(str(v) for v in value)
    if isinstance(value, str):
        return (value,)
    if isinstance(output, list):
        return tuple(
            str(m["finish_reason"])
            for m in output
            if isinstance(m, Mapping) and m.get("finish_reason")
        )
    return ()


def _prompt_list(span: SpanRecord) -> list[str] | None:
    prompts = json_attribute(span, semconv.LLM_PROMPTS)
    return [as_text(p) for p in prompts] if isinstance(prompts, list) else None


def _input_messages(span: SpanRecord, prompt_list: list[str] | None) -> tuple[TracedMessage, ...]:
    """Chat input; a text-completion run's prompts as one user message each."""
    messages = _messages(json_attribute(span, semconv.GEN_AI_INPUT_MESSAGES))
    if not messages and prompt_list:
        messages = tuple(TracedMessage(role="user", content=p) for p in prompt_list)
    return messages


def _model(span: SpanRecord) -> str | None:
    return _str_attr(span, semconv.GEN_AI_RESPONSE_MODEL) or _str_attr(
        span, semconv.GEN_AI_REQUEST_MODEL
    )


def _llm_call(span: SpanRecord) -> LLMCall:
    run_type = span_run_type(span)
    if run_type is None:
        is_llm = span.attributes.get(semconv.GEN_AI_OPERATION_NAME) == semconv.OP_TEXT_COMPLETION
        run_type = semconv.RUN_TYPE_LLM if is_llm else semconv.RUN_TYPE_CHAT_MODEL
    prompt_list = _prompt_list(span)
    messages = _input_messages(span, prompt_list)
    raw_output = json_attribute(span, semconv.GEN_AI_OUTPUT_MESSAGES)
    output_messages = _messages(raw_output)
    prompt = None
    if run_type == semconv.RUN_TYPE_LLM:
        prompt = (
            "\n\n".join(prompt_list) if prompt_list else "\n\n".join(m.content for m in messages)
        )
    return LLMCall(
        trace_id=span.trace_id,
        span_id=span.span_id,
        run_type=run_type,
        name=span_run_name(span),
        prompt=prompt,
        messages=messages,
        generations=tuple(m.content for m in output_messages),
        output_messages=output_messages,
        model=_model(span),
        provider=_str_attr(span, semconv.GEN_AI_PROVIDER_NAME),
        input_tokens=_int_attr(span, semconv.GEN_AI_USAGE_INPUT_TOKENS),
        output_tokens=_int_attr(span, semconv.GEN_AI_USAGE_OUTPUT_TOKENS),
        latency_s=span.duration_s,
        finish_reasons=_finish_reasons(span, raw_output),
        temperature=_float_attr(span, semconv.GEN_AI_REQUEST_TEMPERATURE),
        max_tokens=_int_attr(span, semconv.GEN_AI_REQUEST_MAX_TOKENS),
        error=_str_attr(span, semconv.ERROR_TYPE),
        start_time_ns=span.start_time_ns,
        end_time_ns=span.end_time_ns,
    )


def retrieved_documents(span: SpanRecord) -> tuple[RetrievedDocument, ...]:
    """The documents a retriever span returned (raises on a malformed attribute: guard it)."""
    raw = json_attribute(span, semconv.GEN_AI_RETRIEVAL_DOCUMENTS)
    if raw is None:
        raw = json_attribute(span, semconv.RETRIEVAL_DOCUMENTS)  # written before the GenAI name
    if not isinstance(raw, list):
        return ()
    documents = []
    for item in raw:
        if isinstance(item, Mapping):
            metadata = item.get("metadata")
            content = item.get("content")
            documents.append(
                RetrievedDocument(
                    page_content=as_text(item.get("page_content") if content is None else content),
                    metadata=dict(metadata) if isinstance(metadata, Mapping) else {},
                )
            )
        elif isinstance(item, str):
            documents.append(RetrievedDocument(page_content=item))
    return tuple(documents)


def _text_attr(span: SpanRecord, key: str) -> Any:
    """A GenAI content attribute: a string as it is, unless it holds a JSON object or list."""
    value = span.attributes.get(key)
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _tool_arguments(span: SpanRecord) -> Any:
    if semconv.GEN_AI_TOOL_CALL_ARGUMENTS in span.attributes:
        return _text_attr(span, semconv.GEN_AI_TOOL_CALL_ARGUMENTS)
    return json_attribute(span, semconv.LANGCHAIN_INPUT)  # written before the GenAI name


def _tool_result(span: SpanRecord) -> Any:
    if semconv.GEN_AI_TOOL_CALL_RESULT in span.attributes:
        return _text_attr(span, semconv.GEN_AI_TOOL_CALL_RESULT)
    return json_attribute(span, semconv.LANGCHAIN_OUTPUT)


def _run_inputs(span: SpanRecord) -> Any:
    run_type = span_run_type(span)
    if run_type == semconv.RUN_TYPE_TOOL:
        return _tool_arguments(span)
    if run_type == semconv.RUN_TYPE_RETRIEVER and (
        semconv.GEN_AI_RETRIEVAL_QUERY_TEXT in span.attributes
    ):
        return span.attributes[semconv.GEN_AI_RETRIEVAL_QUERY_TEXT]
    return json_attribute(span, semconv.LANGCHAIN_INPUT)


def _run_outputs(span: SpanRecord) -> Any:
    if span_run_type(span) == semconv.RUN_TYPE_TOOL:
        return _tool_result(span)
    return json_attribute(span, semconv.LANGCHAIN_OUTPUT)


def _tool_call(span: SpanRecord) -> TracedToolCall:
    return TracedToolCall(
        trace_id=span.trace_id,
        span_id=span.span_id,
        name=_str_attr(span, semconv.GEN_AI_TOOL_NAME) or span_run_name(span),
        call_id=_str_attr(span, semconv.GEN_AI_TOOL_CALL_ID),
        arguments=_tool_arguments(span),
        result=_tool_result(span),
        error=_str_attr(span, semconv.ERROR_TYPE),
        latency_s=span.duration_s,
    )


def _event_value(event: EventRecord, name: str) -> Any:
    """An agent-action event attribute ("tool", "tool_input", "log"; content JSON-encoded)."""
    value = event.attributes.get(name)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _agent_action(span: SpanRecord, event: EventRecord) -> TracedAgentStep:
    return TracedAgentStep(
        trace_id=span.trace_id,
        span_id=span.span_id,
        tool=as_text(_event_value(event, "tool")),
        tool_input=_event_value(event, "tool_input"),
        log=as_text(_event_value(event, "log")),
        timestamp_ns=event.timestamp_ns,
    )


def _span_error(span: SpanRecord) -> SpanError:
    exception = next((e for e in span.events if e.name == "exception"), None)
    error_type = _str_attr(span, semconv.ERROR_TYPE)
    message = span.status_description or ""
    if exception is not None:
        error_type = error_type or as_text(exception.attributes.get("exception.type"))
        message = message or as_text(exception.attributes.get("exception.message"))
    return SpanError(
        trace_id=span.trace_id,
        span_id=span.span_id,
        span_name=span.name,
        run_type=span_run_type(span),
        error_type=error_type or "error",
        message=message,
    )


def _failed(span: SpanRecord) -> bool:
    return span.status_code == "ERROR" or semconv.ERROR_TYPE in span.attributes


def _span_tags(span: SpanRecord) -> tuple[str, ...]:
    value = span.attributes.get(semconv.RUN_TAGS)
    if isinstance(value, str):
        return (value,)
    if isinstance(value, tuple):
        return tuple(str(tag) for tag in value)
    return ()


def _span_metadata(span: SpanRecord) -> dict[str, AttributeValue]:
    prefix = semconv.RUN_METADATA_PREFIX
    return {
        key[len(prefix) :]: value
        for key, value in span.attributes.items()
        if key.startswith(prefix)
    }


# --- LangChain runs --------------------------------------------------------------------------------


def _is_run(span: SpanRecord) -> bool:
    # Either attribute marks a span the handler made; the other may have been dropped on the way
    # (e.g. by a collector's attribute filter) and the span is still that run's.
    return semconv.RUN_ID in span.attributes or semconv.RUN_TYPE in span.attributes


# The span events that stand for LangChain callbacks (the SDK's own "exception" event is not one).
_RUN_EVENT_NAMES = frozenset(
    {
        semconv.EVENT_AGENT_ACTION,
        semconv.EVENT_AGENT_FINISH,
        semconv.EVENT_TEXT,
        semconv.EVENT_CUSTOM,
        semconv.EVENT_RETRY,
        semconv.EVENT_FIRST_TOKEN,
    }
)
# Event attributes the handler JSON-encodes (bounded content); decoding any other string would
# turn e.g. a tool named "true" into a boolean.
_EVENT_CONTENT_KEYS = frozenset({"tool_input", "log", "return_values", "text", "data"})


def _run_event(event: EventRecord) -> RunEvent:
    return RunEvent(
        name=event.name,
        timestamp_ns=event.timestamp_ns,
        attributes={
            key: _event_value(event, key) if key in _EVENT_CONTENT_KEYS else value
            for key, value in event.attributes.items()
        },
    )


def _model_inputs(span: SpanRecord) -> tuple[TracedMessage, ...]:
    return _input_messages(span, _prompt_list(span))


def _generations(span: SpanRecord) -> tuple[str, ...]:
    return tuple(m.content for m in _messages(json_attribute(span, semconv.GEN_AI_OUTPUT_MESSAGES)))


def _error_type(span: SpanRecord) -> str:
    return _span_error(span).error_type


def _run(span: SpanRecord) -> TracedRun:
    is_model = _is_model(span)
    failed = _failed(span)
    return TracedRun(
        span=span,
        run_id=_str_attr(span, semconv.RUN_ID),
        parent_run_id=_str_attr(span, semconv.RUN_PARENT_ID),
        run_type=span_run_type(span),
        name=span_run_name(span),
        tags=guarded("run tags", span, _span_tags, span) or (),
        metadata=guarded("run metadata", span, _span_metadata, span) or {},
        inputs=guarded("run inputs", span, _model_inputs, span)
        if is_model
        else guarded("run inputs", span, _run_inputs, span),
        outputs=guarded("run outputs", span, _generations, span)
        if is_model
        else guarded("run outputs", span, _run_outputs, span),
        documents=guarded("retrieved documents", span, retrieved_documents, span) or (),
        model=_model(span),
        status="error" if failed else "ok",
        error_type=guarded("error type", span, _error_type, span) if failed else None,
        start_time_ns=span.start_time_ns,
        end_time_ns=span.end_time_ns,
        latency_s=span.duration_s,
        events=tuple(
            run_event
            for event in span.events
            if event.name in _RUN_EVENT_NAMES
            if (run_event := guarded("run event", span, _run_event, event)) is not None
        ),
    )
