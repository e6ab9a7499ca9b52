"""The drop-in `LabelStudioCallbackHandler`: langchain_community's constructor, `callbacks=[handler]`,
and tasks in the real Label Studio server, including the two cases the seed handler fails on
(a chat model in prompt mode, a plain LLM in chat mode). The LLM API is the only stand-in."""

from __future__ import annotations

import inspect
import uuid
from pathlib import Path
from typing import Any

import pytest
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError
from langchain_community.callbacks.labelstudio_callback import (
    LabelStudioCallbackHandler as SeedHandler,
)
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import Generation
from opentelemetry.sdk.trace import TracerProvider
from otel_bridge_labelstudio import LabelStudioCallbackHandler

from otel_bridge.handler import OTelCallbackHandler
from tests import chains

from .conftest import projects_titled, tasks_of
from .server import free_port

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def make_handler(
    label_studio_url: str, legacy_token: str, project_name: str, tmp_path: Path
) -> Any:
    made: list[tuple[LabelStudioCallbackHandler, TracerProvider]] = []

    def make(**arguments: Any) -> tuple[LabelStudioCallbackHandler, TracerProvider]:
        provider = TracerProvider()
        handler = LabelStudioCallbackHandler(
            **{
                "api_key": legacy_token,
                "url": label_studio_url,
                "project_name": project_name,
                **arguments,
            },
            tracer_provider=provider,
            exporter_options={
                "spool_dir": tmp_path / f"spool-{len(made)}",
                "grace_period": 0.0,
                "shutdown_timeout": 1.0,
            },
        )
        made.append((handler, provider))
        return handler, provider

    yield make
    for _, provider in made:
        provider.shutdown()  # also shuts the exporter down


def delivered(handler: LabelStudioCallbackHandler, provider: TracerProvider) -> None:
    assert provider.force_flush(30_000)
    assert handler.exporter.force_flush(30_000)


def test_takes_the_seed_handlers_arguments_in_the_same_order() -> None:
    seed = list(inspect.signature(SeedHandler.__init__).parameters)
    ours = list(inspect.signature(LabelStudioCallbackHandler.__init__).parameters)
    assert ours[: len(seed)] == seed
    assert issubclass(LabelStudioCallbackHandler, OTelCallbackHandler)
    assert LabelStudioCallbackHandler.DEFAULT_PROJECT_NAME == SeedHandler.DEFAULT_PROJECT_NAME


def test_chat_model_in_prompt_mode(make_handler: Any, reviewer: LabelStudio) -> None:
    handler, provider = make_handler(mode="prompt")
    reply = chains.chat_model().invoke(chains.chat_messages(), {"callbacks": [handler]})
    assert reply.content == chains.CHAT_ANSWER
    delivered(handler, provider)
    (task,) = tasks_of(reviewer, handler.exporter.project().id)
    assert task.data["prompt"] == (
        "System: You are a polite assistant.\n\nHuman: Say hello in French."
    )
    (prediction,) = task.predictions
    assert prediction.result[0]["value"]["text"] == [chains.CHAT_ANSWER]
    assert prediction.model_version == "fake-chat-model"


def test_plain_llm_in_chat_mode(make_handler: Any, reviewer: LabelStudio) -> None:
    handler, provider = make_handler(mode="chat")
    story = chains.completion_chain().invoke({"topic": "otters"}, {"callbacks": [handler]})
    assert story == chains.COMPLETION
    delivered(handler, provider)
    (task,) = tasks_of(reviewer, handler.exporter.project().id)
    assert task.data["prompt"] == [{"role": "human", "content": "Tell a story about otters."}]
    (prediction,) = task.predictions
    assert prediction.result[0]["to_name"] == "dialogue"
    assert prediction.result[0]["value"]["text"] == [chains.COMPLETION]


