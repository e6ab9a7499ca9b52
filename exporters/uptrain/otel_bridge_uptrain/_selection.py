"""Which UpTrain checks a finished trace gets, and the rows they are run on (pure, no network).

Each trace is judged on its own shape: RAG turns, multi-query retrievals, contextual
compressions, and plain LLM/chat calls that belong to none of those.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from otel_bridge.langchain_views import FinishedTrace, LLMCall
from otel_bridge_uptrain._rag_views import compressions, multi_queries, rag_turns

# A check is anything uptrain's `evaluate` accepts: an `uptrain.Evals` member or its string
# value, a `ParametricEval` such as `CritiqueTone(...)`, or a non-LLM operator (`ColumnOp`).
Check = Any


class Shape(enum.Enum):
    """What was evaluated; the value is the uptrain evaluation name the seed handler used."""

    RAG = "rag"
    MULTI_QUERY = "multi_query"
    COMPRESSION = "context_reranking"
    LLM = "llm"


@dataclass(frozen=True, slots=True)
class CheckPlan:
    """The checks run for each shape; an empty tuple switches a shape off."""

    rag: tuple[Check, ...] = ("context_relevance", "factual_accuracy", "response_completeness")
    multi_query: tuple[Check, ...] = ("multi_query_accuracy",)
    compression: tuple[Check, ...] = ("context_conciseness", "context_reranking")
    llm: tuple[Check, ...] = ("response_relevance", "response_completeness")

    def for_shape(self, shape: Shape) -> tuple[Check, ...]:
        return {
            Shape.RAG: self.rag,
            Shape.MULTI_QUERY: self.multi_query,
            Shape.COMPRESSION: self.compression,
            Shape.LLM: self.llm,
        }[shape]


@dataclass(frozen=True, slots=True)
class EvaluationRequest:
    """One row to evaluate: the span it judges, the uptrain row and the checks to run on it."""

    trace_id: int
    span_id: int
    shape: Shape
    row: Mapping[str, Any]
    checks: tuple[Check, ...]


def check_name(check: Check) -> str:
    """The name a check's score is reported under (uptrain's `score_<name>` column)."""
    if isinstance(check, str):
        return check
    value = getattr(check, "value", None)
    if isinstance(value, str):
        return value
    column = getattr(check, "col_out", None)
    if isinstance(column, str):
        return column.removeprefix("score_")
    return type(check).__name__


def is_sampled(trace_id: int, rate: float) -> bool:
    """Deterministic by trace id like the SDK's TraceIdRatioBased, so every process agrees."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    return (trace_id & 0xFFFF_FFFF_FFFF_FFFF) < int(rate * 2**64)


def select(trace: FinishedTrace, plan: CheckPlan) -> tuple[EvaluationRequest, ...]:
    """Every evaluation this trace calls for under `plan`, in trace order."""
    requests: list[EvaluationRequest] = []
    owners: set[int] = set()

    def add(span_id: int, shape: Shape, row: Mapping[str, Any]) -> None:
        owners.add(span_id)
        if not any(row.values()):
            return  # no content captured: nothing a judge could grade
        checks = plan.for_shape(shape)
        if checks:
            requests.append(EvaluationRequest(trace.trace_id, span_id, shape, row, checks))

    for turn in rag_turns(trace):
        add(
            turn.span_id,
            Shape.RAG,
            {"question": turn.question, "context": turn.context, "response": turn.answer},
        )
    for multi_query in multi_queries(trace):
        add(
            multi_query.span_id,
            Shape.MULTI_QUERY,
            {"question": multi_query.question, "variants": list(multi_query.variants)},
        )
    for compression in compressions(trace):
        add(
            compression.span_id,
            Shape.COMPRESSION,
            {
                "question": compression.question,
                "context": compression.original_context,
                "concise_context": compression.compressed_context,
                "reranked_context": compression.compressed_context,
            },
        )
    if plan.llm:
        for call in trace.llm_calls():
            row = _llm_row(call)
            # An LLM call inside a RAG turn, a multi-query retrieval or a compression (which
            # may use a model to extract) is judged as part of it, not on its own.
            if row is not None and not _inside(trace, call.span_id, owners):
                requests.append(
                    EvaluationRequest(trace.trace_id, call.span_id, Shape.LLM, row, plan.llm)
                )
    return tuple(requests)


def _llm_row(call: LLMCall) -> dict[str, str] | None:
    if call.error is not None or not call.generations:
        return None
    # A step that asks for tools is an agent's intermediate move, not an answer to grade.
    if any(message.tool_calls for message in call.output_messages):
        return None
    user_turns = [message.content for message in call.messages if message.role == "user"]
    question = user_turns[-1] if user_turns else call.prompt
    if not question:
        return None
    return {"question": question, "response": call.generations[0]}


def _inside(trace: FinishedTrace, span_id: int, owners: set[int]) -> bool:
    span = trace.span(span_id)
    return span is not None and any(a.span_id in owners for a in trace.ancestors(span))
