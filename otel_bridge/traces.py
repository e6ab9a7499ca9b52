"""Finished traces: every span of one trace id, with helpers answering what the sinks ask.

Everything here is read from span attributes only (names in `otel_bridge.semconv`), so a trace
built from in-process spans and one decoded from OTLP by the receiver answer the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

AttributeValue = str | bool | int | float | tuple[str, ...] | tuple[bool, ...] | tuple[int, ...] | tuple[float, ...]


@dataclass(frozen=True, slots=True)
class EventRecord:
    name: str
    timestamp_ns: int
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LinkRecord:
    trace_id: int
    span_id: int
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One finished span, detached from the SDK (serializable, comparable, hashable ids)."""

    trace_id: int
    span_id: int
    parent_span_id: int | None
    name: str
    kind: str  # SpanKind name: "INTERNAL", "CLIENT", "SERVER", "PRODUCER", "CONSUMER"
    start_time_ns: int
    end_time_ns: int
    attributes: Mapping[str, AttributeValue]
    status_code: str  # "UNSET", "OK", "ERROR"
    status_description: str | None = None
    events: tuple[EventRecord, ...] = ()
    links: tuple[LinkRecord, ...] = ()
    resource: Mapping[str, AttributeValue] = field(default_factory=dict)
    scope_name: str = ""
    scope_version: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
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
    messages: tuple[Message, ...]  # chat input (for llm runs: one user message per prompt)
    generations: tuple[str, ...]  # text of each output choice
    output_messages: tuple[Message, ...]
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


@dataclass(frozen=True, slots=True)
class Document:
    page_content: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RagTurn:
    """A retrieval followed by a model answer under the same chain."""

    trace_id: int
    span_id: int  # the chain span that holds both
    question: str
    documents: tuple[Document, ...]
    context: str  # documents' page_content joined with "\n\n"
    answer: str


@dataclass(frozen=True, slots=True)
class MultiQuery:
    trace_id: int
    span_id: int  # the MultiQueryRetriever span
    question: str
    variants: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Compression:
    trace_id: int
    span_id: int  # the ContextualCompressionRetriever span
    question: str
    original_context: str
    compressed_context: str
    original_documents: tuple[Document, ...]
    compressed_documents: tuple[Document, ...]


@dataclass(frozen=True, slots=True)
class ToolCall:
    trace_id: int
    span_id: int
    name: str
    call_id: str | None
    arguments: Any
    result: Any
    error: str | None
    latency_s: float


@dataclass(frozen=True, slots=True)
class AgentStep:
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
class FinishedTrace:
    """All spans of one trace id, handed to a sink once.

    `partial` is True when the trace was handed over because it reached the maximum age (or a
    buffer bound) before its local root ended.
    """

    trace_id: int
    spans: tuple[SpanRecord, ...]
    partial: bool = False
