"""The judge transport's failure table, against the real uptrain library and `FakeJudge` (the
local OpenAI-compatible stand-in for the paid LLM API) answering with each status in turn."""

from __future__ import annotations

import pytest
from otel_bridge_uptrain._judge import LocalJudge, RowsRejected

from otel_bridge.sink import PermanentError, RetryableError
from tests.support.fake_openai import FakeJudge

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
        (408, RetryableError),
        (429, RetryableError),
        (500, RetryableError),
        (502, RetryableError),
        (503, RetryableError),
        (504, RetryableError),
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


def test_an_unreachable_judge_is_retryable(judge: FakeJudge) -> None:
    url = judge.url
    judge.close()
    local = LocalJudge(api_key="sk-judge", model="gpt-3.5-turbo", api_base=url, project_name="t")
    with pytest.raises(RetryableError, match="unreachable"):
        local.evaluate("rag", [ROW], ["context_relevance"])


def test_rows_get_their_own_scores_in_order(local_judge: LocalJudge, judge: FakeJudge) -> None:
    judge.grader = lambda check, fields: "C" if "Danube" in fields.get("Query", "") else "A"
    danube = {**ROW, "question": "Where does the Danube end?"}

    scores = local_judge.evaluate("rag", [ROW, danube, ROW], ["context_relevance"])

    assert [[(s.name, s.value) for s in row] for row in scores] == [
        [("context_relevance", 1.0)],
        [("context_relevance", 0.0)],
        [("context_relevance", 1.0)],
    ]
