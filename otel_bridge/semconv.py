"""Attribute, event and metric names the handler writes and the finished-trace helpers read.

This module is the contract between the callback handler and every consumer of its spans
(the sinks, the receiver, `otel-bridge tree`): both sides import the names from here.
"""

from __future__ import annotations

from typing import Final

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
GEN_AI_TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"
# Retriever runs (GenAI names): the query as it is, and a JSON list of
# {"id": str, "score": float | null, "content": str, "metadata": {...}}.
GEN_AI_RETRIEVAL_QUERY_TEXT: Final = "gen_ai.retrieval.query.text"
GEN_AI_RETRIEVAL_DOCUMENTS: Final = "gen_ai.retrieval.documents"
# Written by releases before the GenAI names above; still read from older spools and files:
# a retriever's JSON list of {"page_content": str, "metadata": {...}, "id": str | null}.
RETRIEVAL_DOCUMENTS: Final = "langchain.retrieval.documents"
# Text-completion (llm) runs: JSON list of the prompt strings, in order.
LLM_PROMPTS: Final = "langchain.llm.prompts"

# --- GenAI semantic conventions -------------------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_TOOL_DEFINITIONS: Final = "gen_ai.tool.definitions"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
USER_ID: Final = "user.id"
SESSION_ID: Final = "session.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
GEN_AI_TOOL_DESCRIPTION: Final = "gen_ai.tool.description"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.response.time_to_first_chunk"
# JSON per the GenAI convention: a list of
#   {"role": "system"|"user"|"assistant"|"tool", "parts": [part, ...]}
# where a part is one of
#   {"type": "text", "content": str}
#   {"type": "tool_call", "id": str|null, "name": str, "arguments": any}
#   {"type": "tool_call_response", "id": str|null, "response": any}
# Output messages also carry "finish_reason": str. System messages stay in the input list.
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
ERROR_TYPE: Final = "error.type"

# Values of GEN_AI_OPERATION_NAME.
OP_CHAT: Final = "chat"
OP_TEXT_COMPLETION: Final = "text_completion"
OP_EXECUTE_TOOL: Final = "execute_tool"
OP_INVOKE_AGENT: Final = "invoke_agent"
OP_EMBEDDINGS: Final = "embeddings"
OP_RETRIEVAL: Final = "retrieval"

# --- Span events ----------------------------------------------------------------------------
EVENT_FIRST_TOKEN: Final = "gen_ai.first_token"
EVENT_AGENT_ACTION: Final = "langchain.agent.action"
EVENT_AGENT_FINISH: Final = "langchain.agent.finish"
EVENT_RETRY: Final = "langchain.retry"
EVENT_CUSTOM: Final = "langchain.custom_event"
EVENT_TEXT: Final = "langchain.text"

# --- Metrics (GenAI convention) -------------------------------------------------------------
METRIC_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
METRIC_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
METRIC_COST: Final = "langchain.llm.cost"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"

# --- Evaluation results (UpTrain exporter writes, anyone may read) -------------------------
GEN_AI_EVALUATION_NAME: Final = "gen_ai.evaluation.name"
GEN_AI_EVALUATION_SCORE_VALUE: Final = "gen_ai.evaluation.score.value"
GEN_AI_EVALUATION_EXPLANATION: Final = "gen_ai.evaluation.explanation"

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
