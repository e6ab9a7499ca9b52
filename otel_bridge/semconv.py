"""Attribute, event and metric names the handler writes and the finished-trace helpers read.

This module is the contract between the callback handler and every consumer of its spans
(the sinks, the receiver, `otel-bridge tree`): both sides import the names from here. The GenAI,
error, user and session names come from `opentelemetry-semantic-conventions` (its incubating
GenAI names, so the package is pinned in pyproject.toml); only the `langchain.*` names, our own
events and the OpenInference names are written here.
"""

from __future__ import annotations

from typing import Final

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as _gen_ai
from opentelemetry.semconv._incubating.attributes import session_attributes as _session
from opentelemetry.semconv._incubating.attributes import user_attributes as _user
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GenAiOperationNameValues as _Operation,
)
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics as _gen_ai_metrics
from opentelemetry.semconv.attributes import error_attributes as _error

# --- LangChain run identity (on every span made from a run) -------------------------------
RUN_ID: Final = "langchain.run.id"
RUN_PARENT_ID: Final = "langchain.run.parent_id"
RUN_TYPE: Final = "langchain.run.type"
RUN_NAME: Final = "langchain.run.name"
RUN_TAGS: Final = "langchain.run.tags"
RUN_METADATA_PREFIX: Final = "langchain.run.metadata."
# --- How a run ended when it did not simply complete -------------------------------------------
# True when the consumer closed a stream before it finished (the run did not fail).
RUN_CLOSED_EARLY: Final = "langchain.run.closed_early"
# True when the run never ended and the handler's open-run bounds ended it (status ERROR).
RUN_ABANDONED: Final = "langchain.run.abandoned"
# The LangGraph control-flow exception that ended the run (GraphInterrupt, ParentCommand, ...);
# the run did not fail (status UNSET).
RUN_CONTROL_FLOW: Final = "langchain.run.control_flow"
# True when the run paused for a LangGraph interrupt (and its trace's root, when it ended).
RUN_INTERRUPTED: Final = "langchain.run.interrupted"
# An interrupt, as a span event: its id, and its value (JSON, content) when content is captured.
EVENT_INTERRUPT: Final = "langchain.interrupt"
INTERRUPT_ID: Final = "langchain.interrupt.id"
INTERRUPT_VALUE: Final = "langchain.interrupt.value"
# On the link from a run to the paused run of the same conversation it followed: "resume".
LINK_TYPE: Final = "langchain.link.type"
LINK_TYPE_RESUME: Final = "resume"

# Values of RUN_TYPE.
RUN_TYPE_LLM: Final = "llm"
RUN_TYPE_CHAT_MODEL: Final = "chat_model"
RUN_TYPE_CHAIN: Final = "chain"
RUN_TYPE_TOOL: Final = "tool"
RUN_TYPE_RETRIEVER: Final = "retriever"
RUN_TYPE_PROMPT: Final = "prompt"
RUN_TYPE_PARSER: Final = "parser"
RUN_TYPE_AGENT: Final = "agent"
MODEL_RUN_TYPES: Final = frozenset({RUN_TYPE_LLM, RUN_TYPE_CHAT_MODEL})

# --- Content (JSON strings, each bounded by the handler's max length) ---------------------
# Chain, prompt, parser and agent runs: the JSON encoding of what LangChain handed the callback
# (usually dicts).
LANGCHAIN_INPUT: Final = "langchain.input"
LANGCHAIN_OUTPUT: Final = "langchain.output"
# The cost of a model call from the user's price table (`otel_bridge.pricing`), in its currency.
LLM_COST: Final = "langchain.llm.cost"
# Tool runs (GenAI names): the arguments and the result, a string as it is, anything else as JSON.
GEN_AI_TOOL_CALL_ARGUMENTS: Final = _gen_ai.GEN_AI_TOOL_CALL_ARGUMENTS
GEN_AI_TOOL_CALL_RESULT: Final = _gen_ai.GEN_AI_TOOL_CALL_RESULT
# Retriever runs (GenAI names): the query as it is, and a JSON list of
# {"id": str, "score": float | null, "content": str, "metadata": {...}}.
GEN_AI_RETRIEVAL_QUERY_TEXT: Final = _gen_ai.GEN_AI_RETRIEVAL_QUERY_TEXT
GEN_AI_RETRIEVAL_DOCUMENTS: Final = _gen_ai.GEN_AI_RETRIEVAL_DOCUMENTS
# Written by releases before the GenAI names above; still read from older spools and files:
# a retriever's JSON list of {"page_content": str, "metadata": {...}, "id": str | null}.
RETRIEVAL_DOCUMENTS: Final = "langchain.retrieval.documents"
# Text-completion (llm) runs: JSON list of the prompt strings, in order.
LLM_PROMPTS: Final = "langchain.llm.prompts"

