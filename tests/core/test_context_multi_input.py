"""One model call serving several inputs, and async text-completion models: each provider call
nests under a model span of that very call.

LangChain starts every run of a multi-input call (`generate` over several conversations, a text
model's `batch`) before calling the provider, and `BaseLLM.agenerate` starts its runs in child
tasks; neither leaves a run's span current where the provider is called. Each case runs in
handler mode and in instrument() mode; the models call the loopback LLM API (the paid-API
stand-in) through instrumented httpx.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from langchain_core.language_models import BaseLLM
from langchain_core.messages import HumanMessage
from langchain_core.prompts import PromptTemplate
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan

from otel_bridge import semconv
from otel_bridge.handler import OTelCallbackHandler
from tests.support.loopback_llm import Setup, assert_clients_under, client_spans, parent_of

pytestmark = pytest.mark.usefixtures("no_warnings_logged")

CHAT_SPAN = "chat echo-1"
TEXT_SPAN = "text_completion complete-1"


def _callbacks(traced: Setup) -> dict[str, Any]:
    return {"callbacks": traced.config["callbacks"]} if traced.config else {}


def _asked(span: ReadableSpan) -> str:
    """The text of the one message a chat span was asked."""
    (message,) = json.loads(str(span.attributes[semconv.GEN_AI_INPUT_MESSAGES]))
    return str(message["parts"][0]["content"])


def _assert_each_conversation_has_its_own_http_span(spans: list[ReadableSpan]) -> None:
    chats = [s for s in spans if s.name == CHAT_SPAN]
    assert sorted(_asked(chat) for chat in chats) == ["a", "b", "c"]
    children = {chat.context.span_id: 0 for chat in chats}
    for client in client_spans(spans):
        parent = parent_of(client, spans)
        assert parent is not None and parent.name == CHAT_SPAN, [s.name for s in spans]
        children[parent.context.span_id] += 1
    assert sorted(children.values()) == [1, 1, 1]


CONVERSATIONS = [[HumanMessage(content=text)] for text in ("a", "b", "c")]


def test_several_conversations_in_one_generate(traced: Setup) -> None:
    with traced.tracer.start_as_current_span("request"):
        result = traced.model.generate(CONVERSATIONS, **_callbacks(traced))
    assert [g[0].text for g in result.generations] == ["echo: a", "echo: b", "echo: c"]
    _assert_each_conversation_has_its_own_http_span(traced.spans())
    assert traced.handler.open_runs == 0


def test_several_conversations_in_one_agenerate(traced: Setup) -> None:
    async def main() -> None:
        before = trace.get_current_span()
        with traced.tracer.start_as_current_span("request"):
            await traced.model.agenerate(CONVERSATIONS, **_callbacks(traced))
        assert trace.get_current_span() is before

    asyncio.run(main())
    _assert_each_conversation_has_its_own_http_span(traced.spans())
    assert traced.handler.open_runs == 0


def _completion_chain(traced: Setup) -> Any:
    return PromptTemplate.from_template("say {word}") | traced.text_model


def _assert_text_calls_under_the_first_input(spans: list[ReadableSpan], inputs: int) -> None:
    """Every HTTP span sits under the LLM span of input 0 (the run LangChain attributes the one
    provider call to), in input 0's trace; no other input's trace holds one."""
    sequences = [s for s in spans if s.name == "RunnableSequence"]
    assert len(sequences) == inputs
    first_trace = next(
        s.context.trace_id
        for s in spans
        if s.name == TEXT_SPAN and "say 0" in str(s.attributes[semconv.LLM_PROMPTS])
    )
    clients = client_spans(spans)
    assert len(clients) == inputs
    for client in clients:
        parent = parent_of(client, spans)
        assert parent is not None and parent.name == TEXT_SPAN, (
            None if parent is None else parent.name
        )
        assert "say 0" in str(parent.attributes[semconv.LLM_PROMPTS])
        assert client.context.trace_id == first_trace


@pytest.mark.parametrize("inputs", [1, 3])
def test_text_completion_batch(traced: Setup, inputs: int) -> None:
    answers = _completion_chain(traced).batch(
        [{"word": str(i)} for i in range(inputs)], traced.config
    )
    assert answers == [f"echo: say {i}" for i in range(inputs)]
    _assert_text_calls_under_the_first_input(traced.spans(), inputs)
    assert traced.handler.open_runs == 0


@pytest.mark.parametrize("inputs", [1, 3])
def test_text_completion_abatch(traced: Setup, inputs: int) -> None:
    async def main() -> list[str]:
        return await _completion_chain(traced).abatch(
            [{"word": str(i)} for i in range(inputs)], traced.config
        )

    assert asyncio.run(main()) == [f"echo: say {i}" for i in range(inputs)]
    _assert_text_calls_under_the_first_input(traced.spans(), inputs)
    assert traced.handler.open_runs == 0


def test_async_text_completion_model(traced: Setup) -> None:
    chain = _completion_chain(traced)

    async def main() -> None:
        with traced.tracer.start_as_current_span("request"):
            assert await chain.ainvoke({"word": "hi"}, traced.config) == "echo: say hi"
        with traced.tracer.start_as_current_span("request"):
            assert await traced.text_model.ainvoke("bare", traced.config) == "echo: bare"

    asyncio.run(main())
    assert_clients_under(traced.spans(), TEXT_SPAN, 2)


def test_every_handler_shares_one_wrapping_of_langchain(traced: Setup) -> None:
    """The wrappers are installed once, however many handlers are built."""
    helper = BaseLLM._agenerate_helper
    OTelCallbackHandler(tracer_provider=traced.provider)
    OTelCallbackHandler(tracer_provider=traced.provider)
    assert BaseLLM._agenerate_helper is helper
    assert helper.__wrapped__.__qualname__ == "BaseLLM._agenerate_helper"  # type: ignore[attr-defined]
    assert not hasattr(helper.__wrapped__, "__wrapped__")  # type: ignore[attr-defined]
