"""`LabelStudioSpanExporter` against the real Label Studio server `make test` starts: projects,
tasks and predictions read back through the SDK as a reviewer sees them, filters, idempotency
and failures. The only stand-in is the LLM API (the fake models of `otel_bridge.testing`)."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from typing import Any

import pytest
from label_studio_sdk import LabelStudio
from langchain_core.runnables import Runnable, RunnableConfig
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from otel_bridge_labelstudio import (
    LabelConfigError,
    LabelStudioSpanExporter,
    TraceFilter,
    default_label_config,
)
from otel_bridge_labelstudio._encoder import SPAN_KEY_FIELD, Task, TaskEncoder

from otel_bridge.handler import OTelCallbackHandler
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.sink import PermanentError, RetryableError
from tests import chains

from .conftest import MakeLabelStudioExporter, projects_titled, tasks_of
from .test_label_config import QUESTION_ANSWER_CONFIG, TRANSCRIPT_CONFIG


def run(exporter: LabelStudioSpanExporter, runnable: Runnable, input: Any, **config: Any) -> None:
    """Run a chain traced into `exporter` (each span exported as it ends)."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    handler = OTelCallbackHandler(tracer_provider=provider)
    run_config: RunnableConfig = {"callbacks": [handler], **config}  # type: ignore[typeddict-item]
    runnable.invoke(input, run_config)


def chat_trace(exporter: LabelStudioSpanExporter, **config: Any) -> None:
    run(exporter, chains.chat_model(), chains.chat_messages(), **config)


def flushed(exporter: LabelStudioSpanExporter) -> LabelStudioSpanExporter:
    assert exporter.force_flush(30_000), "the exporter did not drain its spool"
    return exporter


def only_result(task: Any) -> dict[str, Any]:
    (prediction,) = task.predictions
    (result,) = prediction.result
    return result


# --- projects -------------------------------------------------------------------------------


def test_creates_the_project_once_and_reuses_it_by_title(
    make_exporter: MakeLabelStudioExporter, reviewer: LabelStudio, project_name: str
) -> None:
    # A project whose title merely contains ours must not be taken for it.
    decoy = reviewer.projects.create(
        title=f"{project_name}-decoy", label_config=QUESTION_ANSWER_CONFIG
    )
    first = make_exporter(mode="chat")
    chat_trace(first)
    flushed(first)
    second = make_exporter(mode="chat", spool_dir=first.spool.path.parent / "second")
    chat_trace(second)
    flushed(second)

    (project,) = projects_titled(reviewer, project_name)
    assert first.project().id == second.project().id == project.id != decoy.id
    assert "<Paragraphs" in (reviewer.projects.get(project.id).label_config or "")
    assert len(tasks_of(reviewer, project.id)) == 2


def test_project_id_sends_tasks_to_that_project_with_its_own_config(
    make_exporter: MakeLabelStudioExporter, reviewer: LabelStudio, project_name: str
) -> None:
    project = reviewer.projects.create(title=project_name, label_config=QUESTION_ANSWER_CONFIG)
    exporter = make_exporter(project_id=project.id, project_name="never-used-%Y")
    chat_trace(exporter)
    flushed(exporter)
    (task,) = tasks_of(reviewer, project.id)
    assert task.data["question"].endswith("Human: Say hello in French.")
    result = only_result(task)
    assert (result["from_name"], result["to_name"]) == ("answer", "question")
    assert projects_titled(reviewer, "never-used-2026") == []


def test_custom_chat_config_is_used_for_a_new_project(
    make_exporter: MakeLabelStudioExporter, reviewer: LabelStudio
) -> None:
    exporter = make_exporter(mode="chat", project_config=TRANSCRIPT_CONFIG)
    chat_trace(exporter)
    flushed(exporter)
    project = reviewer.projects.get(exporter.project().id)
    assert "transcript" in (project.label_config or "")
    (task,) = tasks_of(reviewer, project.id)
    assert task.data["messages"][-1] == {"speaker": "human", "says": "Say hello in French."}
    assert only_result(task)["value"]["text"] == [chains.CHAT_ANSWER]


def test_an_invalid_custom_config_fails_at_construction(
    make_exporter: MakeLabelStudioExporter,
) -> None:
    with pytest.raises(LabelConfigError, match=r"no <TextArea> bound to a <Paragraphs> object"):
        make_exporter(mode="chat", project_config=QUESTION_ANSWER_CONFIG)


