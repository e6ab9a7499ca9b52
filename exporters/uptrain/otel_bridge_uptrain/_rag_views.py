"""The RAG views UpTrain evaluates: retrieval-then-answer turns, multi-query retrievals and
contextual compressions, read from a finished trace's spans (pure, no network)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from otel_bridge import semconv
from otel_bridge.langchain_views import (
    FinishedTrace,
    LLMCall,
    RetrievedDocument,
    as_text,
    guarded,
    json_attribute,
    retrieved_documents,
    span_run_name,
    span_run_type,
)
from otel_bridge.trace_tree import SpanRecord

__all__ = [
    "Compression",
    "MultiQuery",
    "RagTurn",
    "compressions",
    "multi_queries",
    "rag_turns",
]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class RagTurn:
    """A retrieval followed by a model answer under the same chain."""

    trace_id: int
    span_id: int  # the chain span that holds both
    question: str
    documents: tuple[RetrievedDocument, ...]
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
    original_documents: tuple[RetrievedDocument, ...]
    compressed_documents: tuple[RetrievedDocument, ...]


def rag_turns(trace: FinishedTrace) -> tuple[RagTurn, ...]:
    """Each outermost retrieval paired with the first model call after it under a common chain."""
    models = _model_calls(trace)
    turns = []
    for retriever in _outer_retrievers(trace):
        turn = guarded("RAG turn", retriever, _rag_turn, trace, models, retriever)
        if turn is not None:
            turns.append(turn)
    return tuple(turns)


def multi_queries(trace: FinishedTrace) -> tuple[MultiQuery, ...]:
    """Each MultiQueryRetriever run: the question and the query variants the model generated."""
    models = _model_calls(trace)
    return tuple(
        item
        for span in trace.spans
        if span_run_type(span) == semconv.RUN_TYPE_RETRIEVER
        and "MultiQuery" in span_run_name(span)
        and (item := guarded("multi-query", span, _multi_query, trace, models, span)) is not None
    )


def compressions(trace: FinishedTrace) -> tuple[Compression, ...]:
    """Each ContextualCompressionRetriever run: the base retriever's vs the compressed documents."""
    return tuple(
        item
        for span in trace.spans
        if span_run_type(span) == semconv.RUN_TYPE_RETRIEVER
        and "ContextualCompression" in span_run_name(span)
        and (item := guarded("compression", span, _compression, trace, span)) is not None
    )


def _model_calls(trace: FinishedTrace) -> dict[int, LLMCall]:
    return {call.span_id: call for call in trace.llm_calls()}


def _outer_retrievers(trace: FinishedTrace) -> Iterator[SpanRecord]:
    for span in trace.spans:
        if span_run_type(span) == semconv.RUN_TYPE_RETRIEVER and not _inside_retriever(trace, span):
            yield span


def _inside_retriever(trace: FinishedTrace, span: SpanRecord) -> bool:
    return any(span_run_type(a) == semconv.RUN_TYPE_RETRIEVER for a in trace.ancestors(span))


def _rag_turn(
    trace: FinishedTrace, models: Mapping[int, LLMCall], retriever: SpanRecord
) -> RagTurn | None:
    retriever_chain = [a.span_id for a in trace.ancestors(retriever)]
    for model in trace.spans:
        call = models.get(model.span_id)
        if (
            call is None
            or model.start_time_ns < retriever.end_time_ns
            or _inside_retriever(trace, model)
        ):
            continue
        model_ancestors = {a.span_id for a in trace.ancestors(model)}
        common_id = next((sid for sid in retriever_chain if sid in model_ancestors), None)
        if common_id is None:
            continue
        chain = trace.span(common_id)
        if chain is None:
            continue
        documents = retrieved_documents(retriever)
        return RagTurn(
            trace_id=trace.trace_id,
            span_id=chain.span_id,
            question=_question(chain) or _retriever_query(retriever),
            documents=documents,
            context=_join_documents(documents),
            answer=_answer(chain) or _first(call.generations, ""),
        )
    return None


def _multi_query(
    trace: FinishedTrace, models: Mapping[int, LLMCall], span: SpanRecord
) -> MultiQuery:
    variants: tuple[str, ...] = ()
    for descendant in trace.descendants(span):
        output = json_attribute(descendant, semconv.LANGCHAIN_OUTPUT)
        if span_run_type(descendant) in (semconv.RUN_TYPE_PARSER, semconv.RUN_TYPE_CHAIN) and (
            isinstance(output, list) and output and all(isinstance(v, str) for v in output)
        ):
            variants = tuple(v.strip() for v in output if v.strip())
            break
        call = models.get(descendant.span_id)
        if call is not None and not variants:
            text = _first(call.generations, "")
            variants = tuple(line.strip() for line in text.splitlines() if line.strip())
    return MultiQuery(
        trace_id=trace.trace_id,
        span_id=span.span_id,
        question=_retriever_query(span),
        variants=variants,
    )


def _compression(trace: FinishedTrace, span: SpanRecord) -> Compression:
    base = next(
        (d for d in trace.descendants(span) if span_run_type(d) == semconv.RUN_TYPE_RETRIEVER), None
    )
    original = retrieved_documents(base) if base is not None else ()
    compressed = retrieved_documents(span)
    return Compression(
        trace_id=trace.trace_id,
        span_id=span.span_id,
        question=_retriever_query(span),
        original_context=_join_documents(original),
        compressed_context=_join_documents(compressed),
        original_documents=original,
        compressed_documents=compressed,
    )


# --- attribute reading (pure, private) ------------------------------------------------------

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
    return _pick(json_attribute(chain, semconv.LANGCHAIN_INPUT), _QUESTION_KEYS)


def _answer(chain: SpanRecord) -> str:
    return _pick(json_attribute(chain, semconv.LANGCHAIN_OUTPUT), _ANSWER_KEYS)


def _retriever_query(span: SpanRecord) -> str:
    query = span.attributes.get(semconv.GEN_AI_RETRIEVAL_QUERY_TEXT)
    if isinstance(query, str):
        return query
    return as_text(json_attribute(span, semconv.LANGCHAIN_INPUT))


def _join_documents(documents: Sequence[RetrievedDocument]) -> str:
    return "\n\n".join(d.page_content for d in documents)


def _first(values: Sequence[_T], default: _T) -> _T:
    return values[0] if values else default
