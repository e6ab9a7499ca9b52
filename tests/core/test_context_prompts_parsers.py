"""Prompt templates and output parsers that call out: their outgoing spans nest under them.

A `FewShotChatMessagePromptTemplate` with a `SemanticSimilarityExampleSelector` queries a vector
store whose embeddings come over HTTP, and an app's parser may call a moderation service in
`parse()`. LangChain's own pure templates and parsers are left out of the current context (it
would cost every chain call and parent nothing). Each case runs in handler mode and in
instrument() mode; HTTP goes to the loopback LLM API (the paid-API stand-in) through
instrumented httpx.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langchain_core.embeddings import Embeddings
from langchain_core.example_selectors import SemanticSimilarityExampleSelector
from langchain_core.output_parsers import BaseOutputParser, StrOutputParser
from langchain_core.prompts import (
    ChatPromptTemplate,
    FewShotChatMessagePromptTemplate,
    PromptTemplate,
)
from langchain_core.vectorstores import InMemoryVectorStore
from opentelemetry.sdk.trace import ReadableSpan
from pydantic import ConfigDict

from otel_bridge._callouts import may_call_out
from tests.support.loopback_llm import Setup, client_spans, parent_of

pytestmark = pytest.mark.usefixtures("no_warnings_logged")

EXAMPLES = [
    {"question": "2+2", "answer": "4"},
    {"question": "capital of France", "answer": "Paris"},
]


class HttpEmbeddings(Embeddings):
    """Embeddings served over HTTP (the loopback API echoes the text; the vector is a hash of
    the answer, so equal texts embed equally)."""

    def __init__(self, url: str, client: httpx.Client) -> None:
        self.url = url
        self.client = client

    def _vector(self, text: str) -> list[float]:
        reply = str(self.client.post(self.url, json={"messages": [text]}).json()["reply"])
        seed = zlib.crc32(reply.encode())
        return [((seed >> shift) & 0xFF) / 255.0 for shift in (0, 8, 16, 24)]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vector(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)


def _few_shot_prompt(traced: Setup) -> ChatPromptTemplate:
    selector = SemanticSimilarityExampleSelector.from_examples(
        EXAMPLES, HttpEmbeddings(traced.url, traced.client), InMemoryVectorStore, k=1
    )
    few_shot = FewShotChatMessagePromptTemplate(
        example_selector=selector,
        example_prompt=ChatPromptTemplate.from_messages(
            [("human", "{question}"), ("ai", "{answer}")]
        ),
        input_variables=["question"],
    )
    return ChatPromptTemplate.from_messages(
        [("system", "Answer briefly."), few_shot, ("human", "{question}")]
    )


class ModeratedParser(BaseOutputParser[str]):
    """A parser that asks a moderation service about every answer it parses."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    url: str
    client: httpx.Client

    def parse(self, text: str) -> str:
        self.client.post(self.url, json={"messages": [f"moderate: {text}"]})
        return text.strip()


def _request_spans(traced: Setup) -> list[ReadableSpan]:
    """The spans of the request's trace (the example store was filled outside it)."""
    spans = traced.spans()
    request = next(s for s in spans if s.name == "request")
    return [s for s in spans if s.context.trace_id == request.context.trace_id]


def _assert_http_parents(spans: list[ReadableSpan], expected: list[str]) -> None:
    parents = sorted(parent_of(c, spans).name for c in client_spans(spans))  # type: ignore[union-attr]
    assert parents == sorted(expected), [s.name for s in spans]


@pytest.fixture
def few_shot_chain(traced: Setup) -> Iterator[Any]:
    yield _few_shot_prompt(traced) | traced.model | StrOutputParser()


def test_a_few_shot_prompt_with_a_selector_holds_its_vector_store_query(
    traced: Setup, few_shot_chain: Any
) -> None:
    with traced.tracer.start_as_current_span("request"):
        few_shot_chain.invoke({"question": "2+2"}, traced.config)
    _assert_http_parents(_request_spans(traced), ["ChatPromptTemplate", "chat echo-1"])


def test_a_few_shot_prompt_with_a_selector_holds_its_vector_store_query_async(
    traced: Setup, few_shot_chain: Any
) -> None:
    async def main() -> None:
        with traced.tracer.start_as_current_span("request"):
            await few_shot_chain.ainvoke({"question": "2+2"}, traced.config)

    asyncio.run(main())
    _assert_http_parents(_request_spans(traced), ["ChatPromptTemplate", "chat echo-1"])


@pytest.mark.parametrize("call", ["invoke", "ainvoke", "stream", "astream"])
def test_a_parser_that_calls_a_service_holds_its_call(traced: Setup, call: str) -> None:
    parser = ModeratedParser(url=traced.url, client=traced.client)
    chain = PromptTemplate.from_template("{question}") | traced.model | parser

    async def run_async() -> None:
        if call == "ainvoke":
            await chain.ainvoke({"question": "hi"}, traced.config)
        else:
            async for _ in chain.astream({"question": "hi"}, traced.config):
                pass

    with traced.tracer.start_as_current_span("request"):
        if call == "invoke":
            chain.invoke({"question": "hi"}, traced.config)
        elif call == "stream":
            list(chain.stream({"question": "hi"}, traced.config))
        else:
            asyncio.run(run_async())
    _assert_http_parents(_request_spans(traced), ["ModeratedParser", "chat echo-1"])


def test_langchains_own_templates_and_parsers_are_known_not_to_call_out(traced: Setup) -> None:
    plain = ChatPromptTemplate.from_messages([("system", "s"), ("human", "{q}")])
    assert not may_call_out(plain._serialized, "ChatPromptTemplate")
    assert not may_call_out(plain._serialized, "renamed")
    assert not may_call_out(PromptTemplate.from_template("{q}")._serialized, "PromptTemplate")
    assert not may_call_out(None, "StrOutputParser")
    few_shot = _few_shot_prompt(traced)
    assert may_call_out(few_shot._serialized, "ChatPromptTemplate")
    # Asked again, the same template gets the same answer (from the cache).
    assert may_call_out(few_shot._serialized, "ChatPromptTemplate")
    assert may_call_out(None, "ModeratedParser")
