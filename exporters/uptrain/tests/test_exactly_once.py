"""Each (trace, check) graded by the judge once and each evaluated row posted to UpTrain's dashboard
once: with a judge failing a seeded-random fraction of its grading requests, and across a process
killed part way through (some checks graded) or right after publishing (before its spool let go
of the traces). The judge is `FakeJudge` (the stand-in for the paid LLM API), uptrain is real, and
the dashboard is uptrain's own local dashboard server (`tests.support.uptrain_dashboard`)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_bridge_uptrain import UpTrainCallbackHandler

from otel_bridge import semconv
from otel_bridge.delivery import RetryPolicy
from tests.chains import RAG_ANSWER, rag_chain
from tests.support.fake_openai import FakeJudge
from tests.support.uptrain_dashboard import UpTrainDashboard

from .conftest import MakeExporter, run_through
from .crash_child import questions

RAG_CHECKS = ("context_relevance", "factual_accuracy", "response_completeness")
# The grading prompt that completes each RAG check (factual accuracy's second step).
FINAL_PROMPTS = ("context_relevance", "fact_evaluate", "response_completeness")
REPO_ROOT = Path(__file__).resolve().parents[3]
FAST_RETRY = RetryPolicy(initial_backoff=0.05, max_backoff=0.2, jitter=0.0)


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpTrainDashboard]:
    with UpTrainDashboard(tmp_path_factory.mktemp("uptrain-dashboard")) as server:
        yield server


@pytest.fixture
def project() -> str:
    """A project of this test's own on the shared dashboard."""
    return f"exactly-once-{uuid.uuid4().hex[:8]}"


def dashboard_rows(dashboard: UpTrainDashboard, project: str) -> list[dict[str, Any]]:
    return [row for name, row in dashboard.rows() if name == project]


def final_gradings(judge: FakeJudge) -> Counter[str]:
    graded = Counter(str(request.check) for request in judge.graded())
    return Counter({check: graded[check] for check in FINAL_PROMPTS})


def assert_each_question_once_complete(rows: list[dict[str, Any]], asked: list[str]) -> None:
    assert Counter(row["question"] for row in rows) == Counter(asked)
    for row in rows:
        assert row["response"] == RAG_ANSWER
        assert {check: row[f"score_{check}"] for check in RAG_CHECKS} == dict.fromkeys(
            RAG_CHECKS, 1.0
        )


def test_a_judge_failing_a_seeded_fraction_grades_and_posts_each_check_once(
    make_exporter: MakeExporter,
    judge: FakeJudge,
    results: InMemorySpanExporter,
    dashboard: UpTrainDashboard,
    project: str,
) -> None:
    """The issue's case: 30 RAG questions, the judge failing 30% of its grading requests. Before,
    a failure re-graded the whole batch (123 judge requests for 90 checks, 76 dashboard rows)."""
    asked = questions(30)
    exporter = make_exporter(
        project_name=project, dashboard_url=dashboard.url, grace_period=60.0, retry=FAST_RETRY
    )
    traces = [run_through(exporter, rag_chain(), question) for question in asked]
    judge.fail_fraction(0.3, seed=13)

    assert exporter.force_flush(300_000)

    refused = [request for request in judge.requests if request.status != 200]
    assert len(refused) >= 10, "the judge hardly failed: the test did not test anything"
    assert final_gradings(judge) == dict.fromkeys(FINAL_PROMPTS, len(asked))
    assert_each_question_once_complete(dashboard_rows(dashboard, project), asked)
    spans = [s for s in results.get_finished_spans() if s.links]
    assert Counter(
        (s.links[0].context.trace_id, dict(s.attributes or {})[semconv.GEN_AI_EVALUATION_NAME])
        for s in spans
    ) == Counter({(t.trace_id, check): 1 for t in traces for check in RAG_CHECKS})
    assert exporter.spool.counts().outbox == 0 and exporter.spool.dead_letters() == []


