"""Finished traces: every span of one trace id, with helpers answering what the sinks ask.

Everything here is read from span attributes only (names in `otel_bridge.semconv`), so a trace
built from in-process spans and one decoded from OTLP by the receiver answer the same way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from otel_bridge import semconv

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = [
    "AgentStep",
    "AttributeValue",
    "Compression",
    "Document",
    "EventRecord",
    "FinishedTrace",
    "LLMCall",
    "LinkRecord",
    "Message",
    "MultiQuery",
    "RagTurn",
    "Run",
    "RunEvent",
    "SpanError",
    "SpanRecord",
    "ToolCall",
    "as_text",
]

_logger = logging.getLogger(__name__)
# One encoder for every record: json.dumps with options would build a new one per call.
_compact_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_T = TypeVar("_T")

AttributeValue = (
    str
    | bool
    | int
    | float
    | tuple[str, ...]
    | tuple[bool, ...]
    | tuple[int, ...]
    | tuple[float, ...]
)


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
    # True when the parent lives in another process (a propagated context): this span is then a
    # local root even though it has a parent id. The receiver sets it from the OTLP span flags.
    parent_is_remote: bool = False

    @property
    def is_local_root(self) -> bool:
        """True when the span has no parent or its parent is in another process."""
        return self.parent_span_id is None or self.parent_is_remote

    @property
    def duration_s(self) -> float:
        return max(0, self.end_time_ns - self.start_time_ns) / 1e9

    @classmethod
    def from_readable(cls, span: ReadableSpan) -> SpanRecord:
        """Detach a finished SDK span (in-process, or decoded from OTLP by the receiver)."""
        context = span.context
        if context is None:
            raise ValueError(f"span {span.name!r} has no span context")
        parent = span.parent
        status = span.status
        scope = span.instrumentation_scope
        return cls(
            trace_id=context.trace_id,
            span_id=context.span_id,
            parent_span_id=parent.span_id if parent is not None and parent.span_id else None,
            parent_is_remote=bool(parent is not None and parent.is_remote),
            name=str(span.name),
            kind=span.kind.name,
            start_time_ns=int(span.start_time or 0),
            end_time_ns=int(span.end_time or span.start_time or 0),
            attributes=_attributes(span.attributes),
            status_code=status.status_code.name,
            status_description=status.description,
            events=tuple(
                EventRecord(e.name, int(e.timestamp or 0), _attributes(e.attributes))
                for e in span.events
            ),
            links=tuple(
                LinkRecord(
                    link.context.trace_id, link.context.span_id, _attributes(link.attributes)
                )
                for link in span.links
            ),
            resource=_resource_attributes(span.resource),
            scope_name=scope.name if scope is not None else "",
            scope_version=scope.version if scope is not None else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ids as lowercase hex like OTLP/JSON, attribute tuples as lists."""
        return {
            "trace_id": format(self.trace_id, "032x"),
            "span_id": format(self.span_id, "016x"),
            "parent_span_id": None
            if self.parent_span_id is None
            else format(self.parent_span_id, "016x"),
            "parent_is_remote": self.parent_is_remote,
            "name": self.name,
            "kind": self.kind,
            "start_time_ns": self.start_time_ns,
            "end_time_ns": self.end_time_ns,
            "attributes": _plain(self.attributes),
            "status_code": self.status_code,
            "status_description": self.status_description,
            "events": [
                {"name": e.name, "timestamp_ns": e.timestamp_ns, "attributes": _plain(e.attributes)}
                for e in self.events
            ],
            "links": [
                {
                    "trace_id": format(link.trace_id, "032x"),
                    "span_id": format(link.span_id, "016x"),
                    "attributes": _plain(link.attributes),
                }
                for link in self.links
            ],
            "resource": _plain(self.resource),
            "scope_name": self.scope_name,
            "scope_version": self.scope_version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SpanRecord:
        """Inverse of `to_dict`; raises ValueError/KeyError/TypeError on a malformed dict."""
        parent = data.get("parent_span_id")
        return cls(
            trace_id=int(data["trace_id"], 16),
            span_id=int(data["span_id"], 16),
            parent_span_id=None if parent is None else int(parent, 16),
            parent_is_remote=bool(data.get("parent_is_remote", False)),
            name=str(data["name"]),
            kind=str(data.get("kind", "INTERNAL")),
            start_time_ns=int(data["start_time_ns"]),
            end_time_ns=int(data["end_time_ns"]),
            attributes=_attributes(data.get("attributes")),
            status_code=str(data.get("status_code", "UNSET")),
            status_description=data.get("status_description"),
            events=tuple(
                EventRecord(
                    str(e["name"]), int(e["timestamp_ns"]), _attributes(e.get("attributes"))
                )
                for e in data.get("events", ())
            ),
            links=tuple(
                LinkRecord(
                    int(link["trace_id"], 16),
                    int(link["span_id"], 16),
                    _attributes(link.get("attributes")),
                )
                for link in data.get("links", ())
            ),
            resource=_attributes(data.get("resource")),
            scope_name=str(data.get("scope_name", "")),
            scope_version=data.get("scope_version"),
        )

    def to_json(self) -> str:
        return _compact_json(self.to_dict())

    @classmethod
    def from_json(cls, text: str | bytes) -> SpanRecord:
        return cls.from_dict(json.loads(text))


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

    @property
    def model_label(self) -> str:
        """What to name the model in per-model metrics: its name as the call reported it (the
        provider's `ls_model_name` is one), else the run's name, the model's class
        ("ChatOpenAI") unless the app renamed the run, never one label shared by every model
        that reports no name."""
        return self.model or self.name or "unnamed model"


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
class RunEvent:
    """A callback LangChain made during a run (agent action or finish, text, custom event, retry,
    first streamed token), recorded as an event on the run's span."""

    name: str  # semconv.EVENT_AGENT_ACTION, EVENT_AGENT_FINISH, EVENT_TEXT, EVENT_CUSTOM, ...
    timestamp_ns: int
    # Content the handler JSON-encoded (tool_input, log, return_values, text, data) comes back
    # decoded; the other attributes (tool, name, attempt, error.type, ...) as they are.
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Run:
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
    documents: tuple[Document, ...]  # what a retriever run returned
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


@dataclass(frozen=True, slots=True)
class FinishedTrace:
    """All spans of one trace id, handed to a sink once.

    `partial` is True when the trace was handed over because it reached the maximum age (or a
    buffer bound) before its local root ended.
    """

    trace_id: int
    spans: tuple[SpanRecord, ...]
    partial: bool = False
    _by_id: Mapping[int, SpanRecord] = field(init=False, repr=False, compare=False)
    _children: Mapping[int, tuple[SpanRecord, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Spans sorted by start time make every helper's output chronological.
        ordered = tuple(sorted(self.spans, key=lambda s: (s.start_time_ns, s.end_time_ns)))
        children: dict[int, list[SpanRecord]] = {}
        for span in ordered:
            if span.parent_span_id is not None:
                children.setdefault(span.parent_span_id, []).append(span)
        object.__setattr__(self, "spans", ordered)
        object.__setattr__(self, "_by_id", {span.span_id: span for span in ordered})
        object.__setattr__(self, "_children", {k: tuple(v) for k, v in children.items()})

    # --- construction and JSON ----------------------------------------------------------------

    @classmethod
    def from_spans(cls, spans: Iterable[ReadableSpan], partial: bool = False) -> FinishedTrace:
        """Build one trace from SDK spans that all share a trace id (ValueError otherwise)."""
        return cls.from_records([SpanRecord.from_readable(span) for span in spans], partial)

    @classmethod
    def from_records(cls, records: Iterable[SpanRecord], partial: bool = False) -> FinishedTrace:
        records = tuple(records)
        trace_ids = {record.trace_id for record in records}
        if len(trace_ids) != 1:
            raise ValueError(
                f"a finished trace needs spans of exactly one trace id, got {len(trace_ids)}"
            )
        return cls(trace_ids.pop(), records, partial)

    def to_dict(self) -> dict[str, Any]:
        return {
            "trace_id": format(self.trace_id, "032x"),
            "partial": self.partial,
            "spans": [span.to_dict() for span in self.spans],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FinishedTrace:
        return cls(
            trace_id=int(data["trace_id"], 16),
            spans=tuple(SpanRecord.from_dict(span) for span in data["spans"]),
            partial=bool(data.get("partial", False)),
        )

    def to_json(self) -> str:
        """Stable JSON (ids in hex, attribute tuples as lists) used by the spool and the receiver."""
        return _compact_json(self.to_dict())

    @classmethod
    def from_json(cls, text: str | bytes) -> FinishedTrace:
        return cls.from_dict(json.loads(text))

    # --- navigation -----------------------------------------------------------------------------

    @property
    def root(self) -> SpanRecord:
        """The local root: no parent, a remote parent, or a parent missing from this trace."""
        for span in self.spans:
            if span.is_local_root:
                return span
        for span in self.spans:
            if span.parent_span_id not in self._by_id:
                return span
        return self.spans[0]

    def span(self, span_id: int) -> SpanRecord | None:
        return self._by_id.get(span_id)

    def parent(self, span: SpanRecord) -> SpanRecord | None:
        return None if span.parent_span_id is None else self._by_id.get(span.parent_span_id)

    def children(self, span: SpanRecord) -> tuple[SpanRecord, ...]:
        """Direct children in start order."""
        return self._children.get(span.span_id, ())

    def descendants(self, span: SpanRecord) -> Iterator[SpanRecord]:
        """Every span below `span`, depth first, children in start order."""
        stack = list(reversed(self.children(span)))
        while stack:
            current = stack.pop()
            yield current
            stack.extend(reversed(self.children(current)))

    def ancestors(self, span: SpanRecord) -> Iterator[SpanRecord]:
        """Parent, grandparent, ... up to the local root (cycle-safe for malformed input)."""
        seen = {span.span_id}
        current = self.parent(span)
        while current is not None and current.span_id not in seen:
            seen.add(current.span_id)
            yield current
            current = self.parent(current)

    def by_run_id(self, run_id: object) -> SpanRecord | None:
        """The span made from the LangChain run with this id (a UUID or its string)."""
        wanted = str(run_id)
        for span in self.spans:
            if span.attributes.get(semconv.RUN_ID) == wanted:
                return span
        return None

    def run_root(self) -> SpanRecord | None:
        """The outermost span made from a LangChain run (the local root may be e.g. an HTTP span)."""
        for span in self.spans:
            if semconv.RUN_ID in span.attributes and not any(
                semconv.RUN_ID in a.attributes for a in self.ancestors(span)
            ):
                return span
        return None

    # --- helpers for sinks (each guarded: a malformed attribute costs that field only) ---------

    def llm_calls(self) -> tuple[LLMCall, ...]:
        """Every LLM / chat-model call, in start order."""
        return tuple(
            call
            for span in self.spans
            if _is_model(span) and (call := _guarded("LLM call", span, _llm_call, span)) is not None
        )

    def rag_turns(self) -> tuple[RagTurn, ...]:
        """Each outermost retrieval paired with the first model call after it under a common chain."""
        turns = []
        for retriever in self._outer_retrievers():
            turn = _guarded("RAG turn", retriever, self._rag_turn, retriever)
            if turn is not None:
                turns.append(turn)
        return tuple(turns)

    def multi_queries(self) -> tuple[MultiQuery, ...]:
        """Each MultiQueryRetriever run: the question and the query variants the model generated."""
        return tuple(
            item
            for span in self.spans
            if _run_type(span) == semconv.RUN_TYPE_RETRIEVER
            and "MultiQuery" in _run_name(span)
            and (item := _guarded("multi-query", span, self._multi_query, span)) is not None
        )

    def compressions(self) -> tuple[Compression, ...]:
        """Each ContextualCompressionRetriever run: the base retriever's vs the compressed documents."""
        return tuple(
            item
            for span in self.spans
            if _run_type(span) == semconv.RUN_TYPE_RETRIEVER
            and "ContextualCompression" in _run_name(span)
            and (item := _guarded("compression", span, self._compression, span)) is not None
        )

    def tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(
            item
            for span in self.spans
            if _run_type(span) == semconv.RUN_TYPE_TOOL
            or span.attributes.get(semconv.GEN_AI_OPERATION_NAME) == semconv.OP_EXECUTE_TOOL
            if (item := _guarded("tool call", span, _tool_call, span)) is not None
        )

    def agent_steps(self) -> tuple[AgentStep, ...]:
        """Agent actions: from agent-action events, else the tool calls the chat models asked for."""
        steps = [
            step
            for span in self.spans
            for event in span.events
            if event.name == semconv.EVENT_AGENT_ACTION
            if (step := _guarded("agent step", span, _agent_action, span, event)) is not None
        ]
        if steps:
            return tuple(steps)
        for call in self.llm_calls():
            for message in call.output_messages:
                for tool_call in message.tool_calls:
                    steps.append(
                        AgentStep(
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
            if (item := _guarded("error", span, _span_error, span)) is not None
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

    def runs(self) -> tuple[Run, ...]:
        """Every span made from a LangChain run, decoded, in start order."""
        return tuple(_run(span) for span in self.spans if _is_run(span))

    def run_of(self, span: SpanRecord) -> Run | None:
        """The decoded run `span` was made from; None for a span that is no LangChain run's."""
        return _run(span) if _is_run(span) else None

    # --- private assembly of the composite helpers ---------------------------------------------

    def _outer_retrievers(self) -> Iterator[SpanRecord]:
        for span in self.spans:
            if _run_type(span) == semconv.RUN_TYPE_RETRIEVER and not any(
                _run_type(a) == semconv.RUN_TYPE_RETRIEVER for a in self.ancestors(span)
            ):
                yield span

    def _inside_retriever(self, span: SpanRecord) -> bool:
        return any(_run_type(a) == semconv.RUN_TYPE_RETRIEVER for a in self.ancestors(span))

    def _rag_turn(self, retriever: SpanRecord) -> RagTurn | None:
        retriever_chain = [a.span_id for a in self.ancestors(retriever)]
        for model in self.spans:
            if (
                not _is_model(model)
                or model.start_time_ns < retriever.end_time_ns
                or self._inside_retriever(model)
            ):
                continue
            model_ancestors = {a.span_id for a in self.ancestors(model)}
            common_id = next((sid for sid in retriever_chain if sid in model_ancestors), None)
            if common_id is None:
                continue
            chain = self._by_id[common_id]
            documents = _documents(retriever)
            return RagTurn(
                trace_id=self.trace_id,
                span_id=chain.span_id,
                question=_question(chain) or _retriever_query(retriever),
                documents=documents,
                context=_join_documents(documents),
                answer=_answer(chain) or _first(_llm_call(model).generations, ""),
            )
        return None

    def _multi_query(self, span: SpanRecord) -> MultiQuery:
        variants: tuple[str, ...] = ()
        for descendant in self.descendants(span):
            output = _json_attr(descendant, semconv.LANGCHAIN_OUTPUT)
            if _run_type(descendant) in (semconv.RUN_TYPE_PARSER, semconv.RUN_TYPE_CHAIN) and (
                isinstance(output, list) and output and all(isinstance(v, str) for v in output)
            ):
                variants = tuple(v.strip() for v in output if v.strip())
                break
            if _is_model(descendant) and not variants:
                text = _first(_llm_call(descendant).generations, "")
                variants = tuple(line.strip() for line in text.splitlines() if line.strip())
        return MultiQuery(
            trace_id=self.trace_id,
            span_id=span.span_id,
            question=_retriever_query(span),
            variants=variants,
        )

    def _compression(self, span: SpanRecord) -> Compression:
        base = next(
            (d for d in self.descendants(span) if _run_type(d) == semconv.RUN_TYPE_RETRIEVER), None
        )
        original = _documents(base) if base is not None else ()
        compressed = _documents(span)
        return Compression(
            trace_id=self.trace_id,
            span_id=span.span_id,
            question=_retriever_query(span),
            original_context=_join_documents(original),
            compressed_context=_join_documents(compressed),
            original_documents=original,
            compressed_documents=compressed,
        )


# --- attribute decoding (pure, private) ---------------------------------------------------------

_SCALARS = (str, bool, int, float)


_SCALAR_TYPES = frozenset(_SCALARS)


def _attributes(raw: Mapping[str, Any] | None) -> dict[str, AttributeValue]:
    """Copy attributes into plain values: sequences become tuples, anything exotic a string."""
    result: dict[str, AttributeValue] = {}
    if not raw:
        return result
    for key, value in dict(raw).items():  # one snapshot: the SDK's mapping locks per access
        if type(value) in _SCALAR_TYPES:  # the common case, checked without isinstance walks
            result[key if type(key) is str else str(key)] = value
        elif isinstance(value, _SCALARS):
            result[str(key)] = value
        elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
            result[str(key)] = tuple(v if isinstance(v, _SCALARS) else str(v) for v in value)  # type: ignore[assignment]
        elif value is not None:
            result[str(key)] = str(value)
    return result


# Every span of a process shares one Resource: copy its attributes once, not per span.
_resource_cache: dict[int, tuple[Resource, dict[str, AttributeValue]]] = {}
_RESOURCE_CACHE_SIZE = 16


def _resource_attributes(resource: Resource | None) -> dict[str, AttributeValue]:
    if resource is None:
        return {}
    cached = _resource_cache.get(id(resource))
    if cached is not None and cached[0] is resource:
        return cached[1]
    attributes = _attributes(resource.attributes)
    if len(_resource_cache) >= _RESOURCE_CACHE_SIZE:
        _resource_cache.clear()
    _resource_cache[id(resource)] = (resource, attributes)
    return attributes


def _plain(attributes: Mapping[str, AttributeValue]) -> Mapping[str, AttributeValue]:
    """A mapping json.dumps accepts; our records already hold dicts, so usually no copy."""
    return attributes if type(attributes) is dict else dict(attributes)


def _guarded(what: str, span: SpanRecord, build: Callable[..., _T | None], *args: Any) -> _T | None:
    try:
        return build(*args)
    except Exception:  # a malformed attribute must cost one item, never the whole helper
        _logger.debug(
            "skipping %s of span %016x: malformed attributes", what, span.span_id, exc_info=True
        )
        return None


def _run_type(span: SpanRecord) -> str | None:
    value = span.attributes.get(semconv.RUN_TYPE)
    return value if isinstance(value, str) else None


def _run_name(span: SpanRecord) -> str:
    value = span.attributes.get(semconv.RUN_NAME)
    return value if isinstance(value, str) else span.name


def _is_model(span: SpanRecord) -> bool:
    run_type = _run_type(span)
    if run_type is not None:
        return run_type in semconv.MODEL_RUN_TYPES
    return span.attributes.get(semconv.GEN_AI_OPERATION_NAME) in (
        semconv.OP_CHAT,
        semconv.OP_TEXT_COMPLETION,
    )


def _json_attr(span: SpanRecord, key: str) -> Any:
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


def _first(values: Sequence[_T], default: _T) -> _T:
    return values[0] if values else default


def _messages(value: Any) -> tuple[Message, ...]:
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
            Message(
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
    prompts = _json_attr(span, semconv.LLM_PROMPTS)
    return [as_text(p) for p in prompts] if isinstance(prompts, list) else None


def _input_messages(span: SpanRecord, prompt_list: list[str] | None) -> tuple[Message, ...]:
    """Chat input; a text-completion run's prompts as one user message each."""
    messages = _messages(_json_attr(span, semconv.GEN_AI_INPUT_MESSAGES))
    if not messages and prompt_list:
        messages = tuple(Message(role="user", content=p) for p in prompt_list)
    return messages


def _model(span: SpanRecord) -> str | None:
    return _str_attr(span, semconv.GEN_AI_RESPONSE_MODEL) or _str_attr(
        span, semconv.GEN_AI_REQUEST_MODEL
    )


def _llm_call(span: SpanRecord) -> LLMCall:
    run_type = _run_type(span)
    if run_type is None:
        is_llm = span.attributes.get(semconv.GEN_AI_OPERATION_NAME) == semconv.OP_TEXT_COMPLETION
        run_type = semconv.RUN_TYPE_LLM if is_llm else semconv.RUN_TYPE_CHAT_MODEL
    prompt_list = _prompt_list(span)
    messages = _input_messages(span, prompt_list)
    raw_output = _json_attr(span, semconv.GEN_AI_OUTPUT_MESSAGES)
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
        name=_run_name(span),
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


def _documents(span: SpanRecord) -> tuple[Document, ...]:
    raw = _json_attr(span, semconv.GEN_AI_RETRIEVAL_DOCUMENTS)
    if raw is None:
        raw = _json_attr(span, semconv.RETRIEVAL_DOCUMENTS)  # written before the GenAI name
    if not isinstance(raw, list):
        return ()
    documents = []
    for item in raw:
        if isinstance(item, Mapping):
            metadata = item.get("metadata")
            content = item.get("content")
            documents.append(
                Document(
                    page_content=as_text(item.get("page_content") if content is None else content),
                    metadata=dict(metadata) if isinstance(metadata, Mapping) else {},
                )
            )
        elif isinstance(item, str):
            documents.append(Document(page_content=item))
    return tuple(documents)


def _join_documents(documents: Sequence[Document]) -> str:
    return "\n\n".join(d.page_content for d in documents)


_QUESTION_KEYS = ("question", "query", "input")
_ANSWER_KEYS = ("answer", "result", "output", "text")


def _pick(value: Any, keys: Sequence[str]) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        for key in keys:
            if isinstance(value.get(key), str):
                return str(value[key])
    return ""


def _question(chain: SpanRecord) -> str:
    return _pick(_json_attr(chain, semconv.LANGCHAIN_INPUT), _QUESTION_KEYS)


def _answer(chain: SpanRecord) -> str:
    return _pick(_json_attr(chain, semconv.LANGCHAIN_OUTPUT), _ANSWER_KEYS)


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
    return _json_attr(span, semconv.LANGCHAIN_INPUT)  # written before the GenAI name


def _tool_result(span: SpanRecord) -> Any:
    if semconv.GEN_AI_TOOL_CALL_RESULT in span.attributes:
        return _text_attr(span, semconv.GEN_AI_TOOL_CALL_RESULT)
    return _json_attr(span, semconv.LANGCHAIN_OUTPUT)


def _retriever_query(span: SpanRecord) -> str:
    query = span.attributes.get(semconv.GEN_AI_RETRIEVAL_QUERY_TEXT)
    if isinstance(query, str):
        return query
    return as_text(_json_attr(span, semconv.LANGCHAIN_INPUT))


def _run_inputs(span: SpanRecord) -> Any:
    run_type = _run_type(span)
    if run_type == semconv.RUN_TYPE_TOOL:
        return _tool_arguments(span)
    if run_type == semconv.RUN_TYPE_RETRIEVER and (
        semconv.GEN_AI_RETRIEVAL_QUERY_TEXT in span.attributes
    ):
        return span.attributes[semconv.GEN_AI_RETRIEVAL_QUERY_TEXT]
    return _json_attr(span, semconv.LANGCHAIN_INPUT)


def _run_outputs(span: SpanRecord) -> Any:
    if _run_type(span) == semconv.RUN_TYPE_TOOL:
        return _tool_result(span)
    return _json_attr(span, semconv.LANGCHAIN_OUTPUT)


def _tool_call(span: SpanRecord) -> ToolCall:
    return ToolCall(
        trace_id=span.trace_id,
        span_id=span.span_id,
        name=_str_attr(span, semconv.GEN_AI_TOOL_NAME) or _run_name(span),
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


def _agent_action(span: SpanRecord, event: EventRecord) -> AgentStep:
    return AgentStep(
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
        run_type=_run_type(span),
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


def _model_inputs(span: SpanRecord) -> tuple[Message, ...]:
    return _input_messages(span, _prompt_list(span))


def _generations(span: SpanRecord) -> tuple[str, ...]:
    return tuple(m.content for m in _messages(_json_attr(span, semconv.GEN_AI_OUTPUT_MESSAGES)))


def _error_type(span: SpanRecord) -> str:
    return _span_error(span).error_type


def _run(span: SpanRecord) -> Run:
    is_model = _is_model(span)
    failed = _failed(span)
    return Run(
        span=span,
        run_id=_str_attr(span, semconv.RUN_ID),
        parent_run_id=_str_attr(span, semconv.RUN_PARENT_ID),
        run_type=_run_type(span),
        name=_run_name(span),
        tags=_guarded("run tags", span, _span_tags, span) or (),
        metadata=_guarded("run metadata", span, _span_metadata, span) or {},
        inputs=_guarded("run inputs", span, _model_inputs, span)
        if is_model
        else _guarded("run inputs", span, _run_inputs, span),
        outputs=_guarded("run outputs", span, _generations, span)
        if is_model
        else _guarded("run outputs", span, _run_outputs, span),
        documents=_guarded("retrieved documents", span, _documents, span) or (),
        model=_model(span),
        status="error" if failed else "ok",
        error_type=_guarded("error type", span, _error_type, span) if failed else None,
        start_time_ns=span.start_time_ns,
        end_time_ns=span.end_time_ns,
        latency_s=span.duration_s,
        events=tuple(
            run_event
            for event in span.events
            if event.name in _RUN_EVENT_NAMES
            if (run_event := _guarded("run event", span, _run_event, event)) is not None
        ),
    )
