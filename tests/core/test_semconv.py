"""The names on the wire stay what spans already written (spools, trace files, dashboards,
Collector rules) carry, whatever version of `opentelemetry-semantic-conventions` supplies them.

`semconv` takes its GenAI, error, user and session names from that package, whose GenAI names are
incubating: an upgrade of the pin that renames one must fail here, not silently change what the
handler writes. The local names (`langchain.*`, our events, OpenInference) are pinned too, and a
name added to `semconv` without being pinned here fails the completeness test.
"""

from __future__ import annotations

import importlib
import warnings

import pytest

from otel_bridge import semconv

WIRE_NAMES = {
    # From opentelemetry-semantic-conventions.
    "GEN_AI_OPERATION_NAME": "gen_ai.operation.name",
    "GEN_AI_PROVIDER_NAME": "gen_ai.provider.name",
    "GEN_AI_REQUEST_MODEL": "gen_ai.request.model",
    "GEN_AI_TOOL_DEFINITIONS": "gen_ai.tool.definitions",
    "GEN_AI_RESPONSE_MODEL": "gen_ai.response.model",
    "GEN_AI_REQUEST_TEMPERATURE": "gen_ai.request.temperature",
    "GEN_AI_REQUEST_MAX_TOKENS": "gen_ai.request.max_tokens",
    "GEN_AI_REQUEST_TOP_P": "gen_ai.request.top_p",
    "GEN_AI_USAGE_INPUT_TOKENS": "gen_ai.usage.input_tokens",
    "GEN_AI_USAGE_OUTPUT_TOKENS": "gen_ai.usage.output_tokens",
    "GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS": "gen_ai.usage.cache_read.input_tokens",
    "GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS": "gen_ai.usage.cache_creation.input_tokens",
    "GEN_AI_USAGE_REASONING_OUTPUT_TOKENS": "gen_ai.usage.reasoning.output_tokens",
    "GEN_AI_RESPONSE_FINISH_REASONS": "gen_ai.response.finish_reasons",
    "GEN_AI_RESPONSE_ID": "gen_ai.response.id",
    "GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK": "gen_ai.response.time_to_first_chunk",
    "GEN_AI_TOOL_NAME": "gen_ai.tool.name",
    "GEN_AI_TOOL_CALL_ID": "gen_ai.tool.call.id",
    "GEN_AI_TOOL_DESCRIPTION": "gen_ai.tool.description",
    "GEN_AI_TOOL_CALL_ARGUMENTS": "gen_ai.tool.call.arguments",
    "GEN_AI_TOOL_CALL_RESULT": "gen_ai.tool.call.result",
    "GEN_AI_AGENT_NAME": "gen_ai.agent.name",
    "GEN_AI_CONVERSATION_ID": "gen_ai.conversation.id",
    "GEN_AI_INPUT_MESSAGES": "gen_ai.input.messages",
    "GEN_AI_OUTPUT_MESSAGES": "gen_ai.output.messages",
    "GEN_AI_RETRIEVAL_QUERY_TEXT": "gen_ai.retrieval.query.text",
    "GEN_AI_RETRIEVAL_DOCUMENTS": "gen_ai.retrieval.documents",
    "GEN_AI_TOKEN_TYPE": "gen_ai.token.type",
    "GEN_AI_EVALUATION_NAME": "gen_ai.evaluation.name",
    "GEN_AI_EVALUATION_SCORE_VALUE": "gen_ai.evaluation.score.value",
    "GEN_AI_EVALUATION_EXPLANATION": "gen_ai.evaluation.explanation",
    "USER_ID": "user.id",
    "SESSION_ID": "session.id",
    "ERROR_TYPE": "error.type",
    "METRIC_OPERATION_DURATION": "gen_ai.client.operation.duration",
    "METRIC_TOKEN_USAGE": "gen_ai.client.token.usage",
    "OP_CHAT": "chat",
    "OP_TEXT_COMPLETION": "text_completion",
    "OP_EXECUTE_TOOL": "execute_tool",
    "OP_INVOKE_AGENT": "invoke_agent",
    "OP_EMBEDDINGS": "embeddings",
    "OP_RETRIEVAL": "retrieval",
    # Local: LangChain runs.
    "RUN_ID": "langchain.run.id",
    "RUN_PARENT_ID": "langchain.run.parent_id",
    "RUN_TYPE": "langchain.run.type",
    "RUN_NAME": "langchain.run.name",
    "RUN_TAGS": "langchain.run.tags",
    "RUN_METADATA_PREFIX": "langchain.run.metadata.",
    "RUN_CLOSED_EARLY": "langchain.run.closed_early",
    "RUN_ABANDONED": "langchain.run.abandoned",
    "RUN_CONTROL_FLOW": "langchain.run.control_flow",
    "RUN_INTERRUPTED": "langchain.run.interrupted",
    "EVENT_INTERRUPT": "langchain.interrupt",
    "INTERRUPT_ID": "langchain.interrupt.id",
    "INTERRUPT_VALUE": "langchain.interrupt.value",
    "LINK_TYPE": "langchain.link.type",
    "LINK_TYPE_RESUME": "resume",
    "RUN_TYPE_LLM": "llm",
    "RUN_TYPE_CHAT_MODEL": "chat_model",
    "RUN_TYPE_CHAIN": "chain",
    "RUN_TYPE_TOOL": "tool",
    "RUN_TYPE_RETRIEVER": "retriever",
    "RUN_TYPE_PROMPT": "prompt",
    "RUN_TYPE_PARSER": "parser",
    "RUN_TYPE_AGENT": "agent",
    "LANGCHAIN_INPUT": "langchain.input",
    "LANGCHAIN_OUTPUT": "langchain.output",
    "LLM_COST": "langchain.llm.cost",
    "RETRIEVAL_DOCUMENTS": "langchain.retrieval.documents",
    "LLM_PROMPTS": "langchain.llm.prompts",
    "EVENT_FIRST_TOKEN": "gen_ai.first_token",
    "EVENT_AGENT_ACTION": "langchain.agent.action",
    "EVENT_AGENT_FINISH": "langchain.agent.finish",
    "EVENT_RETRY": "langchain.retry",
    "EVENT_CUSTOM": "langchain.custom_event",
    "EVENT_TEXT": "langchain.text",
    "METRIC_COST": "langchain.llm.cost",
    # Local: OpenInference, opt-in.
    "OPENINFERENCE_SPAN_KIND": "openinference.span.kind",
    "INPUT_VALUE": "input.value",
    "INPUT_MIME_TYPE": "input.mime_type",
    "OUTPUT_VALUE": "output.value",
    "OUTPUT_MIME_TYPE": "output.mime_type",
    "METADATA": "metadata",
    "MIME_JSON": "application/json",
    "VOCABULARY_GEN_AI": "gen_ai",
    "VOCABULARY_OPENINFERENCE": "openinference",
}


@pytest.mark.parametrize(("constant", "wire_name"), sorted(WIRE_NAMES.items()))
def test_each_name_is_the_one_on_the_wire(constant: str, wire_name: str) -> None:
    value = getattr(semconv, constant)
    assert type(value) is str  # an Enum member would be written as its repr
    assert value == wire_name


def test_every_name_semconv_defines_is_pinned_here() -> None:
    defined = {
        name for name in vars(semconv) if name.isupper() and isinstance(getattr(semconv, name), str)
    }
    assert defined == set(WIRE_NAMES)


def test_the_model_run_types_are_the_two_model_run_type_values() -> None:
    assert frozenset({"llm", "chat_model"}) == semconv.MODEL_RUN_TYPES


def test_importing_the_names_raises_no_deprecation_warning() -> None:
    # The package marks its GenAI enums `@deprecated`; only calling them warns, and an app that
    # runs with -W error must still be able to import the bridge.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.reload(semconv)
