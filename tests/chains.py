"""Real LangChain chains for tests, and `trace_of` which runs one through the real handler.

The only stand-in is the paid LLM API: the models are `otel_bridge.testing.FakeChatModel` /
`FakeLLM` (real LangChain models with scripted replies). Retrieval is real: an
`InMemoryVectorStore` over `DeterministicFakeEmbedding`, LangChain's own `MultiQueryRetriever`,
`ContextualCompressionRetriever` + `LLMChainExtractor`, and a `create_agent` tool-calling agent.
Sink and demo tests import these names; keep them stable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from langchain.agents import create_agent
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_classic.retrievers.document_compressors import LLMChainExtractor
from langchain_classic.retrievers.multi_query import MultiQueryRetriever
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate, PromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableConfig, RunnablePassthrough
from langchain_core.tools import tool
from langchain_core.vectorstores import InMemoryVectorStore

from otel_bridge.handler import OTelCallbackHandler
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.testing import FakeChatModel, FakeLLM
from tests.support.recording import recording_provider

__all__ = [
    "AGENT_ANSWER",
    "AGENT_QUESTION",
    "CHAT_ANSWER",
    "COMPLETION",
    "DOCUMENTS",
    "MULTI_QUERY_VARIANTS",
    "QUESTION",
    "RAG_ANSWER",
    "ChainFailedError",
    "agent",
    "chat_messages",
    "chat_model",
    "classic_agent",
    "completion_chain",
    "compression_retriever",
    "failing_chain",
    "multi_query_rag_chain",
    "multi_query_retriever",
    "rag_chain",
    "retriever",
    "trace_of",
]

QUESTION = "Where does the Rhine flow into the sea?"
RAG_ANSWER = "The Rhine flows into the North Sea in the Netherlands."
CHAT_ANSWER = "Bonjour! How can I help you today?"
COMPLETION = "Once upon a time a tracer met a span."
AGENT_QUESTION = "What is the weather in Paris?"
AGENT_ANSWER = "It is sunny and 21 degrees in Paris."
MULTI_QUERY_VARIANTS = (
    "Which sea does the Rhine end in?",
    "Where is the mouth of the Rhine river?",
    "Into which body of water does the Rhine drain?",
)

DOCUMENTS = tuple(
    Document(page_content=text, metadata={"source": source})
    for source, text in (
        (
            "rhine.txt",
            "The Rhine rises in the Swiss Alps. It flows into the North Sea near Rotterdam.",
        ),
        ("danube.txt", "The Danube flows east. It empties into the Black Sea in Romania."),
        ("elbe.txt", "The Elbe crosses Germany. It reaches the North Sea at Cuxhaven."),
        ("rhone.txt", "The Rhone starts at a glacier. It ends in the Mediterranean Sea."),
    )
)

_RAG_PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "Answer from the context only.\n\nContext:\n{context}"),
        ("human", "{question}"),
    ]
)


def retriever(k: int = 2) -> BaseRetriever:
    """A real vector-store retriever over `DOCUMENTS` (deterministic fake embeddings)."""
    store = InMemoryVectorStore(embedding=DeterministicFakeEmbedding(size=32))
    store.add_documents(list(DOCUMENTS))
    return store.as_retriever(search_kwargs={"k": k})


def _format_documents(documents: Sequence[Document]) -> str:
    return "\n\n".join(document.page_content for document in documents)


def chat_model(*replies: str | AIMessage, **options: Any) -> FakeChatModel:
    return FakeChatModel(responses=list(replies) or [CHAT_ANSWER], **options)


def rag_chain(model: FakeChatModel | None = None, source: BaseRetriever | None = None) -> Runnable:
    """retriever | format docs, prompt | model | StrOutputParser; input: the question string."""
    return (
        {
            "context": (source or retriever()) | _format_documents,
            "question": RunnablePassthrough(),
        }
        | _RAG_PROMPT
        | (model or chat_model(RAG_ANSWER, model_name="fake-rag-model"))
        | StrOutputParser()
    )


def multi_query_retriever(model: FakeChatModel | None = None) -> MultiQueryRetriever:
    """LangChain's MultiQueryRetriever; the model answers with `MULTI_QUERY_VARIANTS`."""
    return MultiQueryRetriever.from_llm(
        retriever=retriever(),
        llm=model or chat_model("\n".join(MULTI_QUERY_VARIANTS), model_name="fake-query-writer"),
    )


def multi_query_rag_chain() -> Runnable:
    return rag_chain(source=multi_query_retriever())