def test_an_existing_project_whose_config_does_not_fit_dead_letters_with_the_reason(
    make_exporter: MakeLabelStudioExporter, reviewer: LabelStudio, project_name: str
) -> None:
    project = reviewer.projects.create(
        title=project_name, label_config="<View><Text name='t' value='$t'/></View>"
    )
    exporter = make_exporter(project_id=project.id)
    chat_trace(exporter)
    flushed(exporter)
    (dead,) = exporter.spool.dead_letters()
    assert f"project {project.id}" in dead.reason and "no <TextArea> tag" in dead.reason
    assert tasks_of(reviewer, project.id) == []


def test_a_missing_project_id_dead_letters_with_the_reason(
    make_exporter: MakeLabelStudioExporter,
) -> None:
    exporter = make_exporter(project_id=987654)
    chat_trace(exporter)
    flushed(exporter)
    (dead,) = exporter.spool.dead_letters()
    assert "HTTP 404 while reading project 987654" in dead.reason


# --- what a reviewer sees -------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["prompt", "chat"])
def test_rag_chain_tasks_and_predictions_as_a_reviewer_sees_them(
    mode: str, make_exporter: MakeLabelStudioExporter, reviewer: LabelStudio
) -> None:
    exporter = make_exporter(mode=mode)
    run(exporter, chains.rag_chain(), chains.QUESTION)
    flushed(exporter)
    project = reviewer.projects.get(exporter.project().id)
    assert project.label_config == default_label_config(mode)
    (task,) = tasks_of(reviewer, project.id)
    shown = task.data["prompt"]
    if mode == "chat":
        assert [turn["role"] for turn in shown] == ["system", "human"]
        assert shown[1]["content"] == chains.QUESTION
        assert "North Sea near Rotterdam" in shown[0]["content"]
    else:
        assert shown.startswith("System: Answer from the context only.")
        assert shown.endswith(f"Human: {chains.QUESTION}")
    (prediction,) = task.predictions
    assert prediction.model_version == "fake-rag-model"
    result = only_result(task)
    assert (result["from_name"], result["to_name"], result["type"]) == (
        "response",
        "dialogue" if mode == "chat" else "prompt",
        "textarea",
    )
    assert result["value"] == {"text": [chains.RAG_ANSWER]}
    assert task.data["model"] == "fake-rag-model"
    assert task.data["input_tokens"] > 0 and task.data["output_tokens"] > 0
    assert task.data["latency_s"] >= 0
    assert len(task.data["otel_trace_id"]) == 32 and len(task.data["otel_span_id"]) == 16
    assert task.data["otel_span_key"] == f"{task.data['otel_trace_id']}-{task.data['otel_span_id']}"
    assert task.annotations == []


def test_every_llm_call_of_a_trace_is_a_task(
    make_exporter: MakeLabelStudioExporter, reviewer: LabelStudio
) -> None:
    exporter = make_exporter(mode="chat")
    run(exporter, chains.agent(), {"messages": [("user", chains.AGENT_QUESTION)]})
    flushed(exporter)
    tasks = tasks_of(reviewer, exporter.project().id)
    assert [len(task.data["prompt"]) for task in tasks] == [2, 4]
    assert {task.data["otel_trace_id"] for task in tasks} == {tasks[0].data["otel_trace_id"]}
    assert only_result(tasks[1])["value"]["text"] == [chains.AGENT_ANSWER]


# --- filters and granularity ----------------------------------------------------------------


def test_only_traces_matching_the_filter_become_tasks(
    make_exporter: MakeLabelStudioExporter, reviewer: LabelStudio
) -> None:
    exporter = make_exporter(trace_filter=TraceFilter(tags=frozenset({"review"})))
    chat_trace(exporter, tags=["review"])
    chat_trace(exporter, tags=["skip"])
    chat_trace(exporter)
    flushed(exporter)
    (task,) = tasks_of(reviewer, exporter.project().id)
    assert task.data["tags"] == ["review"]
    assert exporter.spool.counts().outbox == 0


def test_errors_only_filter_sends_failed_traces(
    make_exporter: MakeLabelStudioExporter, reviewer: LabelStudio
) -> None:
    exporter = make_exporter(trace_filter=TraceFilter(errors_only=True))
    chat_trace(exporter)
    failing = chains.chat_model(error=TimeoutError("provider timed out"))
    with pytest.raises(TimeoutError):
        run(exporter, failing, chains.chat_messages())
    flushed(exporter)
    (task,) = tasks_of(reviewer, exporter.project().id)
    assert task.data["error"] == "TimeoutError"
    assert task.predictions == []


def test_metadata_filter_and_zero_sampling(
    make_exporter: MakeLabelStudioExporter, reviewer: LabelStudio
) -> None:
    exporter = make_exporter(trace_filter=TraceFilter(metadata={"tenant": "acme"}))
    chat_trace(exporter, metadata={"tenant": "acme"})
    chat_trace(exporter, metadata={"tenant": "globex"})
    flushed(exporter)
    assert len(tasks_of(reviewer, exporter.project().id)) == 1

    sampled_out = make_exporter(
        trace_filter=TraceFilter(sample_ratio=0.0), spool_dir=exporter.spool.path.parent / "s"
    )
    chat_trace(sampled_out, metadata={"tenant": "acme"})
    flushed(sampled_out)
    assert len(tasks_of(reviewer, exporter.project().id)) == 1


