"""The drop-in `ClearMLCallbackHandler` against real ClearML in offline mode: concurrent runs
(`batch`, `abatch`) keep their counters and tables apart, `flush_tracker` reports the session and
saves LCEL assets as output models, `analyze_text` works as the seed's.

The only stand-in is the LLM API: `otel_bridge.testing.FakeChatModel`.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable
from otel_bridge_clearml import ClearMLCallbackHandler
from otel_bridge_clearml.encoder import ACTION_RECORDS_TITLE, SESSION_ANALYSIS_TITLE

from otel_bridge.testing import FakeChatModel
from tests.chains import QUESTION, RAG_ANSWER, rag_chain
from tests.support.processes import run_python

from .conftest import app_task, closed_session_of, session_of

QUESTIONS = [f"What is the capital of country number {n}?" for n in range(6)]


def _answer(messages: list[BaseMessage]) -> str:
    return f"Answer to: {messages[-1].content}"


def echo_chain() -> Runnable:
    """prompt | a model whose reply names the question | parser: pairs are checkable."""
    prompt = ChatPromptTemplate.from_messages([("human", "{question}")])
    model = FakeChatModel(respond=_answer, model_name="fake-echo-model")
    return prompt | model | StrOutputParser()


def make_handler(spool_dir: Path, **arguments: Any) -> ClearMLCallbackHandler:
    return ClearMLCallbackHandler(
        **arguments, exporter_options={"spool_dir": spool_dir, "grace_period": 0.0}
    )


def assert_runs_did_not_mix(session_rows: list[dict[str, Any]]) -> None:
    """Each trace's rows in the session table are exactly one prompt -> model -> parser run,
    counted alone."""
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for row in session_rows:
        by_trace.setdefault(row["trace_id"], []).append(row)
    assert len(by_trace) == len(QUESTIONS)
    asked = set()
    for rows in by_trace.values():
        # A start and an end row per run, each one step, as the original counted them.
        assert [row["step"] for row in rows] == list(range(1, 9))
        ends = [row for row in rows if row["action"].endswith("_end")]
        assert [row["run_type"] for row in ends] == ["prompt", "chat_model", "parser", "chain"]
        assert [row["step"] for row in ends] == [3, 5, 7, 8]
        assert ends[-1]["llm_starts"] == ends[-1]["llm_ends"] == 1
        model = ends[1]
        question = model["inputs"].removeprefix("user: ")
        assert model["outputs"] == f"Answer to: {question}"
        asked.add(question)
    assert asked == set(QUESTIONS)


def assert_prompts_pair_with_their_outputs(rows: list[dict[str, Any]]) -> None:
    assert len(rows) == len(QUESTIONS)
    for row in rows:
        question = row["prompts"].removeprefix("user: ")
        assert row["output"] == f"Answer to: {question}"
        assert row["output_step"] > row["prompt_step"]
    assert {row["prompts"].removeprefix("user: ") for row in rows} == set(QUESTIONS)


def test_batch_keeps_concurrent_runs_apart(spool_dir: Path) -> None:
    handler = make_handler(spool_dir)
    chain = echo_chain()
    answers = chain.batch(
        [{"question": q} for q in QUESTIONS], {"callbacks": [handler], "max_concurrency": 6}
    )
    assert answers == [f"Answer to: {q}" for q in QUESTIONS]
    handler.flush_tracker(name="batch")
    session = session_of(handler.task)
    # One table pair for the flush_tracker call, as the original reported (not one per trace).
    actions = session.tables(ACTION_RECORDS_TITLE)
    assert list(actions) == ["batch"]
    assert len(actions["batch"]) == 2 * 4 * len(QUESTIONS)
    assert_runs_did_not_mix(actions["batch"])
    analyses = session.tables(SESSION_ANALYSIS_TITLE)
    assert list(analyses) == ["batch"]
    assert_prompts_pair_with_their_outputs(analyses["batch"])
    handler.flush_tracker(finish=True)


def test_abatch_keeps_concurrent_runs_apart(spool_dir: Path) -> None:
    handler = make_handler(spool_dir)
    chain = echo_chain()

    async def run() -> list[str]:
        return await chain.abatch([{"question": q} for q in QUESTIONS], {"callbacks": [handler]})

    assert asyncio.run(run()) == [f"Answer to: {q}" for q in QUESTIONS]
    handler.flush_tracker(name="abatch")
    session = session_of(handler.task)
    actions = session.tables(ACTION_RECORDS_TITLE)
    assert list(actions) == ["abatch"]
    assert_runs_did_not_mix(actions["abatch"])
    assert_prompts_pair_with_their_outputs(session.tables(SESSION_ANALYSIS_TITLE)["abatch"])
    handler.flush_tracker(finish=True)


def test_each_flush_tracker_starts_a_new_session_table(spool_dir: Path) -> None:
    handler = make_handler(spool_dir)
    chain = echo_chain()
    chain.invoke({"question": QUESTIONS[0]}, {"callbacks": [handler]})
    handler.flush_tracker(name="first")
    chain.invoke({"question": QUESTIONS[1]}, {"callbacks": [handler]})
    chain.invoke({"question": QUESTIONS[2]}, {"callbacks": [handler]})
    # The original's callback counters: two chains of three runs since the last flush.
    assert handler.get_custom_callback_meta()["llm_starts"] == 2
    assert handler.chain_starts == 6 and handler.llm_ends == 2
    # The original's action_records: the rows of the runs delivered since the last flush.
    assert handler.flush(30)
    assert len({row["trace_id"] for row in handler.action_records}) == 2
    handler.flush_tracker(name="second")
    assert set(handler.get_custom_callback_meta().values()) == {0}
    assert handler.action_records == []
    tables = session_of(handler.task).tables(SESSION_ANALYSIS_TITLE)
    assert [row["prompts"] for row in tables["first"]] == [f"user: {QUESTIONS[0]}"]
    assert sorted(row["prompts"] for row in tables["second"]) == sorted(
        f"user: {q}" for q in QUESTIONS[1:3]
    )
    handler.flush_tracker(finish=True)


def test_flush_tracker_saves_an_lcel_asset_and_finish_closes_the_task(
    spool_dir: Path, tmp_path: Path
) -> None:
    from clearml import Task

    handler = make_handler(spool_dir, project_name="assets", task_name="rag")
    chain = rag_chain()
    assert chain.invoke(QUESTION, {"callbacks": [handler]}) == RAG_ANSWER
    folder = Path(handler.task.get_offline_mode_folder())
    handler.flush_tracker(name="rag-chain", langchain_asset=chain, finish=True)
    assert Task.current_task() is None, "the handler created the task, so finish closes it"

    session = closed_session_of(folder, tmp_path / "imported")
    (model,) = session.output_models()
    assert model["init"]["name"] == "rag-chain"
    saved = json.loads(model["init"]["config_text"])
    assert saved["id"][-1] == "RunnableSequence"
    assert json.loads(session.model_file(model)) == saved
    assert session.tables(SESSION_ANALYSIS_TITLE)["rag-chain"][0]["output"] == RAG_ANSWER


def test_finish_leaves_a_task_it_did_not_create_open(spool_dir: Path) -> None:
    from clearml import Task

    mine = app_task("app", "pipeline step")
    handler = make_handler(spool_dir)
    echo_chain().invoke({"question": QUESTIONS[0]}, {"callbacks": [handler]})
    handler.flush_tracker(name="step", finish=True)
    assert Task.current_task() is mine
    assert session_of(mine).tables(SESSION_ANALYSIS_TITLE)["step"]
    mine.close()


def test_the_app_keeps_working_after_finish(spool_dir: Path) -> None:
    handler = make_handler(spool_dir)
    handler.flush_tracker(finish=True)
    assert echo_chain().invoke({"question": "still there?"}, {"callbacks": [handler]}) == (
        "Answer to: still there?"
    )


def test_seed_constructor_arguments(spool_dir: Path) -> None:
    handler = ClearMLCallbackHandler(
        "qc",
        "my project",
        ["nightly", "rag"],
        "my task",
        False,
        False,
        True,
        exporter_options={"spool_dir": spool_dir},
    )
    assert (handler.task_type, handler.project_name, handler.tags, handler.task_name) == (
        "qc",
        "my project",
        ["nightly", "rag"],
        "my task",
    )
    assert (handler.visualize, handler.complexity_metrics, handler.stream_logs) == (
        False,
        False,
        True,
    )
    task = handler.task
    assert task.name == "my task" and task.task_type.value == "qc"
    assert sorted(task.get_tags()) == ["nightly", "rag"]
    handler.flush_tracker(finish=True)


@pytest.mark.usefixtures("cmudict_corpus")
def test_analyze_text_returns_the_seed_metrics(spool_dir: Path) -> None:
    import textstat

    handler = make_handler(spool_dir, complexity_metrics=True)
    metrics = handler.analyze_text(RAG_ANSWER)
    assert metrics["smog_index"] == textstat.smog_index(RAG_ANSWER)
    assert metrics["text_standard"] == textstat.text_standard(RAG_ANSWER)
    assert len(metrics) == 16
    handler.flush_tracker(finish=True)


def test_analyze_text_with_visualize_reports_media(spool_dir: Path, spacy_pipeline: str) -> None:
    handler = ClearMLCallbackHandler(
        visualize=True,
        exporter_options={"spool_dir": spool_dir, "spacy_model": spacy_pipeline},
    )
    assert handler.analyze_text("The Rhine ends in the North Sea.") == {}
    handler.task.flush(wait_for_uploads=True)
    media = session_of(handler.task).media()
    assert sorted(item.title for item in media) == ["Dependencies Plot", "Entities Plot"]
    (entities,) = [item.content for item in media if item.title == "Entities Plot"]
    assert "North Sea" in entities and "LOC" in entities
    handler.flush_tracker(finish=True)


def test_trace_ids_stay_unique_when_the_app_reseeds_random(spool_dir: Path) -> None:
    """ClearML's Task.init calls random.seed(1337); the SDK's default id generator would then
    repeat trace ids in every run. The handler's ids do not depend on `random`."""
    import random

    handler = make_handler(spool_dir)
    chain = echo_chain()
    for question in QUESTIONS[:2]:
        random.seed(1337)
        chain.invoke({"question": question}, {"callbacks": [handler]})
    handler.flush_tracker()
    (rows,) = session_of(handler.task).tables(ACTION_RECORDS_TITLE).values()
    assert len({row["trace_id"] for row in rows}) == 2
    handler.flush_tracker(finish=True)


