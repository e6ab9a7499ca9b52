"""Terminal views of finished traces: one `rich` tree per trace with run type, name, duration,
tokens and status, built only from `SpanRecord` fields and the `otel_bridge.semconv` names."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping

from rich.console import Console, Group, RenderableType
from rich.text import Text
from rich.tree import Tree

from otel_bridge import semconv
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.trace_tree import AttributeValue, SpanRecord

__all__ = [
    "format_duration",
    "make_console",
    "render_trace",
    "render_traces",
    "span_roots",
    "trace_tokens",
]

# Pipes and CI logs have no width; rich's 80-column fallback would wrap most span lines.
_PIPE_WIDTH = 140

# One colour per LangChain run type, so a reader can scan a tree for the model and tool calls.
_RUN_TYPE_STYLES: Mapping[str, str] = {
    semconv.RUN_TYPE_CHAIN: "cyan",
    semconv.RUN_TYPE_CHAT_MODEL: "bold magenta",
    semconv.RUN_TYPE_LLM: "bold magenta",
    semconv.RUN_TYPE_TOOL: "bold yellow",
    semconv.RUN_TYPE_RETRIEVER: "bold green",
    semconv.RUN_TYPE_PROMPT: "blue",
    semconv.RUN_TYPE_PARSER: "blue",
    semconv.RUN_TYPE_AGENT: "bold cyan",
}
_FOREIGN_SPAN_STYLE = "white"


def make_console() -> Console:
    """A console for stdout: colour on terminals (NO_COLOR honoured), wide lines in pipes."""
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=_PIPE_WIDTH)
    return console


def format_duration(nanoseconds: int) -> str:
    """A duration as a person reads it: microseconds, milliseconds or seconds."""
    seconds = max(nanoseconds, 0) / 1e9
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.0f} ms"
    return f"{seconds:.2f} s"


def span_roots(trace: FinishedTrace) -> tuple[SpanRecord, ...]:
    """Spans whose parent is not in the trace: the local root, plus orphans of a partial trace."""
    span_ids = {span.span_id for span in trace.spans}
    return tuple(
        sorted(
            (
                s
                for s in trace.spans
                if s.parent_span_id is None or s.parent_span_id not in span_ids
            ),
            key=_start_order,
        )
    )


def trace_tokens(trace: FinishedTrace) -> tuple[int, int]:
    """Input and output tokens summed over the trace's model spans."""
    input_tokens = output_tokens = 0
    for span in trace.spans:
        input_tokens += _int_attribute(span.attributes, semconv.GEN_AI_USAGE_INPUT_TOKENS) or 0
        output_tokens += _int_attribute(span.attributes, semconv.GEN_AI_USAGE_OUTPUT_TOKENS) or 0
    return input_tokens, output_tokens


def render_trace(trace: FinishedTrace) -> Tree:
    """The trace as a tree of spans, children in start order, one line per span."""
    tree = Tree(_trace_label(trace), guide_style="dim")
    pending = [(tree, root) for root in reversed(span_roots(trace))]
    while pending:
        parent_node, span = pending.pop()
        node = parent_node.add(_span_label(span))
        pending.extend((node, child) for child in reversed(trace.children(span)))
    return tree


def render_traces(traces: Iterable[FinishedTrace]) -> RenderableType:
    """Several traces, oldest first, one tree each."""
    ordered = sorted(traces, key=lambda t: min((s.start_time_ns for s in t.spans), default=0))
    return Group(*(render_trace(trace) for trace in ordered))


def _trace_label(trace: FinishedTrace) -> Text:
    label = Text.assemble(("trace ", "bold"), (format(trace.trace_id, "032x"), "bold"))
    if trace.spans:
        start = min(s.start_time_ns for s in trace.spans)
        end = max(s.end_time_ns for s in trace.spans)
        label.append(f"  {len(trace.spans)} spans, {format_duration(end - start)}", style="dim")
    input_tokens, output_tokens = trace_tokens(trace)
    if input_tokens or output_tokens:
        label.append(f", {input_tokens}→{output_tokens} tokens", style="dim")
    errors = sum(1 for s in trace.spans if s.status_code == "ERROR")
    if errors:
        label.append(f"  {errors} failed", style="bold red")
    if trace.partial:
        label.append("  partial", style="bold yellow")
    return label


def _span_label(span: SpanRecord) -> Text:
    attributes = span.attributes
    run_type = _str_attribute(attributes, semconv.RUN_TYPE)
    kind = run_type or span.kind.lower()
    name = _str_attribute(attributes, semconv.RUN_NAME) or span.name
    label = Text.assemble(
        (f"{kind:<10}", _RUN_TYPE_STYLES.get(kind, _FOREIGN_SPAN_STYLE)),
        " ",
        (name, "bold"),
    )
    model = _str_attribute(attributes, semconv.GEN_AI_RESPONSE_MODEL) or _str_attribute(
        attributes, semconv.GEN_AI_REQUEST_MODEL
    )
    if model:
        label.append(f" {model}", style="magenta")
    elif run_type is None and span.name != name:
        label.append(f" {span.name}", style="dim")
    label.append(f"  {format_duration(span.end_time_ns - span.start_time_ns)}", style="dim")
    documents = _document_count(attributes)
    if documents is not None:
        label.append(f"  {documents} documents", style="green")
    input_tokens = _int_attribute(attributes, semconv.GEN_AI_USAGE_INPUT_TOKENS)
    output_tokens = _int_attribute(attributes, semconv.GEN_AI_USAGE_OUTPUT_TOKENS)
    if input_tokens is not None or output_tokens is not None:
        label.append(f"  {input_tokens or 0}→{output_tokens or 0} tokens", style="green")
    label.append_text(_status_text(span))
    return label


def _status_text(span: SpanRecord) -> Text:
    if span.status_code != "ERROR":
        return Text("  ✓", style="green")
    error_type = _str_attribute(span.attributes, semconv.ERROR_TYPE) or "error"
    description = span.status_description or ""
    # Descriptions often start with the exception's type already ("ValueError: ...").
    message = description if description.startswith(error_type) else f"{error_type}: {description}"
    return Text(f"  ✗ {_shorten(message.rstrip(': '), 100)}", style="bold red")


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _start_order(span: SpanRecord) -> tuple[int, int]:
    return span.start_time_ns, span.span_id


def _str_attribute(attributes: Mapping[str, AttributeValue], key: str) -> str | None:
    value = attributes.get(key)
    return value if isinstance(value, str) and value else None


def _int_attribute(attributes: Mapping[str, AttributeValue], key: str) -> int | None:
    value = attributes.get(key)
    # bool is an int subclass, and a stray True must not count as one token.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _document_count(attributes: Mapping[str, AttributeValue]) -> int | None:
    encoded = attributes.get(semconv.GEN_AI_RETRIEVAL_DOCUMENTS)
    if encoded is None:
        encoded = attributes.get(semconv.RETRIEVAL_DOCUMENTS)  # written before the GenAI name
    if not isinstance(encoded, str):
        return None
    try:
        documents = json.loads(encoded)
    except ValueError:
        # A truncated attribute is not valid JSON; the tree simply omits the count.
        return None
    return len(documents) if isinstance(documents, list) else None
