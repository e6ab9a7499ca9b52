"""How UpTrainSpanExporter is configured: the seed's arguments, environment variables with their
precedence (argument > OTEL_BRIDGE_UPTRAIN_* > generic > default), clear errors, the entry point
and the drop-in callback handler. The judges are `FakeJudge` servers, local stand-ins for the paid
LLM API; one of them is a decoy that must never be asked."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from otel_bridge_uptrain import CheckPlan, UpTrainCallbackHandler, UpTrainSpanExporter

from otel_bridge import OTelCallbackHandler, semconv
from tests.chains import QUESTION, chat_messages, chat_model, rag_chain
from tests.support.collector import free_port
from tests.support.fake_openai import FakeJudge
from tests.support.recording import recording_provider

from .conftest import run_through, wait_for


@pytest.fixture
def decoy() -> Iterator[FakeJudge]:
    with FakeJudge(api_key="sk-decoy") as server:
        yield server


def _evaluate_one_chat(exporter: UpTrainSpanExporter) -> None:
    run_through(exporter, chat_model(), chat_messages())
    assert exporter.force_flush(60_000)


@pytest.mark.parametrize("layer", ["argument", "specific", "generic"])
def test_settings_precedence(
    layer: str,
    judge: FakeJudge,
    decoy: FakeJudge,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    right = {"key": "sk-judge", "base": judge.url, "model": "gpt-4o-mini", "project": "p-right"}
    wrong = {"key": "sk-decoy", "base": decoy.url, "model": "gpt-wrong", "project": "p-wrong"}
    layers = ["argument", "specific", "generic"]
    below = layers[layers.index(layer) + 1 :]
    chosen = {name: (right if name == layer else wrong) for name in [layer, *below]}
    arguments: dict[str, Any] = {}
    if "argument" in chosen:
        values = chosen["argument"]
        arguments = {
            "api_key": values["key"],
            "api_base": values["base"],
            "model": values["model"],
            "project_name": values["project"],
        }
    if "specific" in chosen:
        values = chosen["specific"]
        monkeypatch.setenv("OTEL_BRIDGE_UPTRAIN_API_KEY", values["key"])
        monkeypatch.setenv("OTEL_BRIDGE_UPTRAIN_API_BASE", values["base"])
        monkeypatch.setenv("OTEL_BRIDGE_UPTRAIN_MODEL", values["model"])
        monkeypatch.setenv("OTEL_BRIDGE_UPTRAIN_PROJECT_NAME", values["project"])
    if "generic" in chosen:
        values = chosen["generic"]
        monkeypatch.setenv("OPENAI_API_KEY", values["key"])
        monkeypatch.setenv("OPENAI_BASE_URL", values["base"])
    provider, results = recording_provider()
    exporter = UpTrainSpanExporter(
        tracer_provider=provider,
        log_results=False,
        checks=CheckPlan(llm=("response_completeness",)),
        spool_dir=tmp_path,
        grace_period=0.01,
        **arguments,
    )
    try:
        _evaluate_one_chat(exporter)
    finally:
        exporter.shutdown()

    assert decoy.requests == []
    (asked,) = judge.graded()
    assert asked.authorization == "Bearer sk-judge"
    # The generic layer has no model or project variable: those fall back to the defaults.
    expected_model = "gpt-3.5-turbo" if layer == "generic" else right["model"]
    expected_project = "langchain" if layer == "generic" else right["project"]
    assert asked.body is not None and asked.body["model"] == expected_model
    (span,) = results.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["uptrain.project_name"] == expected_project


def test_the_constructor_works_from_the_environment_alone(
    judge: FakeJudge, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-judge")
    monkeypatch.setenv("OPENAI_BASE_URL", judge.url)
    monkeypatch.setenv("OTEL_BRIDGE_UPTRAIN_SPOOL_DIR", str(tmp_path))
    monkeypatch.setenv("OTEL_BRIDGE_UPTRAIN_LOG_RESULTS", "false")
    monkeypatch.setenv("OTEL_BRIDGE_UPTRAIN_SAMPLE_RATE", "0.25")
    exporter = UpTrainSpanExporter()
    try:
        assert (exporter.project_name, exporter.key_type, exporter.model) == (
            "langchain",
            "openai",
            "gpt-3.5-turbo",
        )
        assert exporter.log_results is False
        assert exporter.sample_rate == 0.25
        assert exporter.spool.path.parent == tmp_path
    finally:
        exporter.shutdown()


def test_the_entry_point_loads_the_exporter(
    judge: FakeJudge, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (entry_point,) = entry_points(group="opentelemetry_traces_exporter", name="uptrain")
    assert entry_point.load() is UpTrainSpanExporter
    monkeypatch.setenv("OPENAI_API_KEY", "sk-judge")
    monkeypatch.setenv("OTEL_BRIDGE_UPTRAIN_SPOOL_DIR", str(tmp_path))
    entry_point.load()().shutdown()


def test_an_invalid_key_type_is_refused_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Invalid key type 'anthropic'"):
        UpTrainSpanExporter(key_type="anthropic", api_key="k", spool_dir=tmp_path)


@pytest.mark.parametrize(
    ("key_type", "variable"), [("openai", "OPENAI_API_KEY"), ("uptrain", "UPTRAIN_ACCESS_TOKEN")]
)
def test_a_missing_key_names_the_variables_to_set(
    key_type: str, variable: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=f"OTEL_BRIDGE_UPTRAIN_API_KEY or {variable}"):
        UpTrainSpanExporter(key_type=key_type, spool_dir=tmp_path)


def test_a_malformed_variable_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OTEL_BRIDGE_UPTRAIN_LOG_RESULTS", "maybe")
    with pytest.raises(ValueError, match="OTEL_BRIDGE_UPTRAIN_LOG_RESULTS='maybe'"):
        UpTrainSpanExporter(api_key="k", spool_dir=tmp_path)


def test_the_drop_in_handler_takes_the_seeds_arguments_and_evaluates_off_the_call(
    judge: FakeJudge, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    provider, memory = recording_provider()
    handler = UpTrainCallbackHandler(
        project_name="drop-in",
        key_type="openai",
        api_key="sk-judge",
        model="gpt-3.5-turbo",
        log_results=True,
        tracer_provider=provider,
        # A long grace: nothing may reach the judge until the flush below, whatever the timing.
        exporter_options={"api_base": judge.url, "spool_dir": tmp_path, "grace_period": 30.0},
    )
    assert isinstance(handler, OTelCallbackHandler)

    answer = rag_chain().invoke(QUESTION, config={"callbacks": [handler]})

    # Nothing was evaluated inside the call (the key check, GET /v1/models, may have run).
    assert [r for r in judge.requests if r.method == "POST"] == []
    assert provider.force_flush(10_000)
    assert handler.exporter.force_flush(60_000)
    evaluations = [
        span
        for span in memory.get_finished_spans()
        if span.attributes and semconv.GEN_AI_EVALUATION_NAME in span.attributes
    ]
    assert len(evaluations) == 3
    assert all(span.attributes["uptrain.project_name"] == "drop-in" for span in evaluations)  # type: ignore[index]
    printed = capsys.readouterr().out
    assert printed.count(f"Question: {QUESTION}") == 1
    assert f"Response: {answer}" in printed
    handler.exporter.shutdown()
    provider.shutdown()


def test_the_drop_in_handler_leaves_unset_arguments_to_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OTEL_BRIDGE_UPTRAIN_API_KEY", "sk-env")
    monkeypatch.setenv("OTEL_BRIDGE_UPTRAIN_PROJECT_NAME", "from-env")
    monkeypatch.setenv("OTEL_BRIDGE_UPTRAIN_MODEL", "gpt-4o-mini")
    monkeypatch.setenv("OTEL_BRIDGE_UPTRAIN_LOG_RESULTS", "false")
    provider = TracerProvider()
    # No judge runs here (api.openai.com is out of reach): the construction check is off.
    handler = UpTrainCallbackHandler(
        check_connection=False, tracer_provider=provider, exporter_options={"spool_dir": tmp_path}
    )
    exporter = handler.exporter
    try:
        assert (exporter.project_name, exporter.model, exporter.log_results) == (
            "from-env",
            "gpt-4o-mini",
            False,
        )
        assert exporter.key_type == "openai"  # the seed's default, nothing set
        overridden = UpTrainCallbackHandler(
            model="gpt-3.5-turbo",
            check_connection=False,
            tracer_provider=provider,
            exporter_options={"spool_dir": tmp_path / "argument"},
        )
        assert overridden.exporter.model == "gpt-3.5-turbo"
        overridden.exporter.shutdown()
    finally:
        exporter.shutdown()
        provider.shutdown()


def _drop_in(judge: FakeJudge, tmp_path: Path, **exporter_options: Any) -> UpTrainCallbackHandler:
    return UpTrainCallbackHandler(
        project_name="drop-in",
        key_type="openai",
        api_key=judge.api_key,
        log_results=False,
        tracer_provider=TracerProvider(),
        exporter_options={"api_base": judge.url, "spool_dir": tmp_path, **exporter_options},
    )


def test_the_drop_in_grades_plain_calls_only_when_asked_like_the_seed(
    judge: FakeJudge, tmp_path: Path
) -> None:
    """The seed evaluates RAG, multi-query and compression runs; a plain chat call gets no
    judge request from the drop-in unless a CheckPlan with plain-call checks is passed."""
    default = _drop_in(judge, tmp_path / "default")
    try:
        chat_model().invoke(chat_messages(), config={"callbacks": [default]})
        assert default.flush(30)
        # Only the key check at construction (GET /v1/models), no grading request.
        assert wait_for(lambda: judge.requests, 10)
        assert [(r.method, r.path) for r in judge.requests] == [("GET", "/v1/models")]
    finally:
        default.shutdown()

    asked = _drop_in(judge, tmp_path / "asked", checks=CheckPlan())
    try:
        chat_model().invoke(chat_messages(), config={"callbacks": [asked]})
        assert asked.flush(60)
        # uptrain grades response relevance through completeness and conciseness prompts.
        graded = sorted({str(request.check) for request in judge.graded()})
        assert graded == ["response_completeness", "response_conciseness"]
    finally:
        asked.shutdown()


def test_the_seeds_uptrain_evaluate_schema_and_client_work(
    judge: FakeJudge, tmp_path: Path
) -> None:
    handler = _drop_in(judge, tmp_path)
    try:
        from uptrain import EvalLLM

        assert isinstance(handler.uptrain_client, EvalLLM)
        assert handler.log_results is False
        assert handler.schema.project_name == "drop-in"
        data = [{"question": QUESTION, "context": "Paris is in France.", "response": "Paris."}]
        handler.uptrain_evaluate("rag", data, ["context_relevance"])
        ((row,),) = handler.schema.uptrain_results["drop-in"]
        assert row["question"] == QUESTION
        assert row["score_context_relevance"] == 1.0
        assert [str(request.check) for request in judge.graded()] == ["context_relevance"]
    finally:
        handler.shutdown()


def test_a_refused_key_or_an_unreachable_judge_fails_the_constructor_like_the_seed(
    judge: FakeJudge, tmp_path: Path
) -> None:
    """The seed's EvalLLM asks for the models with its key (GET /models) in the constructor and
    raises ValueError("OpenAI API Key is invalid") on a refused key; so does the drop-in, naming
    the judge and the fix, and ConnectionError for a judge that cannot be reached. The spool is
    let go: a handler built after the fix on the same spool starts."""
    spool = tmp_path / "spool"
    with pytest.raises(ValueError, match="OpenAI API Key is invalid") as refused:
        UpTrainCallbackHandler(
            api_key="sk-wrong",
            log_results=False,
            tracer_provider=TracerProvider(),
            exporter_options={"api_base": judge.url, "spool_dir": spool},
        )
    assert f"the judge at {judge.url} refused it (HTTP 401" in str(refused.value)
    assert "check_connection=False" in str(refused.value)
    closed = free_port()
    with pytest.raises(ConnectionError, match="cannot be reached"):
        UpTrainCallbackHandler(
            api_key=judge.api_key,
            log_results=False,
            tracer_provider=TracerProvider(),
            exporter_options={"api_base": f"http://127.0.0.1:{closed}/v1", "spool_dir": spool},
        )
    right = _drop_in(judge, spool)
    right.exporter.shutdown()
    statuses = [r.status for r in judge.requests if r.path == "/v1/models"]
    assert statuses == [401, 200]


def test_without_the_construction_check_a_refused_key_is_said_beside_the_app(
    judge: FakeJudge, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """check_connection=False: the constructor makes no request; the same question is asked
    beside the app, and a refused key is one ERROR naming the judge and the fix."""
    with caplog.at_level(logging.ERROR, logger="otel_bridge_uptrain"):
        wrong = UpTrainCallbackHandler(
            api_key="sk-wrong",
            log_results=False,
            check_connection=False,
            tracer_provider=TracerProvider(),
            exporter_options={"api_base": judge.url, "spool_dir": tmp_path / "wrong"},
        )
        try:
            assert wait_for(lambda: [r for r in judge.requests if r.path == "/v1/models"])
            assert wait_for(lambda: caplog.records, 10)
        finally:
            wrong.exporter.shutdown()
    (error,) = caplog.records
    assert error.levelname == "ERROR"
    assert f"the judge at {judge.url} refused the API key (HTTP 401" in error.getMessage()
    assert "OTEL_BRIDGE_UPTRAIN_API_KEY" in error.getMessage()
