"""Small pure functions reading GenAI facts out of what LangChain hands a callback.

Each reads one fact and may raise on a malformed payload; the handler calls each under its own
guard so one bad value costs one attribute.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, Generation, LLMResult

from otel_bridge._content import is_secret_key, message_dict

__all__ = [
    "Usage",
    "carries_attributes",
    "conversation_id",
    "finish_reasons",
    "identity_attributes",
    "input_messages",
    "metadata_attributes",
    "output_messages",
    "prompt_messages",
    "request_model",
    "request_parameters",
    "response_id",
    "response_model",
    "run_name",
    "tags",
    "usage",
]

_CONVERSATION_KEYS = ("thread_id", "session_id", "conversation_id")
_IDENTITY_KEYS = (("user.id", ("user_id", "user.id")), ("session.id", ("session_id", "session.id")))
# Tuples rather than unions: isinstance is faster with them, and these run on every model call.
_SCALAR_TYPES = (str, bool, int, float)
_NUMBER_TYPES = (int, float)
_MODEL_KEYS = ("model", "model_name", "model_id", "deployment_name", "model_path")


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int | None
    output_tokens: int | None
    # Parts of the counts above, from `usage_metadata`'s `input_token_details` /
    # `output_token_details`; None when no message reported them.
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    reasoning_output_tokens: int | None = None


class _UsageSum:
    """Token counts summed over a response's messages (`usage_metadata`)."""

    __slots__ = ("cache_creation", "cache_read", "found", "input", "output", "reasoning")

    def __init__(self) -> None:
        self.found = False
        self.input = self.output = 0
        self.cache_read: int | None = None
        self.cache_creation: int | None = None
        self.reasoning: int | None = None

    def add(self, usage_metadata: Mapping[str, Any]) -> None:
        self.found = True
        self.input += int(usage_metadata.get("input_tokens") or 0)
        self.output += int(usage_metadata.get("output_tokens") or 0)
        details = usage_metadata.get("input_token_details")
        if details:
            self.cache_read = _plus(self.cache_read, details.get("cache_read"))
            self.cache_creation = _plus(self.cache_creation, details.get("cache_creation"))
        details = usage_metadata.get("output_token_details")
        if details:
            self.reasoning = _plus(self.reasoning, details.get("reasoning"))

    def usage(self) -> Usage:
        return Usage(self.input, self.output, self.cache_read, self.cache_creation, self.reasoning)


def _plus(total: int | None, value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, _NUMBER_TYPES):
        return total
    return int(value) + (total or 0)


def run_name(serialized: Mapping[str, Any] | None, name: Any) -> str:
    """The run's name: LangChain's `name` argument, else the serialized name or class path."""
    if isinstance(name, str) and name:
        return name
    if isinstance(serialized, Mapping):
        serialized_name = serialized.get("name")
        if isinstance(serialized_name, str) and serialized_name:
            return serialized_name
        ids = serialized.get("id")
        if isinstance(ids, list) and ids and isinstance(ids[-1], str):
            return ids[-1]
    return "unnamed"


def tags(values: Sequence[Any]) -> tuple[str, ...]:
    found = tuple(values)
    for value in found:
        if not isinstance(value, str):
            return tuple(value if isinstance(value, str) else repr(value) for value in found)
    return found


def _is_attribute_entry(key: Any, value: Any) -> bool:
    """Whether a metadata entry becomes an attribute: a scalar under a string key, except
    credentials and LangChain's `ls_*` entries (LangSmith's own tracing parameters, which the
    GenAI attributes already carry)."""
    return (
        isinstance(value, _SCALAR_TYPES)
        and isinstance(key, str)
        and not key.startswith("ls_")
        and not is_secret_key(key)
    )


def carries_attributes(metadata: Mapping[str, Any]) -> bool:
    """Whether any entry becomes an attribute (the conversation id's among them). Most runs carry
    only LangChain's own metadata, which yields none."""
    # map() rather than a generator: it calls the test from C, once per entry of every run's
    # metadata.
    return any(map(_is_attribute_entry, metadata.keys(), metadata.values()))


