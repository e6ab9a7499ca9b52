"""`ClearMLSpanExporter` against real ClearML in offline mode: chains run through the real
handler, the exporter delivers, and the offline session is read back as a server would import it.

The only stand-in is the LLM API: `otel_bridge.testing.FakeChatModel` (via tests/chains.py).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.runnables import Runnable
from opentelemetry.sdk.trace import TracerProvider
from otel_bridge_clearml import ClearMLSpanExporter
from otel_bridge_clearml.encoder import (
    ACTION_RECORDS_TITLE,
    ERRORS_TITLE,
    INPUT_TOKENS_TITLE,
    LATENCY_TITLE,
    OUTPUT_TOKENS_TITLE,
    SESSION_ANALYSIS_TITLE,
    complexity_title,
)

from otel_bridge import SeedProofIdGenerator
from otel_bridge.handler import OTelCallbackHandler
from tests.chains import (
    AGENT_ANSWER,
    AGENT_QUESTION,
    QUESTION,
    RAG_ANSWER,
    ChainFailedError,
    agent,
    failing_chain,
    rag_chain,
)

from .conftest import app_task, closed_session_of, session_of


@pytest.fixture
def provider() -> Iterator[TracerProvider]:
    """The app's TracerProvider; shutting it down at the end also shuts the exporter down. Its
    ids must not come from `random`, which every Task.init reseeds (see SeedProofIdGenerator)."""
    provider = TracerProvider(id_generator=SeedProofIdGenerator())
    yield provider
    provider.shutdown()


def run_chain(
    provider: TracerProvider, exporter: ClearMLSpanExporter, runnable: Runnable, *inputs: Any
) -> None:
    """Invoke `runnable` once per input with the real handler, then deliver everything."""
    handler = OTelCallbackHandler(tracer_provider=provider, exporters=[exporter])
    for value in inputs:
        with contextlib.suppress(ChainFailedError):
            runnable.invoke(value, {"callbacks": [handler]})
    assert provider.force_flush(20_000)
    assert exporter.force_flush(20_000)


def test_with_no_credentials_it_logs_offline_and_says_where(
    provider: TracerProvider, spool_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from clearml import Task

    exporter = ClearMLSpanExporter(spool_dir=spool_dir, grace_period=0.0, task_name="rag")
    with caplog.at_level(logging.WARNING, logger="otel_bridge_clearml"):
        run_chain(provider, exporter, rag_chain(), QUESTION)
    task = exporter.task
    assert exporter.created_task and task.is_offline() and Task.current_task() is task
    folder = Path(task.get_offline_mode_folder())
    assert folder.parent.parent == tmp_path / "clearml-cache"  # CLEARML_CACHE_DIR/offline/<id>
    (message,) = [r.getMessage() for r in caplog.records if "offline" in r.getMessage()]
    assert str(folder) in message and "import_offline_session" in message

    exporter.shutdown()
    assert Task.current_task() is None, "the exporter created the task, so it closes it"
    session = closed_session_of(folder, tmp_path / "imported")
    assert session.task["project_name"] == "langchain_callback_demo"
    assert session.task["name"] == "rag"
    assert session.task["type"] == "inference"
    (series,) = session.tables(ACTION_RECORDS_TITLE)
    assert series.startswith("RunnableSequence ")
    assert session.tables(SESSION_ANALYSIS_TITLE)[series][0]["output"] == RAG_ANSWER


def test_action_records_table_has_a_start_and_an_end_row_per_run(
    provider: TracerProvider, spool_dir: Path
) -> None:
    exporter = ClearMLSpanExporter(spool_dir=spool_dir, grace_period=0.0)
    run_chain(provider, exporter, rag_chain(), QUESTION)
    session = session_of(exporter.task)
    ((series, rows),) = session.tables(ACTION_RECORDS_TITLE).items()
    assert series.split(" ")[-1] == rows[0]["trace_id"]
    by_name = {row["name"]: row for row in rows}
    model = by_name["FakeChatModel"]
    assert model["action"] == "on_llm_end" and model["run_type"] == "chat_model"
    assert model["model"] == "fake-rag-model"
    assert QUESTION in model["inputs"] and model["outputs"] == RAG_ANSWER
    assert model["input_tokens"] > 0 and model["output_tokens"] == len(RAG_ANSWER.split())
    assert by_name["VectorStoreRetriever"]["action"] == "on_retriever_end"
    assert "North Sea near Rotterdam" in by_name["VectorStoreRetriever"]["outputs"]
    # Ordered by when each run ended, the seed's step counter counts every start and end.
    steps = [row["step"] for row in rows]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    # A start and an end row per run.
    assert Counter(row["span_id"] for row in rows) == {row["span_id"]: 2 for row in rows}
    outermost = rows[-1]
    assert outermost["run_type"] == "chain" and outermost["step"] == len(rows)
    assert outermost["starts"] == outermost["ends"] == len(rows) // 2
    assert outermost["llm_starts"] == outermost["llm_ends"] == 1
    assert outermost["errors"] == 0
    exporter.shutdown()


def test_errors_are_records_and_scalars(provider: TracerProvider, spool_dir: Path) -> None:
    exporter = ClearMLSpanExporter(spool_dir=spool_dir, grace_period=0.0)
    run_chain(provider, exporter, failing_chain(), {"question": "q"})
    session = session_of(exporter.task)
    ((_, rows),) = session.tables(ACTION_RECORDS_TITLE).items()
    failed = [row for row in rows if row["status"] == "error"]
    assert {row["action"] for row in failed} == {"on_chain_error"}
    assert {row["error"] for row in failed} == {"ChainFailedError"}
    assert rows[-1]["errors"] == 2  # the failing step and the sequence around it
    exporter.shutdown()


def test_scalars_per_model_count_up_across_traces(
    provider: TracerProvider, spool_dir: Path
) -> None:
    exporter = ClearMLSpanExporter(spool_dir=spool_dir, grace_period=0.0)
    run_chain(provider, exporter, agent(), {"messages": [("user", AGENT_QUESTION)]})
    run_chain(provider, exporter, rag_chain(), QUESTION)
    scalars = session_of(exporter.task).scalars()
    # The agent's model was called twice (tool call, then answer), in one trace.
    assert [i for i, _ in scalars[LATENCY_TITLE, "fake-agent-model"]] == [0, 1]
    assert [v for _, v in scalars[OUTPUT_TOKENS_TITLE, "fake-agent-model"]][1] == len(
        AGENT_ANSWER.split()
    )
    assert [i for i, _ in scalars[INPUT_TOKENS_TITLE, "fake-rag-model"]] == [0]
    assert scalars[ERRORS_TITLE, "fake-agent-model"] == [(0, 0.0)]
    assert all(value >= 0 for _, value in scalars[LATENCY_TITLE, "fake-rag-model"])
    exporter.shutdown()


def test_a_model_that_reports_no_name_has_scalars_named_after_its_class(
    provider: TracerProvider, spool_dir: Path
) -> None:
    """Before, every such model shared the series "unknown model"."""
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    exporter = ClearMLSpanExporter(spool_dir=spool_dir, grace_period=0.0)
    run_chain(provider, exporter, FakeListChatModel(responses=["hi"]), "hello")
    scalars = session_of(exporter.task).scalars()
    assert [i for i, _ in scalars[LATENCY_TITLE, "FakeListChatModel"]] == [0]
    exporter.shutdown()


def test_stream_logs_writes_each_record_to_the_console(
    provider: TracerProvider, spool_dir: Path, tmp_path: Path
) -> None:
    exporter = ClearMLSpanExporter(stream_logs=True, spool_dir=spool_dir, grace_period=0.0)
    run_chain(provider, exporter, rag_chain(), QUESTION)
    folder = Path(exporter.task.get_offline_mode_folder())
    # ClearML writes console lines from a thread of its own that Task.flush does not wait for;
    # the closed session has them all.
    exporter.shutdown()
    session = closed_session_of(folder, tmp_path / "imported")
    console = session.console_records()
    ((_, rows),) = session.tables(ACTION_RECORDS_TITLE).items()
    assert [(r["span_id"], r["action"]) for r in console] == [
        (row["span_id"], row["action"]) for row in rows
    ]
    assert console[-1]["outputs"] == RAG_ANSWER


def test_without_stream_logs_the_console_has_no_records(
    provider: TracerProvider, spool_dir: Path
) -> None:
    exporter = ClearMLSpanExporter(spool_dir=spool_dir, grace_period=0.0)
    run_chain(provider, exporter, rag_chain(), QUESTION)
    assert session_of(exporter.task).console_records() == []
    exporter.shutdown()


@pytest.mark.usefixtures("cmudict_corpus")
def test_complexity_metrics_as_columns_and_scalars(
    provider: TracerProvider, spool_dir: Path
) -> None:
    import textstat

    exporter = ClearMLSpanExporter(complexity_metrics=True, spool_dir=spool_dir, grace_period=0.0)
    run_chain(provider, exporter, rag_chain(), QUESTION)
    session = session_of(exporter.task)
    ((_, rows),) = session.tables(SESSION_ANALYSIS_TITLE).items()
    (row,) = rows
    assert row["flesch_reading_ease"] == textstat.flesch_reading_ease(RAG_ANSWER)
    assert row["text_standard"] == textstat.text_standard(RAG_ANSWER)
    scalars = session.scalars()
    assert scalars[complexity_title("gunning_fog"), "fake-rag-model"] == [
        (0, textstat.gunning_fog(RAG_ANSWER))
    ]
    assert (complexity_title("text_standard"), "fake-rag-model") not in scalars
    exporter.shutdown()


def test_visualize_reports_spacy_renderings_as_html_media(
    provider: TracerProvider, spool_dir: Path, spacy_pipeline: str
) -> None:
    exporter = ClearMLSpanExporter(
        visualize=True, spacy_model=spacy_pipeline, spool_dir=spool_dir, grace_period=0.0
    )
    run_chain(provider, exporter, agent(), {"messages": [("user", AGENT_QUESTION)]})
    media = session_of(exporter.task).media()
    titles = sorted({item.title for item in media})
    assert titles == ["Dependencies Plot", "Entities Plot"]
    # One page of each kind per generation (the tool-call turn and the answer).
    assert len(media) == 4
    entities = [item.content for item in media if item.title == "Entities Plot"]
    assert any("Paris" in page and "GPE" in page for page in entities)
    dependencies = [item.content for item in media if item.title == "Dependencies Plot"]
    assert all("<svg" in page and "PROPN" in page for page in dependencies)
    exporter.shutdown()


def test_visualize_with_a_missing_pipeline_fails_at_construction(spool_dir: Path) -> None:
    with pytest.raises(ValueError, match="no_such_pipeline"):
        ClearMLSpanExporter(visualize=True, spacy_model="no_such_pipeline", spool_dir=spool_dir)


def test_uses_the_current_task_and_leaves_it_open(
    provider: TracerProvider, spool_dir: Path, tmp_path: Path
) -> None:
    from clearml import Task

    mine = app_task("mine", "app")
    exporter = ClearMLSpanExporter(project_name="ignored", spool_dir=spool_dir, grace_period=0.0)
    run_chain(provider, exporter, rag_chain(), QUESTION)
    assert exporter.task is mine and not exporter.created_task
    exporter.shutdown()
    assert Task.current_task() is mine, "a task the exporter did not create stays open"
    assert session_of(mine).tables(ACTION_RECORDS_TITLE)
    mine.close()


def test_an_explicit_task_is_used_as_given(provider: TracerProvider, spool_dir: Path) -> None:

    given = app_task("given", "explicit")
    exporter = ClearMLSpanExporter(task=given, spool_dir=spool_dir, grace_period=0.0)
    run_chain(provider, exporter, rag_chain(), QUESTION)
    exporter.shutdown()
    assert session_of(given).tables(SESSION_ANALYSIS_TITLE)
    given.close()


def test_when_the_apps_task_is_closed_traces_wait_for_its_next_task(
    provider: TracerProvider, spool_dir: Path
) -> None:

    first = app_task("app", "first")
    exporter = ClearMLSpanExporter(spool_dir=spool_dir, grace_period=0.0)
    run_chain(provider, exporter, rag_chain(), QUESTION)
    first_session = session_of(first)
    first.close()

    second = app_task("app", "second")
    handler = OTelCallbackHandler(tracer_provider=provider, exporters=[exporter])
    rag_chain().invoke(QUESTION, {"callbacks": [handler]})
    assert provider.force_flush(20_000)
    deadline = time.monotonic() + 20
    while not exporter.force_flush(1000) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert exporter.task is second
    assert len(first_session.tables(ACTION_RECORDS_TITLE)) == 1
    assert len(session_of(second).tables(ACTION_RECORDS_TITLE)) == 1
    second.close()


def test_tables_per_takes_trace_or_flush(spool_dir: Path) -> None:
    with pytest.raises(ValueError, match="tables_per='run'"):
        ClearMLSpanExporter(spool_dir=spool_dir, tables_per="run")  # type: ignore[arg-type]