def _child(spool_dir: Path, judge: FakeJudge, dashboard: str, project: str, mode: str) -> str:
    """Run crash_child until it dies (SIGKILL, by itself or by us once it printed "attempted");
    returns what it printed."""
    env = {
        **os.environ,
        "OTEL_BRIDGE_UPTRAIN_API_BASE": judge.url,
        "OTEL_BRIDGE_UPTRAIN_API_KEY": judge.api_key,
        "OTEL_BRIDGE_UPTRAIN_DASHBOARD_URL": dashboard,
        "OTEL_BRIDGE_UPTRAIN_PROJECT_NAME": project,
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "exporters.uptrain.tests.crash_child", str(spool_dir), mode, "12"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        printed = ""
        for line in child.stdout:
            printed += line
            if line.strip() in ("attempted", "published"):
                break
        child.kill()
        child.wait(timeout=30)
        stderr = child.stderr.read() if child.stderr else ""
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -9, stderr[-3000:]
    return printed


def test_a_process_killed_with_checks_half_graded_resumes_without_asking_again(
    make_exporter: MakeExporter,
    judge: FakeJudge,
    dashboard: UpTrainDashboard,
    project: str,
    tmp_path: Path,
) -> None:
    spool_dir = tmp_path / "app-spool"
    judge.fail_fraction(0.3, seed=6)  # its first draws let the first requests through
    assert "attempted" in _child(spool_dir, judge, dashboard.url, project, "partly")
    before = final_gradings(judge)
    published_before = dashboard_rows(dashboard, project)
    assert 0 < sum(before.values()) < 3 * 12, "the child graded all or nothing: nothing to resume"
    assert len(published_before) < 12

    judge.recover()
    exporter = make_exporter(
        project_name=project, dashboard_url=dashboard.url, spool_dir=spool_dir, retry=FAST_RETRY
    )
    assert exporter.force_flush(300_000)

    # Across both processes, each check of each question was graded once: the second asked
    # only for what the first had not got.
    assert final_gradings(judge) == dict.fromkeys(FINAL_PROMPTS, 12)
    assert_each_question_once_complete(dashboard_rows(dashboard, project), questions(12))
    assert exporter.spool.counts().outbox == 0 and exporter.spool.dead_letters() == []


def test_a_process_killed_after_publishing_is_not_published_again(
    make_exporter: MakeExporter,
    judge: FakeJudge,
    results: InMemorySpanExporter,
    dashboard: UpTrainDashboard,
    project: str,
    tmp_path: Path,
) -> None:
    spool_dir = tmp_path / "app-spool"
    assert "published" in _child(spool_dir, judge, dashboard.url, project, "published")
    assert_each_question_once_complete(dashboard_rows(dashboard, project), questions(12))
    asked_before = len(judge.requests)

    exporter = make_exporter(
        project_name=project, dashboard_url=dashboard.url, spool_dir=spool_dir, retry=FAST_RETRY
    )
    assert exporter.force_flush(120_000)

    assert exporter.spool.counts().outbox == 0 and exporter.spool.dead_letters() == []
    assert len(judge.requests) == asked_before
    assert_each_question_once_complete(dashboard_rows(dashboard, project), questions(12))
    assert [s for s in results.get_finished_spans() if s.links] == []


def test_uptrain_evaluate_posts_one_evaluation_per_call_like_the_original(
    judge: FakeJudge, dashboard: UpTrainDashboard, project: str, tmp_path: Path
) -> None:
    handler = UpTrainCallbackHandler(
        project_name=project,
        api_key=judge.api_key,
        log_results=False,
        exporter_options={
            "api_base": judge.url,
            "dashboard_url": dashboard.url,
            "spool_dir": tmp_path / "spool",
        },
    )
    try:
        rows = [
            {"question": f"q{n}?", "context": "Some context.", "response": "An answer."}
            for n in range(2)
        ]
        handler.uptrain_evaluate("rag", rows, ["context_relevance"])
        handler.uptrain_evaluate("rag", rows[:1], ["context_relevance"])
    finally:
        handler.shutdown()

    runs = [run for run in dashboard.runs() if run.project == project]
    assert [len(run.rows) for run in runs] == [2, 1]
    assert {row["score_context_relevance"] for run in runs for row in run.rows} == {1.0}
    assert [str(r.check) for r in judge.graded()] == ["context_relevance"] * 3
