"""Which chat model the demo picks, and how its local fake answers the agent: tool calls computed
from the tool results it has seen, so the agent's answer is really the tools' work."""

from __future__ import annotations

import sys

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from otel_bridge.demo.app import AGENT_QUESTION, RAG_QUESTION, fake_reply
from otel_bridge.demo.models import choose_chat_model
from otel_bridge.testing import FakeChatModel


def test_without_keys_the_demo_uses_the_local_fake() -> None:
    choice = choose_chat_model({})
    assert isinstance(choice.model, FakeChatModel)
    assert "set OPENAI_API_KEY and install langchain-openai" in choice.description


def test_a_key_without_its_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # langchain-openai is installed for the seed examples' tests: importing it is made to fail,
    # as it does where the package is missing.
    monkeypatch.setitem(sys.modules, "langchain_openai", None)
    choice = choose_chat_model({"OPENAI_API_KEY": "sk-not-used"})
    assert isinstance(choice.model, FakeChatModel)
    assert "OPENAI_API_KEY is set but langchain-openai is not installed" in choice.description


def test_force_fake_ignores_keys() -> None:
    choice = choose_chat_model({"OPENAI_API_KEY": "sk-not-used"}, force_fake=True)
    assert isinstance(choice.model, FakeChatModel)


def test_the_fake_agent_computes_its_tool_calls_from_the_tool_results() -> None:
    question = HumanMessage(AGENT_QUESTION)
    first = fake_reply([question])
    assert [(c["name"], c["args"]) for c in first.tool_calls] == [("multiply", {"a": 12, "b": 7})]
    product = ToolMessage("84", tool_call_id="call_multiply")
    second = fake_reply([question, first, product])
    assert [(c["name"], c["args"]) for c in second.tool_calls] == [("add", {"a": 84, "b": 5})]
    total = ToolMessage("89", tool_call_id="call_add")
    final = fake_reply([question, first, product, second, total])
    assert final == AIMessage("The batch holds 12 x 7 + 5 = 89 items.")


def test_the_fake_answers_the_rag_question_from_its_script() -> None:
    assert "review task" in fake_reply([HumanMessage(RAG_QUESTION)]).text
    assert fake_reply([HumanMessage("something else")]).text.startswith("I can only answer")