def test_one_task_per_trace(make_exporter: MakeLabelStudioExporter, reviewer: LabelStudio) -> None:
    exporter = make_exporter(task_per="trace")
    run(exporter, chains.agent(), {"messages": [("user", chains.AGENT_QUESTION)]})
    flushed(exporter)
    (task,) = tasks_of(reviewer, exporter.project().id)
    assert task.data["prompt"] == chains.AGENT_QUESTION
    assert task.data["llm_calls"] == 2
    assert only_result(task)["value"]["text"] == [chains.AGENT_ANSWER]


# --- idempotency ----------------------------------------------------------------------------


class LoseResponses:
    """Lets each import reach the server, then fails as if its response was lost on the way;
    with `then_unreachable`, every later lookup fails as if the server went away."""

    def __init__(
        self, exporter: LabelStudioSpanExporter, times: int, *, then_unreachable: bool = False
    ) -> None:
        self.remaining = times
        self.imports = 0
        self.then_unreachable = then_unreachable
        transport = exporter._transport
        self._import_tasks = transport.import_tasks
        self._existing_span_keys = transport.existing_span_keys
        transport.import_tasks = self._import  # type: ignore[method-assign]
        transport.existing_span_keys = self._lookup  # type: ignore[method-assign]

    def _import(self, project_id: int, tasks: Any) -> None:
        self._import_tasks(project_id, tasks)
        self.imports += 1
        if self.remaining > 0:
            self.remaining -= 1
            raise RetryableError("connection reset after the request was sent")

    def _lookup(self, project_id: int, keys: Any) -> set[str]:
        if self.then_unreachable and self.imports:
            raise RetryableError("connection refused")
        return self._existing_span_keys(project_id, keys)


def test_no_duplicates_after_a_forced_retry(
    make_exporter: MakeLabelStudioExporter, reviewer: LabelStudio
) -> None:
    exporter = make_exporter(grace_period=30.0)  # both traces wait for the flush: one batch
    lossy = LoseResponses(exporter, times=1)
    chat_trace(exporter)
    chat_trace(exporter)
    flushed(exporter)  # the import "fails", its retry finds the tasks already there
    assert (lossy.remaining, lossy.imports) == (0, 1)
    tasks = tasks_of(reviewer, exporter.project().id)
    assert len(tasks) == 2
    assert len({task.data["otel_span_key"] for task in tasks}) == 2


def test_no_duplicates_after_a_restart_with_a_non_empty_spool(
    make_exporter: MakeLabelStudioExporter, reviewer: LabelStudio
) -> None:
    crashed = make_exporter(grace_period=30.0, shutdown_timeout=1.0)
    lossy = LoseResponses(crashed, times=1, then_unreachable=True)
    chat_trace(crashed)
    assert crashed.force_flush(1_000) is False
    crashed.shutdown()
    assert lossy.imports == 1  # the tasks are in Label Studio, the spool does not know it
    assert len(tasks_of(reviewer, crashed.project().id)) == 1

    restarted = make_exporter(spool_dir=crashed.spool.path.parent, grace_period=30.0)
    assert restarted.spool.path == crashed.spool.path
    assert restarted.spool.counts().outbox == 1
    chat_trace(restarted)
    flushed(restarted)
    tasks = tasks_of(reviewer, restarted.project().id)
    assert len(tasks) == 2
    assert len({task.data["otel_span_key"] for task in tasks}) == 2
    assert restarted.spool.counts().outbox == 0


def test_a_replayed_dead_letter_creates_nothing_new(
    make_exporter: MakeLabelStudioExporter, reviewer: LabelStudio
) -> None:
    exporter = make_exporter(grace_period=30.0)
    transport = exporter._transport
    real_import = transport.import_tasks

    def import_then_refuse(project_id: int, tasks: Any) -> None:
        real_import(project_id, tasks)
        raise PermanentError("HTTP 400: refused after storing (a proxy in the way)")

    transport.import_tasks = import_then_refuse  # type: ignore[method-assign]
    chat_trace(exporter)
    flushed(exporter)
    assert len(exporter.spool.dead_letters()) == 1
    transport.import_tasks = real_import  # type: ignore[method-assign]

    assert exporter.spool.requeue_dead_letters(time.time()) == 1  # `otel-bridge replay`
    flushed(exporter)
    assert exporter.spool.counts().dead_letters == 0
    assert len(tasks_of(reviewer, exporter.project().id)) == 1


