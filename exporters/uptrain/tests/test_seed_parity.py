"""The seed page's example (LangChain docs, "UpTrain" callbacks: vanilla RAG, multi-query retriever,
context compression, each with `UpTrainCallbackHandler(key_type="openai", api_key=...)`) run as a
script in a subprocess, unchanged but for its import lines (exporters/uptrain/tests/seed_example.py
says exactly what changed), ending with no flush. Then what landed is checked where the original
put it: UpTrain's dashboard (uptrain's own local server), project "langchain", the page's three
evaluations, each row once; the judge asked once per check; the original's printed lines.

Stand-ins on loopback: `FakeOpenAI` for OpenAI (the app's chat model and embeddings, and the
judge), at OPENAI_BASE_URL, the only thing in place of a paid API. TIKTOKEN_CACHE_DIR points
OpenAIEmbeddings' tokenizer at the BPE table litellm ships (tiktoken would download it).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_bridge.spool import Spool
from tests.support.fake_openai import FakeOpenAI
from tests.support.processes import run_python
from tests.support.uptrain_dashboard import UpTrainDashboard

REPO_ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = Path(__file__).with_name("seed_example.py")
KEY = "sk-seed-page"
QUERY = "What did the president say about Ketanji Brown Jackson"
# The test's own document, where the page's TextLoader looks for its speech.
SPEECH = """Tonight I am naming Judge Ketanji Brown Jackson to serve on the Supreme Court. She is one
of the sharpest legal minds in the country and has served as a public defender and a judge.

We will cut the cost of prescription drugs, so that families pay less for the medicine they need.

Our economy created more jobs last year than in any year before, and wages went up with them.
"""


def _tiktoken_tables() -> str:
    import litellm

    return str(Path(litellm.__file__).parent / "litellm_core_utils" / "tokenizers")


@pytest.fixture
def openai_api() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY) as server:
        yield server


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[UpTrainDashboard]:
    with UpTrainDashboard(tmp_path / "dashboard") as server:
        yield server


def test_the_seed_example_lands_once_in_the_original_project_before_the_script_ends(
    openai_api: FakeOpenAI, dashboard: UpTrainDashboard, tmp_path: Path
) -> None:
    workdir = tmp_path / "app" / "docs" / "callbacks"
    workdir.mkdir(parents=True)
    (tmp_path / "app" / "modules").mkdir()
    (tmp_path / "app" / "modules" / "state_of_the_union.txt").write_text(SPEECH)
    spool_dir = tmp_path / "spool"
    env = {
        **os.environ,
        "OPENAI_BASE_URL": openai_api.url,
        "OPENAI_API_KEY": KEY,
        "UPTRAIN_LOCAL_URL": dashboard.url,
        "OTEL_BRIDGE_SPOOL_DIR": str(spool_dir),
        "TIKTOKEN_CACHE_DIR": _tiktoken_tables(),
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    child = run_python(
        str(EXAMPLE),
        env=env,
        timeout=600,
        cwd=workdir,
        input=KEY + "\n",  # the page's getpass()
    )
    assert "cannot schedule new futures" not in child.stderr

    # The dashboard: the page's three evaluations in project "langchain", every row once.
    runs = dashboard.runs()
    assert {run.project for run in runs} == {"langchain"}
    by_evaluation = Counter(
        run.name.rsplit("_", 1)[0] if run.name[-1].isdigit() else run.name
        for run in runs
        for _ in run.rows
    )
    assert by_evaluation == {"rag": 3, "multi_query": 1, "context_reranking": 1}
    rows = [row for run in runs for row in run.rows]
    assert {row["question"] for row in rows} == {QUERY}
    assert len({row["row_uuid"] for row in rows}) == len(rows) == 5
    scores = Counter(
        key
        for row in rows
        for key, value in row.items()
        if key.startswith("score_") and value == 1.0
    )
    assert scores == {
        "score_context_relevance": 3,
        "score_factual_accuracy": 3,
        "score_response_completeness": 3,
        "score_multi_query_accuracy": 1,
        "score_context_conciseness": 1,
        "score_context_reranking": 1,
    }

    # The judge: each check of each evaluated row once; no plain model call graded.
    graded = Counter(str(request.check) for request in openai_api.graded())
    assert graded == {
        "context_relevance": 3,
        "fact_generate": 3,
        "fact_evaluate": 3,
        "response_completeness": 3,
        "multi_query_accuracy": 1,
        "context_conciseness": 1,
        "context_reranking": 1,
    }

    # The original's lines, printed once per evaluated row.
    assert child.stdout.count(f"Question: {QUERY}") == 5
    assert child.stdout.count("Context Relevance Score: 1.0") == 3
    assert child.stdout.count("Multi Query Accuracy Score: 1.0") == 1
    assert child.stdout.count("Context Reranking Score: 1.0") == 1

    # Nothing left behind for a next start, in any of the three handlers' spools.
    paths = sorted(spool_dir.glob("uptrain-*.sqlite3"))
    assert paths
    for path in paths:
        left = Spool(path, max_bytes=1 << 30, max_traces=100, max_spans_per_trace=100)
        try:
            assert left.counts().outbox == 0 and left.counts().pending_traces == 0
            assert left.dead_letters() == []
        finally:
            left.close()