def _extract_first_sentence(messages: list[BaseMessage]) -> str:
    """Plays the extractor LLM: returns the first sentence of the context, AS IS."""
    prompt = str(messages[-1].content)
    match = re.search(r">>>\n(.*?)\n>>>", prompt, re.DOTALL)
    if match is None:
        return "NO_OUTPUT"
    return match.group(1).split(". ")[0].rstrip(".") + "."


def compression_retriever() -> ContextualCompressionRetriever:
    """ContextualCompressionRetriever + LLMChainExtractor (the model keeps the first sentence)."""
    extractor = FakeChatModel(respond=_extract_first_sentence, model_name="fake-extractor")
    return ContextualCompressionRetriever(
        base_compressor=LLMChainExtractor.from_llm(extractor), base_retriever=retriever()
    )


def chat_messages() -> list[BaseMessage]:
    return [SystemMessage("You are a polite assistant."), HumanMessage("Say hello in French.")]


def completion_chain() -> Runnable:
    """PromptTemplate | FakeLLM (a text-completion model) | StrOutputParser."""
    prompt = PromptTemplate.from_template("Tell a story about {topic}.")
    return prompt | FakeLLM(responses=[COMPLETION], temperature=0.2) | StrOutputParser()


@tool
def get_weather(city: str) -> str:
    """Return the current weather in a city."""
    return f"sunny and 21 degrees in {city}"


def _weather_agent_model(content: str, call_id: str) -> FakeChatModel:
    """The agents' model: it says `content` calling get_weather for Paris, then answers."""
    return chat_model(
        AIMessage(
            content=content,
            tool_calls=[{"name": "get_weather", "args": {"city": "Paris"}, "id": call_id}],
        ),
        AGENT_ANSWER,
        model_name="fake-agent-model",
    )


def agent() -> Runnable:
    """A langchain 1.x `create_agent` agent: the model calls `get_weather`, then answers.
    Input: {"messages": [("user", AGENT_QUESTION)]}."""
    model = _weather_agent_model("Let me check the weather.", "call_weather_1")
    return create_agent(model, tools=[get_weather], system_prompt="You answer weather questions.")


class ChainFailedError(RuntimeError):
    pass


def _fail(value: Any) -> Any:
    raise ChainFailedError(f"cannot handle {value!r}")


def failing_chain() -> Runnable:
    """prompt | a step that raises ChainFailedError."""
    return ChatPromptTemplate.from_messages([("human", "{question}")]) | _fail


def trace_of(
    runnable: Runnable,
    input: Any,
    config: RunnableConfig | None = None,
    *,
    expect_error: type[BaseException] | None = None,
    **handler_options: Any,
) -> FinishedTrace:
    """Run `runnable` with the real OTelCallbackHandler on a private TracerProvider and return
    the finished trace its spans form. With `expect_error`, the run must raise that."""
    provider, memory = recording_provider()
    handler = OTelCallbackHandler(tracer_provider=provider, **handler_options)
    run_config: RunnableConfig = {**(config or {})}
    given = run_config.get("callbacks")
    run_config["callbacks"] = [*(given if isinstance(given, list) else []), handler]
    try:
        runnable.invoke(input, run_config)
    except BaseException as error:
        if expect_error is None or not isinstance(error, expect_error):
            raise
    else:
        if expect_error is not None:
            raise AssertionError(f"expected {expect_error.__name__}, the run succeeded")
    provider.force_flush()
    spans = memory.get_finished_spans()
    provider.shutdown()
    return FinishedTrace.from_spans(spans)


def tagged_rag_trace() -> FinishedTrace:
    """The RAG chain's trace, called with tags and metadata (what the views' tests read)."""
    return trace_of(
        rag_chain(),
        QUESTION,
        {"tags": ["rag", "unit-test"], "metadata": {"user": "ada", "session": 7}},
    )


def classic_agent() -> Runnable:
    """langchain_classic's AgentExecutor over a tool-calling agent (agent-action callbacks).
    Input: {"input": AGENT_QUESTION}."""
    from langchain_classic.agents import AgentExecutor, create_tool_calling_agent

    model = _weather_agent_model("Checking the weather tool.", "call_weather_2")
    prompt = ChatPromptTemplate.from_messages(
        [
            ("system", "You answer weather questions."),
            ("human", "{input}"),
            ("placeholder", "{agent_scratchpad}"),
        ]
    )
    tool_agent = create_tool_calling_agent(model, [get_weather], prompt)
    return AgentExecutor(agent=tool_agent, tools=[get_weather])
