"""The demo's LangChain application: a RAG chain over a small document set, a tool-calling agent
built with LangGraph, a streamed answer, and a publishing step that fails on purpose."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# DeterministicFakeEmbedding and InMemoryVectorStore need numpy but import it only if present,
# then fail at the first search with a NameError; importing it here names what is missing.
import numpy  # noqa: F401
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import (
    Runnable,
    RunnableConfig,
    RunnableLambda,
    RunnableParallel,
    RunnablePassthrough,
)
from langchain_core.tools import BaseTool, tool
from langchain_core.vectorstores import InMemoryVectorStore
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition

__all__ = [
    "AGENT_QUESTION",
    "DOCUMENTS",
    "PUBLISH_QUESTION",
    "RAG_QUESTION",
    "STREAM_QUESTION",
    "DemoApp",
    "PublishError",
    "build_app",
    "fake_reply",
]

DOCUMENTS: tuple[Document, ...] = (
    Document(
        page_content="otel-bridge turns every LangChain run (chain, model, tool, retriever, agent "
        "step) into an OpenTelemetry span with correct parent/child links and GenAI attributes.",
        metadata={"source": "overview.md"},
    ),
    Document(
        page_content="Sink exporters receive finished traces: all spans of one trace id, held "
        "until the local root span ended plus a short grace period.",
        metadata={"source": "finished-traces.md"},
    ),
    Document(
        page_content="Every sink has a durable SQLite spool. When Label Studio or another sink "
        "is down, delivery is retried with backoff; nothing is dropped.",
        metadata={"source": "delivery.md"},
    ),
    Document(
        page_content="Each LLM call of a finished trace becomes a Label Studio review task "
        "holding the prompt, the generation as a prediction, the model and token usage.",
        metadata={"source": "labelstudio.md"},
    ),
    Document(
        page_content="An OpenTelemetry Collector can forward OTLP to `otel-bridge serve`, which "
        "runs the same sink exporters out of process.",
        metadata={"source": "collector.md"},
    ),
)

RAG_QUESTION = "How do my LangChain calls end up as Label Studio review tasks?"
STREAM_QUESTION = "What happens to my traces when a sink is down?"
AGENT_QUESTION = "A batch has 12 boxes of 7 items plus 5 loose items. How many items in total?"
PUBLISH_QUESTION = "Summarize what otel-bridge does in one sentence."

_RAG_SYSTEM_PROMPT = (
    "You answer questions about otel-bridge using only this context. "
    "Say so when the context does not answer the question.\n\nContext:\n{context}"
)
_AGENT_SYSTEM_PROMPT = "You are a careful assistant. Use the tools for arithmetic."


class PublishError(ConnectionError):
    """The demo's deliberately failing step: the publishing service is unreachable."""


@dataclass(frozen=True, slots=True)
class DemoApp:
    """The runnables the demo invokes; each one is an ordinary LangChain runnable."""

    rag: Runnable[str, str]
    agent: CompiledStateGraph[Any, Any, Any, Any]
    publish: Runnable[dict[str, str], str]


def build_app(model: BaseChatModel) -> DemoApp:
    """Wire the application around `model` (the local fake or a real provider's chat model)."""
    retriever = _build_retriever()
    answer_prompt = ChatPromptTemplate.from_messages(
        [("system", _RAG_SYSTEM_PROMPT), ("human", "{question}")]
    )
    rag = (
        RunnableParallel(
            context=retriever | RunnableLambda(_join_documents, name="join_documents"),
            question=RunnablePassthrough(),
        )
        | answer_prompt
        | model
        | StrOutputParser()
    ).with_config(run_name="rag_answer")
    publish = (
        ChatPromptTemplate.from_messages([("human", "{question}")])
        | model
        | StrOutputParser()
        | RunnableLambda(_publish_to_newsletter, name="publish_to_newsletter")
    ).with_config(run_name="summarize_and_publish")
    return DemoApp(rag=rag, agent=_build_agent(model, [multiply, add]), publish=publish)


def fake_reply(messages: Sequence[BaseMessage]) -> AIMessage:
    """What the local fake chat model answers: canned answers to the demo's questions, and for
    the agent, tool calls computed from the tool results it has seen so far."""
    question = next((m.text for m in reversed(messages) if isinstance(m, HumanMessage)), "")
    if question == AGENT_QUESTION:
        return _fake_agent_turn(messages)
    return AIMessage(_FAKE_ANSWERS.get(question, "I can only answer the demo's questions."))


_FAKE_ANSWERS = {
    RAG_QUESTION: "Each LLM call of a finished trace becomes a Label Studio review task with the "
    "prompt, the generation as a prediction, the model and token usage.",
    STREAM_QUESTION: "Nothing is lost: every sink has a durable SQLite spool and delivery is "
    "retried with backoff until the sink is back.",
    PUBLISH_QUESTION: "otel-bridge traces LangChain apps with OpenTelemetry and feeds the "
    "review and evaluation tools from finished traces.",
}


def _fake_agent_turn(messages: Sequence[BaseMessage]) -> AIMessage:
    results = [m for m in messages if isinstance(m, ToolMessage)]
    if not results:
        call = {"name": "multiply", "args": {"a": 12, "b": 7}, "id": "call_multiply"}
        return AIMessage("", tool_calls=[call])
    if len(results) == 1:
        call = {"name": "add", "args": {"a": int(results[0].text), "b": 5}, "id": "call_add"}
        return AIMessage("", tool_calls=[call])
    return AIMessage(f"The batch holds 12 x 7 + 5 = {results[-1].text} items.")


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def _build_retriever() -> Runnable[str, list[Document]]:
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=256))
    store.add_documents(list(DOCUMENTS))
    return store.as_retriever(search_kwargs={"k": 2})


def _join_documents(documents: Sequence[Document]) -> str:
    return "\n\n".join(document.page_content for document in documents)


def _publish_to_newsletter(summary: str) -> str:
    raise PublishError(f"newsletter service unreachable; {len(summary)} characters not published")


def _build_agent(
    model: BaseChatModel, tools: Sequence[BaseTool]
) -> CompiledStateGraph[Any, Any, Any, Any]:
    model_with_tools = model.bind_tools(tools)

    def call_model(state: MessagesState, config: RunnableConfig) -> dict[str, list[BaseMessage]]:
        messages = [SystemMessage(_AGENT_SYSTEM_PROMPT), *state["messages"]]
        return {"messages": [model_with_tools.invoke(messages, config)]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", call_model)
    graph.add_node("tools", ToolNode(tools))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition, ["tools", END])
    graph.add_edge("tools", "agent")
    return graph.compile(name="arithmetic_agent")
