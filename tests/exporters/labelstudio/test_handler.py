"""The drop-in `LabelStudioCallbackHandler`: langchain_community's constructor, `callbacks=[handler]`,
and tasks in the real Label Studio server, including the two cases the seed handler fails on
(a chat model in prompt mode, a plain LLM in chat mode). The LLM API is the only stand-in."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
from label_studio_sdk import LabelStudio
from langchain_community.callbacks.labelstudio_callback import (
    LabelStudioCallbackHandler as SeedHandler,
)
from opentelemetry.sdk.trace import TracerProvider
from otel_bridge_labelstudio import LabelStudioCallbackHandler

from otel_bridge.handler import OTelCallbackHandler
from tests import chains

from .conftest import tasks_of
from .server import free_port


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
    handler, provider = make_handler(url=f"http://127.0.0.1:{free_port()}")
    answer = chains.rag_chain().invoke(chains.QUESTION, {"callbacks": [handler]})
    assert answer == chains.RAG_ANSWER
    assert provider.force_flush(30_000)
    assert handler.exporter.force_flush(1_000) is False
    assert handler.exporter.spool.counts().outbox == 1


def test_a_missing_api_key_fails_at_construction_like_the_seed(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="LABEL_STUDIO_API_KEY"):
        LabelStudioCallbackHandler(exporter_options={"spool_dir": tmp_path})