def metadata_attributes(metadata: Mapping[str, Any] | None, prefix: str) -> dict[str, Any]:
    """Scalar metadata entries as attributes (see `_is_attribute_entry`)."""
    if not metadata:
        return {}
    return {
        prefix + key: value for key, value in metadata.items() if _is_attribute_entry(key, value)
    }


def identity_attributes(metadata: Mapping[str, Any] | None) -> dict[str, str]:
    """`user.id` and `session.id` from the metadata keys apps use for them."""
    found: dict[str, str] = {}
    if not metadata:
        return found
    for attribute, keys in _IDENTITY_KEYS:
        for key in keys:
            value = metadata.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool) and value != "":
                found[attribute] = str(value)
                break
    return found


def conversation_id(metadata: Mapping[str, Any] | None) -> str | None:
    if not metadata:
        return None
    for key in _CONVERSATION_KEYS:
        value = metadata.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)
    return None


def request_model(
    serialized: Mapping[str, Any] | None,
    metadata: Mapping[str, Any] | None,
    invocation_params: Mapping[str, Any] | None,
) -> str | None:
    """The requested model: per-call parameters first, then LangSmith params, then the model's
    own serialized constructor arguments."""
    for source in (invocation_params, metadata and {"model": metadata.get("ls_model_name")}):
        found = _first_model(source)
        if found:
            return found
    if serialized:
        kwargs = serialized.get("kwargs")
        found = _first_model(kwargs if isinstance(kwargs, Mapping) else None)
        if found:
            return found
    return None


def _first_model(source: Mapping[str, Any] | None) -> str | None:
    if not source:
        return None
    for key in _MODEL_KEYS:
        value = source.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def tool_definitions(invocation_params: Mapping[str, Any] | None) -> list[dict[str, Any]] | None:
    """The tools offered to the model in this call (`bind_tools`, or `tools=` / the older
    `functions=` of an OpenAI-style call), in the GenAI convention's shape: `type`, `name`,
    `description`, `parameters` (a JSON schema). OpenAI's nested `function` form and
    Anthropic's `input_schema` are flattened to it; anything else is kept as it is."""
    params = invocation_params or {}
    tools = params.get("tools")
    if not tools:
        functions = params.get("functions")
        tools = [{"type": "function", "function": f} for f in functions] if functions else None
    if not isinstance(tools, list | tuple) or not tools:
        return None
    return [_tool_definition(tool) for tool in tools]


def _tool_definition(tool: Any) -> dict[str, Any]:
    if not isinstance(tool, Mapping):
        return {"type": "function", "name": str(getattr(tool, "name", tool))}
    function = tool.get("function")
    if isinstance(function, Mapping):  # OpenAI: {"type": "function", "function": {...}}
        source: Mapping[str, Any] = function
        kind = tool.get("type") or "function"
    else:  # flat: ours, Anthropic's (input_schema), Gemini's function declarations
        source, kind = tool, tool.get("type") or "function"
    definition: dict[str, Any] = {"type": kind}
    for key in ("name", "description"):
        if source.get(key) is not None:
            definition[key] = source[key]
    schema = source.get("parameters", source.get("input_schema"))
    if schema is not None:
        definition["parameters"] = schema
    for key, value in tool.items():  # anything else the provider defined (e.g. strict)
        if key not in ("type", "function", "name", "description", "parameters", "input_schema"):
            definition.setdefault(key, value)
    return definition


def request_parameters(
    metadata: Mapping[str, Any] | None, invocation_params: Mapping[str, Any] | None
) -> dict[str, float | int]:
    """temperature / max_tokens / top_p: per-call parameters win over LangSmith params."""
    params = invocation_params or {}
    meta = metadata or {}
    found: dict[str, float | int] = {}
    temperature = _number(params.get("temperature"), meta.get("ls_temperature"))
    if temperature is not None:
        found["temperature"] = float(temperature)
    max_tokens = _number(
        params.get("max_tokens"),
        params.get("max_completion_tokens"),
        params.get("max_output_tokens"),
        meta.get("ls_max_tokens"),
    )
    if max_tokens is not None:
        found["max_tokens"] = int(max_tokens)
    top_p = _number(params.get("top_p"))
    if top_p is not None:
        found["top_p"] = float(top_p)
    return found


