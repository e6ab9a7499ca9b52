"""Finished traces to Label Studio tasks (data + a textarea prediction); no network here.

Every task's data carries `otel_span_key`, the idempotency key the transport checks before
importing, and `otel_trace_id`, by which it looks those keys up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from otel_bridge import semconv
from otel_bridge.langchain_views import FinishedTrace, LLMCall, TracedMessage
from otel_bridge.sink import span_key
from otel_bridge_labelstudio._label_config import Binding, LabelStudioMode

# Task-data fields the exporter owns (beside the config's own input field).
TRACE_ID_FIELD = "otel_trace_id"
SPAN_KEY_FIELD = "otel_span_key"

# Label Studio shows these speaker names in a dialogue; LangChain's message classes read the same.
_DIALOGUE_ROLES = {"system": "system", "user": "human", "assistant": "ai", "tool": "tool"}
_ROLE_ALIASES = {"human": "user", "ai": "assistant"}
_PROMPT_SPEAKERS = {"system": "System", "user": "Human", "assistant": "AI", "tool": "Tool"}


class TaskGranularity(StrEnum):
    """One task per LLM/chat call, or one per trace (root input and final output)."""

    LLM_CALL = "llm_call"
    TRACE = "trace"


@dataclass(frozen=True, slots=True)
class Task:
    """One Label Studio task ready for bulk import, with the keys that make it idempotent."""

    trace_key: str
    span_key: str
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class TaskEncoder:
    """Turns finished traces into tasks for a project whose config was bound to `binding`.

    `trace_url_template` may use `{trace_id}` and `{span_id}` (hex), e.g.
    "http://localhost:16686/trace/{trace_id}" for Jaeger.
    """

    binding: Binding
    granularity: TaskGranularity = TaskGranularity.LLM_CALL
    trace_url_template: str | None = None

    def __post_init__(self) -> None:
        if self.trace_url_template is not None:
            check_trace_url_template(self.trace_url_template)

    def encode(self, trace: FinishedTrace) -> tuple[Task, ...]:
        # Without content (capture off where the trace was made) there is nothing to review:
        # no task rather than a task with an empty prompt and no prediction.
        if self.granularity is TaskGranularity.TRACE:
            if trace.root_input() is None and trace.root_output() is None:
                return ()
            return (self._trace_task(trace),)
        tags = _user_tags(trace)
        return tuple(
            self._call_task(trace, call, tags)
            for call in trace.llm_calls()
            if call.messages or call.prompt is not None or call.output_messages or call.generations
        )

    def _call_task(self, trace: FinishedTrace, call: LLMCall, tags: list[str]) -> Task:
        if self.binding.mode is LabelStudioMode.CHAT:
            shown: Any = self._dialogue(call.messages)
        elif call.prompt is not None:
            shown = call.prompt
        else:
            shown = _render_conversation(call.messages)
        span = trace.span(call.span_id)
        attributes = span.attributes if span is not None else {}
        data: dict[str, Any] = {
            self.binding.data_key: shown,
            # The seed's field: the LangChain run id of the call.
            "run_id": _str_or_none(attributes.get(semconv.RUN_ID)),
            "llm_name": call.name,
            "run_type": call.run_type,
            "model": call.model,
            "provider": call.provider,
            "latency_s": round(call.latency_s, 6),
            "input_tokens": call.input_tokens,
            "output_tokens": call.output_tokens,
            "finish_reasons": list(call.finish_reasons) or None,
            "error": call.error,
            "tags": tags or None,
        }
        answers = [_render_message(m) for m in call.output_messages] or list(call.generations)
        # Without a reported model: LangChain's ls_model_name, else the run's name (the model's
        # class unless the app named the run), never a shared placeholder.
        ls_model_name = _str_or_none(attributes.get(semconv.RUN_METADATA_PREFIX + "ls_model_name"))
        model_version = call.model or ls_model_name or call.name
        return self._task(call.trace_id, call.span_id, data, answers, model_version)

    def _trace_task(self, trace: FinishedTrace) -> Task:
        root = trace.run_root() or trace.root
        question = _unwrap(trace.root_input())
        conversation = _conversation(question) or (
            TracedMessage(role="user", content=_as_text(question)),
        )
        if self.binding.mode is LabelStudioMode.CHAT:
            shown: Any = self._dialogue(conversation)
        else:
            shown = _render_conversation(conversation)
        calls = trace.llm_calls()
        errors = trace.errors()
        models = [call.model for call in calls if call.model]
        data: dict[str, Any] = {
            self.binding.data_key: shown,
            "chain_name": root.name,
            "llm_calls": len(calls),
            "models": sorted(set(models)) or None,
            "latency_s": round(root.duration_s, 6),
            "input_tokens": _total(call.input_tokens for call in calls),
            "output_tokens": _total(call.output_tokens for call in calls),
            "error": errors[0].error_type if errors else None,
            "tags": _user_tags(trace) or None,
        }
        output = _unwrap(trace.root_output())
        replies = _conversation(output)
        if replies:
            answers = [_render_message(replies[-1])]
        else:
            answers = [] if output is None else [_as_text(output)]
        model_version = models[-1] if models else root.name
        return self._task(trace.trace_id, root.span_id, data, answers, model_version)

    def _task(
        self,
        trace_id: int,
        span_id: int,
        data: dict[str, Any],
        answers: Sequence[str],
        model_version: str,
    ) -> Task:
        key = span_key(trace_id, span_id)
        trace_hex = format(trace_id, "032x")
        span_hex = format(span_id, "016x")
        data.update({TRACE_ID_FIELD: trace_hex, "otel_span_id": span_hex, SPAN_KEY_FIELD: key})
        if self.trace_url_template is not None:
            data["trace_url"] = self.trace_url_template.format(trace_id=trace_hex, span_id=span_hex)
        payload: dict[str, Any] = {"data": {k: v for k, v in data.items() if v is not None}}
        if answers:
            payload["predictions"] = [
                {
                    "model_version": model_version,
                    "result": [
                        {
                            "from_name": self.binding.from_name,
                            "to_name": self.binding.to_name,
                            "type": "textarea",
                            "value": {"text": list(answers)},
                        }
                    ],
                }
            ]
        return Task(trace_key=format(trace_id, "032x"), span_key=key, payload=payload)

    def _dialogue(self, messages: Sequence[TracedMessage]) -> list[dict[str, str]]:
        return [
            {
                self.binding.role_key: _DIALOGUE_ROLES.get(m.role, m.role),
                self.binding.text_key: _render_message(m),
            }
            for m in messages
        ]


def check_trace_url_template(template: str) -> None:
    """Raise a `ValueError` naming the problem unless `template` formats with trace/span ids."""
    try:
        template.format(trace_id="0" * 32, span_id="0" * 16)
    except (KeyError, IndexError, ValueError) as error:
        raise ValueError(
            f"trace URL template {template!r} may only use the fields {{trace_id}} and "
            f"{{span_id}}: {error!r}"
        ) from None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _user_tags(trace: FinishedTrace) -> list[str]:
    # LangChain tags every step of a sequence "seq:step:N"; reviewers filter by the app's tags.
    return [tag for tag in trace.tags() if not tag.startswith("seq:step:")]


def _render_message(message: TracedMessage) -> str:
    parts = [message.content] if message.content else []
    parts.extend(
        f"[tool call] {call.get('name')}({_json(call.get('arguments'))})"
        for call in message.tool_calls
    )
    return "\n".join(parts)


def _render_conversation(messages: Sequence[TracedMessage]) -> str:
    if len(messages) == 1 and messages[0].role == "user":
        return messages[0].content
    return "\n\n".join(
        f"{_PROMPT_SPEAKERS.get(m.role, m.role.title())}: {_render_message(m)}" for m in messages
    )


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _unwrap(value: Any) -> Any:
    """The value inside single-key mappings ({"messages": [...]} -> [...])."""
    while isinstance(value, Mapping) and len(value) == 1:
        value = next(iter(value.values()))
    return value


def _conversation(value: Any) -> tuple[TracedMessage, ...]:
    """Chat messages in any shape a chain passes them: (role, text) pairs, {"role", "content"}
    dicts, GenAI {"role", "parts"} dicts or LangChain {"type", "content"} dumps; else ()."""
    if not isinstance(value, list) or not value:
        return ()
    messages = []
    for item in value:
        if isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[0], str):
            role, text = item[0], _as_text(item[1])
        elif isinstance(item, Mapping) and isinstance(item.get("role") or item.get("type"), str):
            role = str(item.get("role") or item.get("type"))
            if "parts" in item:
                text = "\n".join(
                    _as_text(part.get("content", part.get("response")))
                    for part in item["parts"] or ()
                    if isinstance(part, Mapping) and part.get("type") != "tool_call"
                )
            else:
                text = _as_text(item.get("content"))
        else:
            return ()
        messages.append(TracedMessage(role=_ROLE_ALIASES.get(role, role), content=text))
    return tuple(messages)


def _as_text(value: Any) -> str:
    """A chain input or output as a reviewer would want to read it."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        if isinstance(value.get("content"), str):
            return str(value["content"])
        if len(value) == 1:
            return _as_text(next(iter(value.values())))
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def _total(values: Any) -> int | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None