def test_the_session_table_stays_within_its_bound(spool_dir: Path) -> None:
    handler = ClearMLCallbackHandler(
        exporter_options={"spool_dir": spool_dir, "grace_period": 0.0, "max_session_rows": 2}
    )
    chain = echo_chain()
    for question in QUESTIONS[:3]:
        chain.invoke({"question": question}, {"callbacks": [handler]})
    handler.flush_tracker(name="bounded")
    tables = session_of(handler.task).tables(SESSION_ANALYSIS_TITLE)
    rows = tables.pop("bounded")
    prompts = {row["prompts"] for row in rows}
    assert len(rows) == len(prompts) == 2
    assert prompts <= {f"user: {q}" for q in QUESTIONS[:3]}
    assert tables == {}  # the drop-in's tables are the session's only
    handler.flush_tracker(finish=True)


_NO_NLTK_DATA_APP = """
import logging, sys
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
from otel_bridge_clearml import ClearMLCallbackHandler
from tests.chains import rag_chain
handler = ClearMLCallbackHandler(
    task_type="inference", project_name="langchain_callback_demo", tags=["test"],
    task_name="llm", visualize=False, complexity_metrics=True, stream_logs=True,
    exporter_options={"spool_dir": sys.argv[1], "grace_period": 0.0},
)
print(rag_chain().invoke("What is the capital of France?", {"callbacks": [handler]}))
handler.flush_tracker(finish=True)
print("finished")
"""