# --- GenAI semantic conventions -------------------------------------------------------------
GEN_AI_OPERATION_NAME: Final = _gen_ai.GEN_AI_OPERATION_NAME
GEN_AI_PROVIDER_NAME: Final = _gen_ai.GEN_AI_PROVIDER_NAME
GEN_AI_REQUEST_MODEL: Final = _gen_ai.GEN_AI_REQUEST_MODEL
GEN_AI_TOOL_DEFINITIONS: Final = _gen_ai.GEN_AI_TOOL_DEFINITIONS
GEN_AI_RESPONSE_MODEL: Final = _gen_ai.GEN_AI_RESPONSE_MODEL
GEN_AI_REQUEST_TEMPERATURE: Final = _gen_ai.GEN_AI_REQUEST_TEMPERATURE
GEN_AI_REQUEST_MAX_TOKENS: Final = _gen_ai.GEN_AI_REQUEST_MAX_TOKENS
GEN_AI_REQUEST_TOP_P: Final = _gen_ai.GEN_AI_REQUEST_TOP_P
GEN_AI_USAGE_INPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_INPUT_TOKENS
GEN_AI_USAGE_OUTPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS
USER_ID: Final = _user.USER_ID
SESSION_ID: Final = _session.SESSION_ID
GEN_AI_RESPONSE_FINISH_REASONS: Final = _gen_ai.GEN_AI_RESPONSE_FINISH_REASONS
GEN_AI_RESPONSE_ID: Final = _gen_ai.GEN_AI_RESPONSE_ID
GEN_AI_TOOL_NAME: Final = _gen_ai.GEN_AI_TOOL_NAME
GEN_AI_TOOL_CALL_ID: Final = _gen_ai.GEN_AI_TOOL_CALL_ID
GEN_AI_TOOL_DESCRIPTION: Final = _gen_ai.GEN_AI_TOOL_DESCRIPTION
GEN_AI_AGENT_NAME: Final = _gen_ai.GEN_AI_AGENT_NAME
GEN_AI_CONVERSATION_ID: Final = _gen_ai.GEN_AI_CONVERSATION_ID
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = _gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK
# JSON per the GenAI convention: a list of
#   {"role": "system"|"user"|"assistant"|"tool", "parts": [part, ...]}
# where a part is one of
#   {"type": "text", "content": str}
#   {"type": "tool_call", "id": str|null, "name": str, "arguments": any}
#   {"type": "tool_call_response", "id": str|null, "response": any}
# Output messages also carry "finish_reason": str. System messages stay in the input list.
GEN_AI_INPUT_MESSAGES: Final = _gen_ai.GEN_AI_INPUT_MESSAGES
GEN_AI_OUTPUT_MESSAGES: Final = _gen_ai.GEN_AI_OUTPUT_MESSAGES
ERROR_TYPE: Final = _error.ERROR_TYPE

# Values of GEN_AI_OPERATION_NAME; retriever runs are RETRIEVAL ("retrieval") as the convention
# defines it.
OP_CHAT: Final[str] = _Operation.CHAT.value
OP_TEXT_COMPLETION: Final[str] = _Operation.TEXT_COMPLETION.value
OP_EXECUTE_TOOL: Final[str] = _Operation.EXECUTE_TOOL.value
OP_INVOKE_AGENT: Final[str] = _Operation.INVOKE_AGENT.value
OP_EMBEDDINGS: Final[str] = _Operation.EMBEDDINGS.value
OP_RETRIEVAL: Final[str] = _Operation.RETRIEVAL.value

# --- Span events ----------------------------------------------------------------------------
EVENT_FIRST_TOKEN: Final = "gen_ai.first_token"
EVENT_AGENT_ACTION: Final = "langchain.agent.action"
EVENT_AGENT_FINISH: Final = "langchain.agent.finish"
EVENT_RETRY: Final = "langchain.retry"
EVENT_CUSTOM: Final = "langchain.custom_event"
EVENT_TEXT: Final = "langchain.text"

# --- Metrics (GenAI convention) -------------------------------------------------------------
METRIC_OPERATION_DURATION: Final = _gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION
METRIC_TOKEN_USAGE: Final = _gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE
METRIC_COST: Final = "langchain.llm.cost"
GEN_AI_TOKEN_TYPE: Final = _gen_ai.GEN_AI_TOKEN_TYPE

# --- Evaluation results (UpTrain exporter writes, anyone may read) -------------------------
GEN_AI_EVALUATION_NAME: Final = _gen_ai.GEN_AI_EVALUATION_NAME
GEN_AI_EVALUATION_SCORE_VALUE: Final = _gen_ai.GEN_AI_EVALUATION_SCORE_VALUE
GEN_AI_EVALUATION_EXPLANATION: Final = _gen_ai.GEN_AI_EVALUATION_EXPLANATION

# --- OpenInference, opt-in (`semconv="gen_ai,openinference"` / OTEL_BRIDGE_SEMCONV) ---------------
# Written beside the GenAI names from the same facts, for trace UIs that read OpenInference
# (Arize Phoenix): every run's kind, and the input/output/metadata of the runs no GenAI operation
# covers (chains, prompts, parsers, agents, graph nodes).
OPENINFERENCE_SPAN_KIND: Final = "openinference.span.kind"
INPUT_VALUE: Final = "input.value"
INPUT_MIME_TYPE: Final = "input.mime_type"
OUTPUT_VALUE: Final = "output.value"
OUTPUT_MIME_TYPE: Final = "output.mime_type"
METADATA: Final = "metadata"
MIME_JSON: Final = "application/json"
VOCABULARY_GEN_AI: Final = "gen_ai"
VOCABULARY_OPENINFERENCE: Final = "openinference"
