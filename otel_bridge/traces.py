"""Compatibility re-export of the finished-trace names: the span/trace model now lives in
`otel_bridge.trace_tree` and the LangChain views in `otel_bridge.langchain_views`."""

from __future__ import annotations

from otel_bridge.langchain_views import (
    FinishedTrace,
    LLMCall,
    RetrievedDocument,
    RunEvent,
    SpanError,
    TracedAgentStep,
    TracedMessage,
    TracedRun,
    TracedToolCall,
    as_text,
)
from otel_bridge.trace_tree import AttributeValue, EventRecord, LinkRecord, SpanRecord, TraceTree

__all__ = [
    "AttributeValue",
    "EventRecord",
    "FinishedTrace",
    "LLMCall",
    "LinkRecord",
    "RetrievedDocument",
    "RunEvent",
    "SpanError",
    "SpanRecord",
    "TraceTree",
    "TracedAgentStep",
    "TracedMessage",
    "TracedRun",
    "TracedToolCall",
    "as_text",
]