def test_redelivering_the_same_trace_creates_nothing_new(
    make_exporter: MakeLabelStudioExporter, reviewer: LabelStudio
) -> None:
    exporter = make_exporter()
    trace = chains.trace_of(chains.agent(), {"messages": [("user", chains.AGENT_QUESTION)]})
    first = exporter.deliver([trace])
    again = exporter.deliver([trace])
    key = format(trace.trace_id, "032x")
    assert first.delivered == again.delivered == {key}
    assert exporter.already_delivered([key, "0" * 32]) == {key}
    assert len(tasks_of(reviewer, exporter.project().id)) == 2


@dataclasses.dataclass(frozen=True)
class RefusedForOneTrace(TaskEncoder):
    """Leaves the config's input field out of one trace's tasks, which Label Studio refuses."""

    refused: int = 0

    def encode(self, trace: FinishedTrace) -> tuple[Task, ...]:
        tasks = super().encode(trace)
        if trace.trace_id != self.refused:
            return tasks
        return tuple(
            dataclasses.replace(task, payload={"data": {SPAN_KEY_FIELD: task.span_key}})
            for task in tasks
        )


def test_a_task_the_server_refuses_dead_letters_only_its_own_trace(
    make_exporter: MakeLabelStudioExporter, reviewer: LabelStudio
) -> None:
    exporter = make_exporter()
    traces = [chains.trace_of(chains.chat_model(), chains.chat_messages()) for _ in range(3)]
    target = exporter._resolve()
    encoder = RefusedForOneTrace(target.encoder.binding, refused=traces[1].trace_id)
    exporter._target = dataclasses.replace(target, encoder=encoder)

    report = exporter.deliver(traces)

    keys = [format(trace.trace_id, "032x") for trace in traces]
    assert report.delivered == {keys[0], keys[2]}
    assert list(report.permanent) == [keys[1]]
    assert "HTTP 400 while importing 1 tasks" in report.permanent[keys[1]]
    tasks = tasks_of(reviewer, target.project.id)
    assert {task.data["otel_trace_id"] for task in tasks} == {keys[0], keys[2]}


# --- tokens and failures --------------------------------------------------------------------


def test_personal_access_token_and_legacy_token_both_work(
    make_exporter: MakeLabelStudioExporter,
    reviewer: LabelStudio,
    personal_access_token: str,
    legacy_token: str,
) -> None:
    personal = make_exporter(api_key=personal_access_token)
    legacy = make_exporter(api_key=legacy_token, spool_dir=personal.spool.path.parent / "legacy")
    assert personal.token_kind == "personal access token"
    assert legacy.token_kind == "legacy token"
    chat_trace(personal)
    flushed(personal)  # creates the project, which the legacy-token exporter then finds
    chat_trace(legacy)
    flushed(legacy)
    assert personal.project().id == legacy.project().id
    assert len(tasks_of(reviewer, personal.project().id)) == 2


def unsigned_jwt(claims: dict[str, Any]) -> str:
    """A token shaped like a PAT that the server never issued (its signature is made up)."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


_FORGED_PAT = unsigned_jwt({"token_type": "refresh", "exp": 4102444800, "jti": "x", "user_id": "1"})
_EXPIRED_PAT = unsigned_jwt(
    {"token_type": "refresh", "exp": 1000000000, "jti": "y", "user_id": "1"}
)


@pytest.mark.parametrize(
    ("api_key", "reason"),
    [
        ("0" * 40, "HTTP 401 while listing projects"),
        (_FORGED_PAT, "The server rejected the personal access token"),
        (_EXPIRED_PAT, "personal access token expired at"),
    ],
    ids=["legacy", "forged-pat", "expired-pat"],
)
def test_a_bad_token_dead_letters_with_a_clear_reason_and_the_app_carries_on(
    api_key: str, reason: str, make_exporter: MakeLabelStudioExporter
) -> None:
    exporter = make_exporter(api_key=api_key)
    chat_trace(exporter)  # the app's call returns normally
    flushed(exporter)
    (dead,) = exporter.spool.dead_letters()
    assert reason in dead.reason
    assert "LABEL_STUDIO_API_KEY" in dead.reason or "expired" in dead.reason


def test_an_unreachable_server_delays_delivery_and_loses_nothing(
    make_exporter: MakeLabelStudioExporter,
) -> None:
    from .server import free_port

    exporter = make_exporter(url=f"http://127.0.0.1:{free_port()}")
    chat_trace(exporter)
    assert exporter.force_flush(2_000) is False
    counts = exporter.spool.counts()
    assert (counts.outbox, counts.dead_letters) == (1, 0)