def test_the_call_returns_while_label_studio_is_unreachable(make_handler: Any) -> None:
    handler, provider = make_handler(url=f"http://127.0.0.1:{free_port()}", check_connection=False)
    answer = chains.rag_chain().invoke(chains.QUESTION, {"callbacks": [handler]})
    assert answer == chains.RAG_ANSWER
    assert provider.force_flush(30_000)
    assert handler.exporter.force_flush(1_000) is False
    assert handler.exporter.spool.counts().outbox == 1


def test_a_missing_api_key_fails_at_construction_like_the_seed(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="LABEL_STUDIO_API_KEY"):
        LabelStudioCallbackHandler(exporter_options={"spool_dir": tmp_path})


def test_an_unreachable_server_fails_at_construction_like_the_seed(make_handler: Any) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ConnectionError, match=rf"Label Studio at {url} is unreachable"):
        make_handler(url=url)


def test_a_rejected_key_fails_at_construction_like_the_seed(make_handler: Any) -> None:
    with pytest.raises(ApiError) as raised:
        make_handler(api_key="0" * 40)
    assert raised.value.status_code == 401
    assert "LABEL_STUDIO_API_KEY" in str(raised.value.body)


def test_the_project_exists_after_construction_like_the_seed(
    make_handler: Any, reviewer: LabelStudio, project_name: str
) -> None:
    handler, _ = make_handler()
    (project,) = projects_titled(reviewer, project_name)
    assert handler.project_id == project.id
    assert handler.ls_project.id == project.id
    assert handler.ls_client.projects.get(project.id).title == project_name
    # The original's view of the config: the first TextArea and the object it names.
    parsed = handler.parsed_label_config
    assert parsed[handler.from_name]["type"] == "TextArea"
    assert parsed[handler.from_name]["to_name"] == [handler.to_name]
    (read,) = parsed[handler.from_name]["inputs"]
    assert (read["type"], read["value"]) == (handler.input_type, handler.value)


def test_the_seeds_attributes_and_add_prompts_generations(
    make_handler: Any,
    reviewer: LabelStudio,
    label_studio_url: str,
    legacy_token: str,
    project_name: str,
) -> None:
    handler, _ = make_handler(mode="prompt")
    assert handler.mode == "prompt" and handler.project_config.startswith("<View>")
    assert (handler.api_key, handler.url, handler.project_name) == (
        legacy_token,
        label_studio_url.rstrip("/"),
        project_name,
    )
    handler.payload["run-1"] = {
        "prompts": ["Tell a joke."],
        "kwargs": {"invocation_params": {"model_name": "gpt-x"}},
    }
    handler.add_prompts_generations("run-1", [[Generation(text="A joke.")]])
    (task,) = tasks_of(reviewer, handler.project_id)
    assert task.data == {"prompt": "Tell a joke.", "run_id": "run-1"}
    (prediction,) = task.predictions
    assert prediction.model_version == "gpt-x"
    assert prediction.result[0]["value"]["text"] == ["A joke."]


def test_payload_holds_the_prompts_of_runs_in_flight(make_handler: Any) -> None:
    handler, _ = make_handler(mode="prompt")
    seen: list[dict[str, Any]] = []

    class Watching(BaseCallbackHandler):
        def on_llm_start(self, serialized: Any, prompts: list[str], **kwargs: Any) -> None:
            seen.append({run: dict(entry) for run, entry in handler.payload.items()})

    chains.completion_chain().invoke({"topic": "otters"}, {"callbacks": [handler, Watching()]})
    ((entry,),) = [list(snapshot.values()) for snapshot in seen]
    assert entry["prompts"] == ["Tell a story about otters."]
    assert handler.payload == {}


def test_tasks_keep_the_seeds_run_id(make_handler: Any, reviewer: LabelStudio) -> None:
    handler, provider = make_handler(mode="chat")
    run_id = uuid.uuid4()
    chains.chat_model().invoke(chains.chat_messages(), {"callbacks": [handler], "run_id": run_id})
    delivered(handler, provider)
    (task,) = tasks_of(reviewer, handler.project_id)
    assert task.data["run_id"] == str(run_id)