def test_complexity_metrics_without_nltk_data_warn_and_the_app_runs(
    spool_dir: Path, tmp_path: Path
) -> None:
    """The documented example's complexity_metrics=True on a machine where textstat's NLTK data
    could not be downloaded: the app starts and runs, one warning says what is left out."""
    empty = tmp_path / "no-nltk-data"
    empty.mkdir()
    env = {**os.environ, "NLTK_DATA": str(empty), "HOME": str(tmp_path)}
    app = run_python("-c", _NO_NLTK_DATA_APP, str(spool_dir), env=env, timeout=300)
    assert app.stdout.strip().splitlines()[-1] == "finished"
    warnings = [line for line in app.stderr.splitlines() if line.startswith("WARNING ")]
    warnings = [line for line in warnings if "cmudict" in line]
    assert len(warnings) == 1, app.stderr[-3000:]
    assert "complexity metrics are left out" in warnings[0]


def test_action_records_keep_the_originals_rows(
    spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same AgentExecutor run through langchain_community's handler and the drop-in, side
    by side: the drop-in's "Action Records" hold every kind of row the original wrote (start
    rows, agent action and finish with the original's tool/tool_input/log and output columns)
    as often, except per-token rows, and the chain rows the original loses (its on_chain_start
    and on_chain_end raise on LCEL inputs and outputs)."""
    import spacy
    from langchain_community.callbacks.clearml_callback import (
        ClearMLCallbackHandler as OriginalHandler,
    )

    from tests.chains import AGENT_ANSWER, AGENT_QUESTION, classic_agent

    # The original loads en_core_web_sm whatever `visualize` says; PyPI has no such package.
    monkeypatch.setattr(spacy, "load", lambda name, *args, **kwargs: spacy.blank("en"))
    task = app_task("parity", "action records")  # both log into it, as in a pipeline
    original = OriginalHandler()
    ours = make_handler(spool_dir)
    assert classic_agent().invoke({"input": AGENT_QUESTION}, {"callbacks": [original, ours]}) == {
        "input": AGENT_QUESTION,
        "output": AGENT_ANSWER,
    }
    assert ours.flush(30)

    theirs = Counter(row["action"] for row in original.action_records)
    mine = Counter(row["action"] for row in ours.action_records)
    assert set(theirs) - set(mine) == {"on_llm_new_token"}
    for action in (
        "on_llm_start",
        "on_llm_end",
        "on_tool_start",
        "on_tool_end",
        "on_agent_action",
        "on_agent_finish",
    ):
        assert mine[action] == theirs[action] > 0, action
    for action in ("on_chain_start", "on_chain_end"):
        assert mine[action] >= theirs[action] > 0, action
    (their_action,) = [r for r in original.action_records if r["action"] == "on_agent_action"]
    (my_action,) = [r for r in ours.action_records if r["action"] == "on_agent_action"]
    assert my_action["tool"] == their_action["tool"] == "get_weather"
    assert json.loads(my_action["tool_input"]) == their_action["tool_input"]
    assert my_action["log"] == their_action["log"]
    (their_finish,) = [r for r in original.action_records if r["action"] == "on_agent_finish"]
    (my_finish,) = [r for r in ours.action_records if r["action"] == "on_agent_finish"]
    assert my_finish["output"] == their_finish["output"] == AGENT_ANSWER

    ours.flush_tracker(name="agent")
    rows = session_of(task).tables(ACTION_RECORDS_TITLE)["agent"]
    assert Counter(row["action"] for row in rows) == mine
    ours.flush_tracker(finish=True)
    task.close()
