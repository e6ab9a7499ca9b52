"""Exactly once under a partial failure, against a real ClearML offline session: one ClearML
call of a delivery (the n-th table, scalar or console line, or the final flush) raises once, the
batch is retried, and the session holds each table, scalar point and console record exactly
once, every scalar line at iterations 0..n-1 with no gap and no repeat.

The failure is raised by the task's own ClearML `Logger` (or `Task.flush`), wrapped to raise
once on its n-th call; everything else is ClearML's. The only stand-in is the LLM API:
`otel_bridge.testing.FakeChatModel`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from opentelemetry.sdk.trace import TracerProvider
from otel_bridge_clearml import ClearMLSpanExporter
from otel_bridge_clearml.encoder import (
    ACTION_RECORDS_TITLE,
    ERRORS_TITLE,
    INPUT_TOKENS_TITLE,
    LATENCY_TITLE,
    OUTPUT_TOKENS_TITLE,
    SESSION_ANALYSIS_TITLE,
)

from otel_bridge import SeedProofIdGenerator
from otel_bridge.delivery import RetryPolicy
from otel_bridge.handler import OTelCallbackHandler
from otel_bridge.testing import FakeChatModel

from .conftest import closed_session_of

TRACES = 4
MODEL = "fake-echo-model"
RUNS_PER_TRACE = 4  # prompt, chat model, parser, the sequence around them


class InjectedFailure(RuntimeError):
    pass


class FailOnce:
    """`method`, except that its `call`-th call raises instead of reaching ClearML."""

    def __init__(self, call: int, method: Callable[..., Any]) -> None:
        self.call = call
        self.method = method
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == self.call:
            raise InjectedFailure(f"call {self.call} of {self.method.__name__} fails")
        return self.method(*args, **kwargs)


@pytest.fixture
def provider() -> Iterator[TracerProvider]:
    provider = TracerProvider(id_generator=SeedProofIdGenerator())
    yield provider
    provider.shutdown()


def _answer(messages: list[BaseMessage]) -> str:
    return f"Answer to: {messages[-1].content}"


@pytest.mark.parametrize(
    ("target", "call"),
    [
        # The second trace's session table: its action-records table was already taken.
        ("report_table", 4),
        # A scalar in the middle of the third trace (four per trace: latency, tokens, errors).
        ("report_scalar", 10),
        # The second trace's third console record (eight per trace: a start and an end per run).
        ("report_text", 11),
        # The flush that ends the delivery: every call was made, ClearML did not confirm.
        ("flush", 1),
    ],
)
def test_a_failed_clearml_call_is_retried_alone(
    provider: TracerProvider, spool_dir: Path, tmp_path: Path, target: str, call: int
) -> None:
    exporter = ClearMLSpanExporter(
        stream_logs=True,
        spool_dir=spool_dir,
        grace_period=0.0,
        retry=RetryPolicy(initial_backoff=0.01, jitter=0.0),
    )
    task = exporter.task
    logger = task.get_logger()
    owner = task if target == "flush" else logger
    original = getattr(owner, target)
    injected = FailOnce(call, original)
    setattr(owner, target, injected)

    handler = OTelCallbackHandler(tracer_provider=provider, exporters=[exporter])
    prompt = ChatPromptTemplate.from_messages([("human", "{question}")])
    chain = prompt | FakeChatModel(respond=_answer, model_name=MODEL) | StrOutputParser()
    questions = [f"question {n}" for n in range(TRACES)]
    for question in questions:
        chain.invoke({"question": question}, {"callbacks": [handler]})
    assert provider.force_flush(20_000)
    assert exporter.force_flush(30_000)
    setattr(owner, target, original)
    assert injected.calls > call, f"{target} was called {injected.calls} times: nothing failed"

    folder = Path(task.get_offline_mode_folder())
    exporter.shutdown()
    # What a server would import: the session ClearML zipped when the exporter closed its task.
    session = closed_session_of(folder, tmp_path / "imported")
    # Each trace's two tables, once each.
    for title in (ACTION_RECORDS_TITLE, SESSION_ANALYSIS_TITLE):
        series = session.table_series(title)
        assert len(series) == TRACES, (title, Counter(series))
        assert len(set(series)) == TRACES
    # Each scalar line: one point per trace, at iterations 0..TRACES-1, none twice.
    scalars = session.scalars()
    for title in (LATENCY_TITLE, INPUT_TOKENS_TITLE, OUTPUT_TOKENS_TITLE, ERRORS_TITLE):
        iterations = [iteration for iteration, _ in scalars[title, MODEL]]
        assert sorted(iterations) == list(range(TRACES)), (title, iterations)
    assert set(scalars) == {
        (title, MODEL)
        for title in (LATENCY_TITLE, INPUT_TOKENS_TITLE, OUTPUT_TOKENS_TITLE, ERRORS_TITLE)
    }
    # Each run's console records (its start and its end) once.
    records = [
        (record["trace_id"], record["span_id"], record["action"])
        for record in session.console_records()
        if "span_id" in record
    ]
    assert len(records) == len(set(records)) == TRACES * RUNS_PER_TRACE * 2
    answers = {
        row["output"] for rows in session.tables(SESSION_ANALYSIS_TITLE).values() for row in rows
    }
    assert answers == {f"Answer to: {q}" for q in questions}
