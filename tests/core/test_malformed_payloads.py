"""Malformed callback payloads (metadata, invocation params, generations, response models that
fail when read) cost only their own attributes: the span still ends, one line is logged, and
nothing is raised into the caller unless the handler was built with raise_error.

Payloads LangChain never builds are handed to the handler's callbacks directly."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    HumanMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, Generation, LLMResult
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_bridge import semconv
from otel_bridge.handler import OTelCallbackHandler


def _only(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = exporter.get_finished_spans()
    return span


def _attributes_of_both_runs(exporter: InMemorySpanExporter) -> list[Mapping[str, Any]]:
    """The attributes of each span of a test that ran the same malformed run twice."""
    spans = exporter.get_finished_spans()
    assert len(spans) == 2
    return [span.attributes or {} for span in spans]


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "otel_bridge" and record.levelno >= logging.WARNING
    ]


class _ItemsRaise(Mapping[str, Any]):
    """A mapping whose `items()` fails while lookups work."""

    def __init__(self, entries: dict[str, Any]) -> None:
        self._entries = entries

    def __getitem__(self, key: str) -> Any:
        return self._entries[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> Any:
        raise RuntimeError("items() is broken")


class _GetRaises(Mapping[str, Any]):
    """A mapping every lookup of which fails."""

    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("lookup is broken")

    def get(self, key: str, default: Any = None) -> Any:
        raise RuntimeError("lookup is broken")

    def __iter__(self) -> Iterator[str]:
        return iter(("model",))

    def __len__(self) -> int:
        return 1


def test_metadata_whose_items_fail_costs_only_metadata_logs_once_and_never_raises(
    provider: TracerProvider, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    handler = OTelCallbackHandler(tracer_provider=provider)
    before = otel_context.get_current()
    with caplog.at_level(logging.WARNING, logger="otel_bridge"):
        for _ in range(2):
            run_id = uuid.uuid4()
            handler.on_chain_start(
                {"name": "c"},
                {"question": "q"},
                run_id=run_id,
                tags=["t"],
                metadata=_ItemsRaise({"user": "u-1", "thread_id": "t-1"}),
            )
            handler.on_chain_end({"answer": "a"}, run_id=run_id)
    for attributes in _attributes_of_both_runs(exporter):
        assert attributes[semconv.LANGCHAIN_INPUT] == '{"question":"q"}'
        assert attributes[semconv.LANGCHAIN_OUTPUT] == '{"answer":"a"}'
        assert attributes[semconv.RUN_TAGS] == ("t",)
        assert not any(key.startswith(semconv.RUN_METADATA_PREFIX) for key in attributes)
    assert len(_warnings(caplog)) == 1
    assert otel_context.get_current() is before


def test_metadata_whose_items_fail_still_yields_the_conversation_id(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    handler = OTelCallbackHandler(tracer_provider=provider)
    run_id = uuid.uuid4()
    handler.on_chain_start(
        {"name": "c"}, {}, run_id=run_id, metadata=_ItemsRaise({"thread_id": "t-1"})
    )
    handler.on_chain_end({}, run_id=run_id)
    assert (_only(exporter).attributes or {}).get(semconv.GEN_AI_CONVERSATION_ID) == "t-1"


def test_metadata_failure_raises_with_raise_error_and_leaves_nothing_open(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    handler = OTelCallbackHandler(tracer_provider=provider, raise_error=True)
    before = otel_context.get_current()
    with pytest.raises(RuntimeError, match="items"):
        handler.on_chain_start(
            {"name": "c"}, {}, run_id=uuid.uuid4(), metadata=_ItemsRaise({"user": "u"})
        )
    assert handler.open_runs == 0
    assert exporter.get_finished_spans() == ()
    assert otel_context.get_current() is before


def test_metadata_with_only_langchain_entries_and_nested_values_adds_nothing_but_others_do(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    handler = OTelCallbackHandler(tracer_provider=provider)
    cases: list[dict[str, Any]] = [
        {"ls_provider": "p", "ls_model_name": "m", "nested": {"thread_id": "x"}, "list": [1]},
        {"ls_provider": "p", "session_id": 7},
        {"ls_x": 1, 3: "non-str key", "api_key": "sk-secret", "flag": True},
    ]
    for metadata in cases:
        run_id = uuid.uuid4()
        handler.on_chain_start({"name": "c"}, {}, run_id=run_id, metadata=metadata)
        handler.on_chain_end({}, run_id=run_id)
    first, second, third = (dict(s.attributes or {}) for s in exporter.get_finished_spans())
    prefix = semconv.RUN_METADATA_PREFIX
    assert not any(key.startswith(prefix) for key in first)
    assert semconv.GEN_AI_CONVERSATION_ID not in first
    assert second[prefix + "session_id"] == 7
    assert second[semconv.GEN_AI_CONVERSATION_ID] == "7"
    assert {key: value for key, value in third.items() if key.startswith(prefix)} == {
        prefix + "flag": True
    }


def test_invocation_params_whose_lookups_fail_cost_only_the_request_attributes(
    provider: TracerProvider, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    handler = OTelCallbackHandler(tracer_provider=provider)
    with caplog.at_level(logging.WARNING, logger="otel_bridge"):
        for _ in range(2):
            run_id = uuid.uuid4()
            handler.on_chat_model_start(
                {"name": "Model"},
                [[HumanMessage("hi")]],
                run_id=run_id,
                metadata={"ls_provider": "fake", "ls_model_name": "m-1"},
                invocation_params=_GetRaises(),
            )
            handler.on_llm_end(LLMResult(generations=[[Generation(text="x")]]), run_id=run_id)
    for attributes in _attributes_of_both_runs(exporter):
        assert attributes[semconv.GEN_AI_OPERATION_NAME] == semconv.OP_CHAT
        assert attributes[semconv.GEN_AI_PROVIDER_NAME] == "fake"
        assert semconv.GEN_AI_REQUEST_TEMPERATURE not in attributes
        assert semconv.GEN_AI_TOOL_DEFINITIONS not in attributes
        assert (
            attributes[semconv.GEN_AI_INPUT_MESSAGES]
            == '[{"role":"user","parts":[{"type":"text","content":"hi"}]}]'
        )
    # The model, the parameters and the tool definitions are three attributes, each logged once.
    assert len(_warnings(caplog)) == 3
    assert handler.open_runs == 0

    strict = OTelCallbackHandler(tracer_provider=provider, raise_error=True)
    with pytest.raises(RuntimeError, match="lookup"):
        strict.on_chat_model_start(
            {"name": "Model"},
            [[HumanMessage("hi")]],
            run_id=uuid.uuid4(),
            invocation_params=_GetRaises(),
        )
    assert strict.open_runs == 0


def _chat_generation(**message_fields: Any) -> ChatGeneration:
    return ChatGeneration(message=AIMessage(content="out", **message_fields))


_LLM_OUTPUT = {"model_name": "from-llm-output", "id": "out-id", "token_usage": {"prompt_tokens": 3}}


def test_generations_that_are_not_lists_cost_only_finish_reasons_and_output_messages(
    provider: TracerProvider, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    handler = OTelCallbackHandler(tracer_provider=provider)
    # A flat list of generations: iterating one yields pydantic (field, value) pairs.
    response = LLMResult.model_construct(
        generations=[Generation(text="a"), Generation(text="b")], llm_output=_LLM_OUTPUT
    )
    with caplog.at_level(logging.WARNING, logger="otel_bridge"):
        for _ in range(2):
            run_id = uuid.uuid4()
            handler.on_llm_start({"name": "L"}, ["p"], run_id=run_id)
            handler.on_llm_end(response, run_id=run_id)
    for attributes in _attributes_of_both_runs(exporter):
        assert attributes[semconv.GEN_AI_RESPONSE_MODEL] == "from-llm-output"
        assert attributes[semconv.GEN_AI_RESPONSE_ID] == "out-id"
        assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 3
        assert semconv.GEN_AI_RESPONSE_FINISH_REASONS not in attributes
        assert semconv.GEN_AI_OUTPUT_MESSAGES not in attributes
    # Finish reasons and output messages: two attributes, each logged once over both runs.
    assert len(_warnings(caplog)) == 2
    assert handler.usage_metadata == {
        "from-llm-output": UsageMetadata(input_tokens=6, output_tokens=0, total_tokens=6)
    }


def test_malformed_generation_info_costs_only_finish_reasons(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    handler = OTelCallbackHandler(tracer_provider=provider, capture_content=False)
    generation = ChatGeneration.model_construct(
        message=AIMessage(
            content="x",
            response_metadata={"model_name": "m", "id": "resp-1"},
            usage_metadata=UsageMetadata(input_tokens=2, output_tokens=5, total_tokens=7),
        ),
        generation_info=["not", "a", "mapping"],
        text="x",
    )
    run_id = uuid.uuid4()
    handler.on_chat_model_start({"name": "M"}, [[HumanMessage("hi")]], run_id=run_id)
    handler.on_llm_end(LLMResult(generations=[[generation]]), run_id=run_id)
    attributes = _only(exporter).attributes or {}
    assert attributes[semconv.GEN_AI_RESPONSE_MODEL] == "m"
    assert attributes[semconv.GEN_AI_RESPONSE_ID] == "resp-1"
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 2
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 5
    assert semconv.GEN_AI_RESPONSE_FINISH_REASONS not in attributes


def test_malformed_response_raises_with_raise_error_and_the_span_still_ends(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    handler = OTelCallbackHandler(tracer_provider=provider, raise_error=True)
    before = otel_context.get_current()
    run_id = uuid.uuid4()
    handler.on_llm_start({"name": "L"}, ["p"], run_id=run_id)
    response = LLMResult.model_construct(generations=[Generation(text="a")], llm_output=None)
    with pytest.raises(AttributeError):
        handler.on_llm_end(response, run_id=run_id)
    assert len(exporter.get_finished_spans()) == 1
    assert handler.open_runs == 0
    assert otel_context.get_current() is before


class _UnequalStr(str):
    """A string no comparison works on (as some proxy strings behave)."""

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no comparisons")

    def __ne__(self, other: object) -> bool:
        raise RuntimeError("no comparisons")

    __hash__ = str.__hash__


def test_response_model_whose_comparison_raises_costs_only_that_attribute(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    handler = OTelCallbackHandler(tracer_provider=provider)
    run_id = uuid.uuid4()
    handler.on_chat_model_start({"name": "M"}, [[HumanMessage("hi")]], run_id=run_id)
    generation = _chat_generation(
        response_metadata={"model_name": _UnequalStr("m"), "id": "resp-1"},
        usage_metadata=UsageMetadata(input_tokens=1, output_tokens=1, total_tokens=2),
    )
    handler.on_llm_end(LLMResult(generations=[[generation]]), run_id=run_id)
    attributes = _only(exporter).attributes or {}
    assert attributes.get(semconv.GEN_AI_RESPONSE_ID) == "resp-1"
    assert attributes.get(semconv.GEN_AI_USAGE_INPUT_TOKENS) == 1
