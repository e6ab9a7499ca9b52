"""Finished traces with arbitrary attributes, for property tests of the views over them: the
attribute names the views read, with values of any JSON-ish shape or none they expect."""

from __future__ import annotations

import json

from hypothesis import strategies as st

from otel_bridge import semconv
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.trace_tree import SpanRecord


def record(
    attributes: dict[str, object], span_id: int = 1, parent: int | None = None
) -> SpanRecord:
    """A span of trace 7 with these attributes, under the span `parent` (None: the root)."""
    return SpanRecord(
        trace_id=7,
        span_id=span_id,
        parent_span_id=parent,
        name="x",
        kind="INTERNAL",
        start_time_ns=span_id,
        end_time_ns=span_id + 10,
        attributes=attributes,  # type: ignore[arg-type]
        status_code="UNSET",
    )


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
_VALUES = st.one_of(
    st.text(max_size=20),
    _JSONISH.map(json.dumps),
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.tuples(st.text(max_size=5)),
)
_KEYS = st.sampled_from(
    [
        semconv.RUN_TYPE,
        semconv.RUN_NAME,
        semconv.RUN_TAGS,
        semconv.LANGCHAIN_INPUT,
        semconv.LANGCHAIN_OUTPUT,
        semconv.RETRIEVAL_DOCUMENTS,
        semconv.LLM_PROMPTS,
        semconv.GEN_AI_INPUT_MESSAGES,
        semconv.GEN_AI_OUTPUT_MESSAGES,
        semconv.GEN_AI_RESPONSE_FINISH_REASONS,
        semconv.GEN_AI_OPERATION_NAME,
        semconv.ERROR_TYPE,
        semconv.RUN_METADATA_PREFIX + "k",
    ]
)
_RUN_TYPES = st.sampled_from(["chat_model", "llm", "retriever", "tool", "chain", "parser", 3])


@st.composite
def arbitrary_traces(draw: st.DrawFn) -> FinishedTrace:
    """One to five nested spans of any run type (a number too), named like the runs the views
    look for or not, each with up to six of the attributes they read, of any value."""
    spans = draw(
        st.lists(
            st.tuples(
                _RUN_TYPES,
                st.sampled_from(["MultiQueryRetriever", "ContextualCompression", "x"]),
                st.dictionaries(_KEYS, _VALUES, max_size=6),
            ),
            min_size=1,
            max_size=5,
        )
    )
    return FinishedTrace.from_records(
        record(
            {semconv.RUN_TYPE: run_type, semconv.RUN_NAME: name, **attributes},
            span_id=index + 1,
            parent=index or None,
        )
        for index, (run_type, name, attributes) in enumerate(spans)
    )
