"""The span/trace model: spans detached from the SDK and the tree of one trace id.

What a sink is handed (`SpanRecord`s grouped per trace), its JSON form, and navigation over the
tree (root, parent, children, ancestors). The LangChain views over it are in
`otel_bridge.langchain_views`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from otel_bridge import semconv

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["AttributeValue", "EventRecord", "LinkRecord", "OtlpSource", "SpanRecord", "TraceTree"]

# One encoder for every record: json.dumps with options would build a new one per call.
_compact_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

# A trace's OTLP `TracesData`: its bytes and the protobuf message parsed from them.
OtlpSource = tuple[bytes, Any]

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
class TraceTree:
    """All spans of one trace id, with navigation over their tree.

    `partial` is True when the trace was handed over because it reached the maximum age (or a
    buffer bound) before its local root ended. A trace read from the spool keeps the OTLP
    `TracesData` it was stored as (`otlp`) and decodes its spans only when they are first read:
    a sink that writes the protobuf as it is (the file sink) never pays for `SpanRecord`s.
    """

    trace_id: int
    spans: tuple[SpanRecord, ...]
    partial: bool = False
    _by_id: Mapping[int, SpanRecord] = field(init=False, repr=False, compare=False)
    _children: Mapping[int, tuple[SpanRecord, ...]] = field(init=False, repr=False, compare=False)
    _otlp: OtlpSource | None = field(default=None, init=False, repr=False, compare=False)
    _decode: Callable[[], Iterable[SpanRecord]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        self._index(tuple(self.spans))

    @classmethod
    def from_otlp(
        cls,
        trace_id: int,
        source: OtlpSource,
        decode: Callable[[], Iterable[SpanRecord]],
        partial: bool = False,
    ) -> Self:
        """A trace whose spans `decode` makes from `source` when they are first read (raising
        ValueError then if they hold another trace id)."""
        tree = cls.__new__(cls)
        # `spans` and its indexes stay unset until read: `__getattr__` decodes them then.
        object.__setattr__(tree, "trace_id", trace_id)
        object.__setattr__(tree, "partial", partial)
        object.__setattr__(tree, "_otlp", source)
        object.__setattr__(tree, "_decode", decode)
        return tree

    def __getattr__(self, name: str) -> Any:
        # Called only for a slot not set yet: the spans of a trace read from the spool.
        if name in ("spans", "_by_id", "_children") and self._decode is not None:
            self._decoded()
            return getattr(self, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def otlp(self) -> OtlpSource | None:
        """The `TracesData` this trace was read from (bytes and the message parsed from them),
        or None for a trace built from spans."""
        return self._otlp

    def _decoded(self) -> None:
        decode = self._decode
        assert decode is not None
        records = tuple(decode())
        if any(record.trace_id != self.trace_id for record in records):
            raise ValueError(
                f"trace {self.trace_id:032x} holds spans of another trace id: not one trace"
            )
        self._index(records)
        object.__setattr__(self, "_decode", None)

    def _index(self, spans: tuple[SpanRecord, ...]) -> None:
        # Spans sorted by start time make every helper's output chronological.
        ordered = tuple(sorted(spans, key=lambda s: (s.start_time_ns, s.end_time_ns)))
        children: dict[int, list[SpanRecord]] = {}
        for span in ordered:
            if span.parent_span_id is not None:
                children.setdefault(span.parent_span_id, []).append(span)
        object.__setattr__(self, "_by_id", {span.span_id: span for span in ordered})
        object.__setattr__(self, "_children", {k: tuple(v) for k, v in children.items()})
        object.__setattr__(self, "spans", ordered)

    # --- construction and JSON ----------------------------------------------------------------

    @classmethod
    def from_spans(cls, spans: Iterable[ReadableSpan], partial: bool = False) -> Self:
        """Build one trace from SDK spans that all share a trace id (ValueError otherwise)."""
        return cls.from_records([SpanRecord.from_readable(span) for span in spans], partial)

    @classmethod
    def from_records(cls, records: Iterable[SpanRecord], partial: bool = False) -> Self:
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
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            trace_id=int(data["trace_id"], 16),
            spans=tuple(SpanRecord.from_dict(span) for span in data["spans"]),
            partial=bool(data.get("partial", False)),
        )

    def to_json(self) -> str:
        """Stable JSON (ids in hex, attribute tuples as lists) used by the spool and the receiver."""
        return _compact_json(self.to_dict())

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
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
