"""The RAG views UpTrain evaluates (RAG turns, multi-query retrievals, compressions) over real
handler output for real LangChain chains (tests/chains.py); only the LLM API is stood in for."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from otel_bridge_uptrain import compressions, multi_queries, rag_turns

from otel_bridge import semconv
from otel_bridge.langchain_views import FinishedTrace
from tests import chains
from tests.support.arbitrary_traces import arbitrary_traces


@pytest.fixture(scope="module")
def rag() -> FinishedTrace:
    return chains.tagged_rag_trace()


def test_a_plain_chat_call_has_no_rag_turn() -> None:
    trace = chains.trace_of(chains.chat_model(), chains.chat_messages())
    assert rag_turns(trace) == ()


def test_rag_turn(rag: FinishedTrace) -> None:
    (turn,) = rag_turns(rag)
    assert turn.question == chains.QUESTION
    assert turn.answer == chains.RAG_ANSWER
    assert len(turn.documents) == 2
    assert turn.documents[0].metadata["source"].endswith(".txt")
    assert turn.context == "\n\n".join(d.page_content for d in turn.documents)
    assert turn.span_id == rag.root.span_id  # the chain holding retrieval and answer


def test_multi_query_variants() -> None:
    trace = chains.trace_of(chains.multi_query_retriever(), chains.QUESTION)
    (multi,) = multi_queries(trace)
    assert multi.question == chains.QUESTION
    assert multi.variants == chains.MULTI_QUERY_VARIANTS
    assert trace.span(multi.span_id).attributes[semconv.RUN_NAME] == "MultiQueryRetriever"  # type: ignore[union-attr]


def test_rag_turn_over_a_multi_query_retriever_ignores_the_query_writer() -> None:
    trace = chains.trace_of(chains.multi_query_rag_chain(), chains.QUESTION)
    (turn,) = rag_turns(trace)
    assert turn.answer == chains.RAG_ANSWER
    assert turn.question == chains.QUESTION
    assert turn.documents
    assert len(multi_queries(trace)) == 1
    assert len(trace.llm_calls()) == 2


def test_compression_original_and_compressed_context() -> None:
    trace = chains.trace_of(chains.compression_retriever(), chains.QUESTION)
    (compression,) = compressions(trace)
    assert compression.question == chains.QUESTION
    assert len(compression.original_documents) == 2
    assert len(compression.compressed_documents) == 2
    for original, compressed in zip(
        compression.original_documents, compression.compressed_documents, strict=True
    ):
        assert original.page_content.startswith(compressed.page_content.rstrip("."))
        assert len(compressed.page_content) < len(original.page_content)
    assert compression.original_context == "\n\n".join(
        d.page_content for d in compression.original_documents
    )
    assert compression.compressed_context != compression.original_context


def test_spans_in_any_order_give_the_same_rag_turns(rag: FinishedTrace) -> None:
    shuffled = FinishedTrace.from_records(reversed(rag.spans))
    assert rag_turns(shuffled) == rag_turns(rag)


def test_rag_turns_are_the_same_for_spans_decoded_from_otlp(rag: FinishedTrace) -> None:
    from otel_bridge import otlp
    from tests.support.spool_batches import request_of

    wire = request_of(rag.spans).SerializeToString()
    decoded = FinishedTrace.from_spans(otlp.spans_from_request(otlp.decode_protobuf(wire)))
    assert rag_turns(decoded) == rag_turns(rag)


@settings(max_examples=150, deadline=None)
@given(arbitrary_traces())
def test_rag_views_never_raise_on_arbitrary_attributes(trace: FinishedTrace) -> None:
    for view in (rag_turns, multi_queries, compressions):
        view(trace)
