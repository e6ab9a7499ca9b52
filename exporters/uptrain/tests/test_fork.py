"""`UpTrainSpanExporter` after os.fork(): `_after_fork_in_child` drops the judge's HTTP clients
(uptrain's `EvalLLM` executor, the hosted `APIClient`: httpx pools whose keep-alive sockets the
parent shares), so the next delivery builds new ones; uptrain's process-wide lock is replaced in
a forked child. The judge is `FakeJudge`, as in the other UpTrain tests."""

from __future__ import annotations

import os

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_bridge_uptrain import UpTrainSpanExporter, _judge

from otel_bridge import semconv
from otel_bridge.delivery import RetryPolicy
from tests.chains import QUESTION, rag_chain
from tests.contract import ForkContract
from tests.support.fake_openai import FakeJudge
from tests.support.forking import held_by_another_thread, run_in_child

from .conftest import MakeExporter, hosted_judge_down, run_through, wait_for

_DEADLINE = 30.0
_RAG_CHECKS = 3


def _evaluations(results: InMemorySpanExporter) -> int:
    return sum(
        semconv.GEN_AI_EVALUATION_NAME in (span.attributes or {})
        for span in results.get_finished_spans()
    )


class TestUpTrainFork(ForkContract):
    """The local judge (uptrain's `EvalLLM` and its executor's client) is built anew; the console
    stream's lock is replaced, since a lock the parent's delivery thread held at the fork would
    block the child's console lines for good."""

    @pytest.fixture
    def fork_exporter(
        self, make_exporter: MakeExporter, judge: FakeJudge, results: InMemorySpanExporter
    ) -> UpTrainSpanExporter:
        self.results = results
        return make_exporter()

    def deliver_one(self, exporter: UpTrainSpanExporter) -> None:
        run_through(exporter, rag_chain(), QUESTION)
        assert exporter.force_flush(60_000)

    def delivered(self, exporter: UpTrainSpanExporter) -> int:
        evaluations = _evaluations(self.results)
        assert evaluations % _RAG_CHECKS == 0
        return evaluations // _RAG_CHECKS

    def renewed(self, exporter: UpTrainSpanExporter) -> tuple[object, ...]:
        local = exporter._judge
        assert isinstance(local, _judge.LocalJudge)
        eval_llm = local._eval_llm
        assert eval_llm is not None
        return eval_llm, eval_llm.executor.client

    def locks(self, exporter: UpTrainSpanExporter) -> tuple[object, ...]:
        return (exporter._publisher._stream_lock,)


def test_hosted_judge_calls_the_server_through_a_new_client_after_the_hook(
    make_exporter: MakeExporter, judge: FakeJudge
) -> None:
    # Answering 503, the server is reached by every attempt.
    exporter = hosted_judge_down(
        make_exporter, judge, retry=RetryPolicy(initial_backoff=0.05, max_backoff=0.1, jitter=0.0)
    )
    assert wait_for(lambda: judge.requests)
    hosted = exporter._judge
    assert isinstance(hosted, _judge.HostedJudge)
    client = hosted._api_client
    assert client is not None

    exporter._after_fork_in_child()

    # The attempt under way when the hook ran may finish on the old client (in a real child
    # no attempt is under way); the next one builds a client of its own and reaches the server.
    assert wait_for(lambda: hosted._api_client not in (None, client))
    new = hosted._api_client
    assert new.client is not client.client
    seen = len(judge.requests)
    assert wait_for(lambda: len(judge.requests) > seen)
    assert hosted._api_client is new
    assert exporter.spool.dead_letters() == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")
def test_uptrain_lock_held_by_a_thread_at_the_fork_is_free_in_the_child() -> None:
    with held_by_another_thread(_judge._UPTRAIN_LOCK, deadline_s=_DEADLINE):
        _, code = run_in_child(lambda: 0 if _judge._UPTRAIN_LOCK.acquire(timeout=5) else 3)

    assert code == 0
