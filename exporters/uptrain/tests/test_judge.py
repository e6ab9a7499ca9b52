"""The judge transport's failure table, against the real uptrain library and `FakeJudge` (the
local OpenAI-compatible stand-in for the paid LLM API) answering with each status in turn."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from otel_bridge_uptrain._judge import LocalJudge, RowsRejected

from otel_bridge.sink import PermanentError, RetryableError
from tests.support.fake_openai import FakeJudge

from .conftest import closed_port

ROW = {
    "question": "Where does the Rhine end?",
    "context": "In the North Sea.",
    "response": "North Sea.",
}


@pytest.fixture
def local_judge(judge: FakeJudge) -> LocalJudge:
    return LocalJudge(
        api_key="sk-judge", model="gpt-3.5-turbo", api_base=judge.url, project_name="t"
    )


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, PermanentError),
        (403, PermanentError),
        *((status, RetryableError) for status in (408, 429, 500, 502, 503, 504)),
        (400, RowsRejected),
        (404, RowsRejected),
        (422, RowsRejected),
    ],
)
def test_each_judge_status_becomes_the_right_failure(
    local_judge: LocalJudge, judge: FakeJudge, status: int, error: type[Exception]
) -> None:
    judge.fail_until_recovered(status)
    with pytest.raises(error, match=str(status)):
        local_judge.evaluate("rag", [ROW], ["context_relevance", "response_completeness"])
    # uptrain neither retried nor went on asking once the judge had failed.
    assert len(judge.requests) == 1


def test_retry_after_from_the_judge_is_kept(local_judge: LocalJudge, judge: FakeJudge) -> None:
    judge.fail_next(429, retry_after=7)
    with pytest.raises(RetryableError) as raised:
        local_judge.evaluate("rag", [ROW], ["context_relevance"])
    assert raised.value.retry_after == 7


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port whose connections the kernel accepts and nobody ever answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@pytest.mark.parametrize("outage", ["connection refused", "timed out", "unknown host"])
def test_a_judge_that_never_answers_is_retryable(outage: str, silent_port: int) -> None:
    api_base = {
        "connection refused": f"http://127.0.0.1:{closed_port()}/v1",
        "timed out": f"http://127.0.0.1:{silent_port}/v1",
        # RFC 2606 reserves .invalid: the name never resolves.
        "unknown host": "http://judge.invalid/v1",
    }[outage]
    local = LocalJudge(
        api_key="sk-judge",
        model="gpt-3.5-turbo",
        api_base=api_base,
        project_name="t",
        timeout=0.5,
    )
    # uptrain turns each failed call into a missing grade; none of them may pass for a verdict.
    with pytest.raises(RetryableError, match="judge unreachable"):
        local.evaluate("rag", [ROW], ["context_relevance", "response_completeness"])


def test_missing_grades_with_no_answer_from_the_judge_are_retryable() -> None:
    # uptrain sends models not named gpt* through litellm, past the client that records
    # failures: whatever stops litellm (here before it even connects), every grade comes back
    # missing while the judge answered nothing.
    local = LocalJudge(
        api_key="sk-judge",
        model="openai/judge-model",
        api_base=f"http://127.0.0.1:{closed_port()}/v1",
        project_name="t",
    )
    with pytest.raises(RetryableError, match="never answered"):
        local.evaluate("rag", [ROW], ["context_relevance"])


def test_a_judge_that_answers_without_a_grade_gives_a_missing_score(
    local_judge: LocalJudge, judge: FakeJudge
) -> None:
    judge.grades["context_relevance"] = "Z"  # not a choice uptrain accepts

    (row,) = local_judge.evaluate("rag", [ROW], ["context_relevance"])

    assert [(score.name, score.value) for score in row] == [("context_relevance", None)]
    assert {request.status for request in judge.requests} == {200}


def test_rows_get_their_own_scores_in_order(local_judge: LocalJudge, judge: FakeJudge) -> None:
    judge.grader = lambda check, fields: "C" if "Danube" in fields.get("Query", "") else "A"
    danube = {**ROW, "question": "Where does the Danube end?"}

    scores = local_judge.evaluate("rag", [ROW, danube, ROW], ["context_relevance"])

    assert [[(s.name, s.value) for s in row] for row in scores] == [
        [("context_relevance", 1.0)],
        [("context_relevance", 0.0)],
        [("context_relevance", 1.0)],
    ]