def _number(*candidates: Any) -> float | int | None:
    for value in candidates:
        if isinstance(value, _NUMBER_TYPES) and not isinstance(value, bool):
            return value
    return None


def _generations(response: LLMResult) -> list[Generation]:
    generations = response.generations
    if len(generations) == 1:
        return generations[0]
    return [generation for generation_list in generations for generation in generation_list]


def _response_metadata(generation: Generation) -> Mapping[str, Any]:
    if isinstance(generation, ChatGeneration):
        return generation.message.response_metadata or {}
    return {}


def usage(response: LLMResult) -> Usage | None:
    """Token usage: the messages' `usage_metadata` summed, else the provider's `llm_output`."""
    summed: _UsageSum | None = None
    for generation in _generations(response):
        if isinstance(generation, ChatGeneration):
            usage_metadata = getattr(generation.message, "usage_metadata", None)
            if usage_metadata:
                if summed is None:
                    summed = _UsageSum()
                summed.add(usage_metadata)
    if summed is not None:
        return summed.usage()
    return _llm_output_usage(response.llm_output)


def _llm_output_usage(llm_output: Mapping[str, Any] | None) -> Usage | None:
    """The provider's own token counts in `llm_output`, if it reports any."""
    llm_output = llm_output or {}
    for key in ("token_usage", "usage"):
        token_usage = llm_output.get(key)
        if isinstance(token_usage, Mapping):
            prompt = _number(token_usage.get("prompt_tokens"), token_usage.get("input_tokens"))
            completion = _number(
                token_usage.get("completion_tokens"), token_usage.get("output_tokens")
            )
            if prompt is not None or completion is not None:
                return Usage(
                    None if prompt is None else int(prompt),
                    None if completion is None else int(completion),
                )
    return None


def response_model(response: LLMResult) -> str | None:
    for generation in _generations(response):
        if isinstance(generation, ChatGeneration):
            found = _first_model(generation.message.response_metadata)
            if found:
                return found
    return _first_model(response.llm_output)


def finish_reasons(response: LLMResult) -> tuple[str, ...]:
    reasons: list[str] = []
    for generation in _generations(response):
        reason = _finish_reason(generation.generation_info or {}, _response_metadata(generation))
        if reason is not None:
            reasons.append(reason)
    return tuple(reasons)


def _finish_reason(info: Mapping[str, Any], metadata: Mapping[str, Any]) -> str | None:
    reason = (
        info.get("finish_reason")
        or metadata.get("finish_reason")
        or metadata.get("stop_reason")
        or info.get("stop_reason")
    )
    return reason if isinstance(reason, str) and reason else None


def response_id(response: LLMResult) -> str | None:
    for generation in _generations(response):
        if isinstance(generation, ChatGeneration):
            value = (generation.message.response_metadata or {}).get("id")
            if isinstance(value, str) and value:
                return value
    llm_output = response.llm_output or {}
    value = llm_output.get("id")
    return value if isinstance(value, str) and value else None


def output_messages(response: LLMResult) -> list[dict[str, Any]]:
    """One GenAI output message per generation, with its finish reason."""
    messages: list[dict[str, Any]] = []
    for generation in _generations(response):
        info = generation.generation_info or {}
        if isinstance(generation, ChatGeneration):
            message = message_dict(generation.message)
            metadata = generation.message.response_metadata or {}
            reason = info.get("finish_reason") or metadata.get("finish_reason")
        else:
            message = {"role": "assistant", "parts": [{"type": "text", "content": generation.text}]}
            reason = info.get("finish_reason")
        message["finish_reason"] = reason if isinstance(reason, str) else "stop"
        messages.append(message)
    return messages


def input_messages(messages: Sequence[Sequence[BaseMessage]]) -> list[BaseMessage]:
    """The batches' messages in one list; content encoding turns each into a GenAI message."""
    return [message for batch in messages for message in batch]


def prompt_messages(prompts: Sequence[str]) -> list[dict[str, Any]]:
    return [{"role": "user", "parts": [{"type": "text", "content": prompt}]} for prompt in prompts]
