"""Which checks each trace shape gets and which rows they run on: pure, over traces of real
LangChain chains (tests.chains; their models are the in-process fake chat model)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.runnables import Runnable
from otel_bridge_uptrain import CheckPlan, Shape, compressions, multi_queries, rag_turns, select
from otel_bridge_uptrain._selection import check_name, is_sampled

from tests.chains import (
    AGENT_ANSWER,
    AGENT_QUESTION,
    CHAT_ANSWER,
    MULTI_QUERY_VARIANTS,
    QUESTION,
    RAG_ANSWER,
    agent,
    chat_messages,
    chat_model,
    completion_chain,
    compression_retriever,
    multi_query_rag_chain,
    rag_chain,
    trace_of,
)


def test_a_rag_turn_gets_the_rag_checks_on_question_context_and_response() -> None:
    trace = trace_of(rag_chain(), QUESTION)
    (turn,) = rag_turns(trace)

    (request,) = select(trace, CheckPlan())

    assert request.shape is Shape.RAG
    assert request.checks == ("context_relevance", "factual_accuracy", "response_completeness")
    assert request.row == {"question": QUESTION, "context": turn.context, "response": RAG_ANSWER}
    assert (request.trace_id, request.span_id) == (trace.trace_id, turn.span_id)


def test_multi_query_retrieval_adds_multi_query_accuracy_on_the_variants() -> None:
    trace = trace_of(multi_query_rag_chain(), QUESTION)
    (multi_query,) = multi_queries(trace)

    requests = {request.shape: request for request in select(trace, CheckPlan())}

    # The variant-writing model call belongs to the retrieval: it is not judged on its own.
    assert set(requests) == {Shape.RAG, Shape.MULTI_QUERY}
    request = requests[Shape.MULTI_QUERY]
    assert request.checks == ("multi_query_accuracy",)
    assert request.row == {"question": QUESTION, "variants": list(MULTI_QUERY_VARIANTS)}
    assert request.span_id == multi_query.span_id


def test_contextual_compression_gets_conciseness_and_reranking() -> None:
    trace = trace_of(compression_retriever(), QUESTION)
    (compression,) = compressions(trace)

    (request,) = select(trace, CheckPlan())

    assert request.shape is Shape.COMPRESSION
    assert request.checks == ("context_conciseness", "context_reranking")
    assert request.row == {
        "question": QUESTION,
        "context": compression.original_context,
        "concise_context": compression.compressed_context,
        "reranked_context": compression.compressed_context,
    }
    assert compression.compressed_context != compression.original_context


@pytest.mark.parametrize(
    ("runnable", "value", "question", "answer"),
    [
        (chat_model(), chat_messages(), "Say hello in French.", CHAT_ANSWER),
        (completion_chain(), {"topic": "otel"}, "Tell a story about otel.", None),
    ],
    ids=["chat", "completion"],
)
def test_a_plain_model_call_gets_the_default_set(
    runnable: object, value: object, question: str, answer: str | None
) -> None:
    trace = trace_of(runnable, value)  # type: ignore[arg-type]
    (call,) = trace.llm_calls()

    (request,) = select(trace, CheckPlan())

    assert request.shape is Shape.LLM
    assert request.checks == ("response_relevance", "response_completeness")
    assert request.row == {"question": question, "response": answer or call.generations[0]}
    assert request.span_id == call.span_id


def test_an_agent_is_judged_on_its_answer_not_on_its_tool_requests() -> None:
    trace = trace_of(agent(), {"messages": [("user", AGENT_QUESTION)]})

    requests = select(trace, CheckPlan())

    assert [request.row for request in requests] == [
        {"question": AGENT_QUESTION, "response": AGENT_ANSWER}
    ]


def test_checks_can_be_overridden_per_shape_and_a_shape_switched_off() -> None:
    trace = trace_of(multi_query_rag_chain(), QUESTION)
    plan = dataclasses.replace(CheckPlan(), rag=("response_conciseness",), multi_query=())

    (request,) = select(trace, plan)

    assert request.shape is Shape.RAG
    assert request.checks == ("response_conciseness",)


def test_each_trace_is_selected_on_its_own() -> None:
    first = trace_of(rag_chain(), QUESTION)
    second = trace_of(rag_chain(chat_model("Into the Black Sea.")), "Where does the Danube end?")

    (a,) = select(first, CheckPlan())
    (b,) = select(second, CheckPlan())

    assert a.row["question"] == QUESTION and a.row["response"] == RAG_ANSWER
    assert b.row["question"] == "Where does the Danube end?"
    assert b.row["response"] == "Into the Black Sea."
    assert a.trace_id != b.trace_id


def test_check_names_follow_uptrains_score_columns() -> None:
    from uptrain import Evals
    from uptrain.operators import RougeScore

    assert check_name("context_relevance") == "context_relevance"
    assert check_name(Evals.FACTUAL_ACCURACY) == "factual_accuracy"
    assert check_name(
        RougeScore(col_in_generated="response", col_in_source="context", score_type="f1")
    ) == ("rouge_score")


def test_sampling_is_deterministic_by_trace_id() -> None:
    low, high = 1, 0xFFFF_FFFF_FFFF_FFFE
    assert is_sampled(low, 0.5) and not is_sampled(high, 0.5)
    assert all(is_sampled(trace_id, 1.0) for trace_id in (low, high))
    assert not any(is_sampled(trace_id, 0.0) for trace_id in (low, high))
    assert is_sampled(high, 0.5) == is_sampled(high, 0.5)


@pytest.mark.parametrize(
    ("chain", "question"), [(rag_chain, QUESTION), (chat_model, None)], ids=["rag", "chat"]
)
def test_a_trace_made_without_content_is_not_sent_to_the_judge(
    chain: Callable[[], Runnable], question: str | None
) -> None:
    given: Any = question if question is not None else chat_messages()
    with_content = trace_of(chain(), given)
    without = trace_of(chain(), given, capture_content=False)
    assert select(with_content, CheckPlan())
    assert select(without, CheckPlan()) == ()
