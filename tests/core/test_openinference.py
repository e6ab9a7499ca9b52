"""The opt-in OpenInference vocabulary beside the GenAI names, on a real RAG chain and a tool
call traced with the SDK's in-memory exporter (the model is the fake of `otel_bridge.testing`)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

from otel_bridge import OTelCallbackHandler, semconv
from otel_bridge.testing import FakeChatModel
from tests.support.recording import recording_provider

OPENINFERENCE_NAMES = (
    semconv.OPENINFERENCE_SPAN_KIND,
    semconv.INPUT_VALUE,
    semconv.OUTPUT_VALUE,
    semconv.METADATA,
)


class _Retriever(BaseRetriever):
    def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
        return [Document(page_content="Paris is in France.")]


@tool
def lookup(city: str) -> str:
    """Look a city up."""
    return f"{city}: found"


def _trace(**options: Any) -> dict[str, ReadableSpan]:
    provider, memory = recording_provider()
    handler = OTelCallbackHandler(tracer_provider=provider, **options)
    chain = (
        {"context": _Retriever(), "question": RunnableLambda(lambda q: q)}
        | ChatPromptTemplate.from_messages([("human", "{context} {question}")])
        | FakeChatModel(responses=["Paris."])
        | StrOutputParser()
    )
    config: Any = {"callbacks": [handler], "metadata": {"team": "maps"}}
    chain.invoke("Where is Paris?", config)
    lookup.invoke({"city": "Paris"}, config)
    return {span.name: span for span in memory.get_finished_spans()}


def test_openinference_attributes_come_beside_the_genai_names() -> None:
    spans = _trace(semconv="gen_ai,openinference")
    kinds = {name: span.attributes[semconv.OPENINFERENCE_SPAN_KIND] for name, span in spans.items()}
    assert kinds["RunnableSequence"] == "CHAIN"
    assert kinds["ChatPromptTemplate"] == "PROMPT"
    assert kinds["StrOutputParser"] == "CHAIN"
    assert kinds["_Retriever"] == "RETRIEVER"
    assert kinds["chat fake-chat-model"] == "LLM"
    assert kinds["execute_tool lookup"] == "TOOL"
    root = spans["RunnableSequence"]
    assert json.loads(root.attributes[semconv.INPUT_VALUE]) == "Where is Paris?"
    assert root.attributes[semconv.INPUT_MIME_TYPE] == "application/json"
    assert json.loads(root.attributes[semconv.OUTPUT_VALUE]) == "Paris."
    assert root.attributes[semconv.OUTPUT_MIME_TYPE] == "application/json"
    assert json.loads(root.attributes[semconv.METADATA]) == {"team": "maps"}
    # The GenAI names are still written, the same as without the option.
    assert spans["_Retriever"].attributes[semconv.GEN_AI_RETRIEVAL_QUERY_TEXT] == "Where is Paris?"
    assert spans["execute_tool lookup"].attributes[semconv.GEN_AI_TOOL_CALL_RESULT] == (
        "Paris: found"
    )


@pytest.mark.parametrize("value", ["openinference", "GEN_AI, OpenInference"])
def test_the_variable_turns_it_on(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_BRIDGE_SEMCONV", value)
    spans = _trace()
    assert all(semconv.OPENINFERENCE_SPAN_KIND in span.attributes for span in spans.values())


def test_off_by_default_and_an_unknown_vocabulary_is_refused_as_an_argument(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_BRIDGE_SEMCONV", raising=False)
    for span in _trace().values():
        assert not any(name in span.attributes for name in OPENINFERENCE_NAMES)
    with pytest.raises(ValueError, match="unknown vocabulary"):
        OTelCallbackHandler(tracer_provider=TracerProvider(), semconv="gen_ai,langsmith")
    # From the environment a typo costs the option, never the app.
    monkeypatch.setenv("OTEL_BRIDGE_SEMCONV", "gen_ai,langsmith")
    for span in _trace().values():
        assert semconv.OPENINFERENCE_SPAN_KIND not in span.attributes
