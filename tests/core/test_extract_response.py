"""The four readers of a model response (usage, response model, finish reasons, response id),
each called under its own guard at the end of every model run, agree on any response shape with
an independent one-pass reading of it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import (
    AIMessage,
    HumanMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, Generation, LLMResult
from opentelemetry.sdk.trace import TracerProvider

from otel_bridge import _extract
from otel_bridge.handler import OTelCallbackHandler
from otel_bridge.testing import FakeChatModel

names = st.sampled_from(["", "gpt-4o", "claude", "m-1"])
reasons = st.sampled_from([None, "", "stop", "length", "tool_calls", 3])
ids = st.sampled_from([None, "", "resp-1", "resp-2", 7])
counts = st.one_of(st.none(), st.integers(min_value=0, max_value=10_000))


def read_in_one_pass(
    response: LLMResult,
) -> tuple[_extract.Usage | None, str | None, tuple[str, ...], str | None]:
    """The four facts read in one pass over the generations, sharing only the per-value helpers
    with `_extract`: the oracle its readers are checked against."""
    summed = _extract._UsageSum()
    model: str | None = None
    reasons: list[str] = []
    found_id: str | None = None
    for generation_list in response.generations:
        for generation in generation_list:
            info = generation.generation_info or {}
            if isinstance(generation, ChatGeneration):
                message = generation.message
                metadata = message.response_metadata or {}
                usage_metadata = getattr(message, "usage_metadata", None)
                if usage_metadata:
                    summed.add(usage_metadata)
                if model is None:
                    model = _extract._first_model(metadata)
                if found_id is None:
                    value = metadata.get("id")
                    if isinstance(value, str) and value:
                        found_id = value
            else:
                metadata = {}
            reason = _extract._finish_reason(info, metadata)
            if reason is not None:
                reasons.append(reason)
    llm_output = response.llm_output
    usage = summed.usage() if summed.found else _extract._llm_output_usage(llm_output)
    if model is None:
        model = _extract._first_model(llm_output)
    if found_id is None and llm_output:
        value = llm_output.get("id")
        if isinstance(value, str) and value:
            found_id = value
    return usage, model, tuple(reasons), found_id


@st.composite
def response_metadata(draw: st.DrawFn) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    for key, values in (
        ("model_name", names),
        ("model", names),
        ("finish_reason", reasons),
        ("stop_reason", reasons),
        ("id", ids),
    ):
        if draw(st.booleans()):
            metadata[key] = draw(values)
    return metadata


@st.composite
def generations(draw: st.DrawFn) -> Generation:
    info = draw(
        st.none()
        | st.fixed_dictionaries({}, optional={"finish_reason": reasons, "stop_reason": reasons})
    )
    if draw(st.booleans()):
        return Generation(text=draw(st.text(max_size=5)), generation_info=info)
    usage = None
    if draw(st.booleans()):
        input_tokens, output_tokens = draw(counts), draw(counts)
        usage = {
            "input_tokens": input_tokens or 0,
            "output_tokens": output_tokens or 0,
            "total_tokens": (input_tokens or 0) + (output_tokens or 0),
        }
    message: Any
    if draw(st.booleans()):
        message = AIMessage(
            content="answer", response_metadata=draw(response_metadata()), usage_metadata=usage
        )
    else:
        # A chat generation may carry any message class, one without usage_metadata too.
        message = HumanMessage(content="echo", response_metadata=draw(response_metadata()))
    return ChatGeneration(message=message, generation_info=info)


@st.composite
def llm_outputs(draw: st.DrawFn) -> dict[str, Any] | None:
    if draw(st.booleans()):
        return None
    output: dict[str, Any] = {}
    if draw(st.booleans()):
        output["model_name"] = draw(names)
    if draw(st.booleans()):
        output["id"] = draw(ids)
    if draw(st.booleans()):
        output[draw(st.sampled_from(["token_usage", "usage"]))] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "prompt_tokens": counts,
                    "completion_tokens": counts,
                    "input_tokens": counts,
                    "output_tokens": counts,
                },
            )
        )
    return output


def _each_reader(response: LLMResult) -> tuple[Any, ...]:
    """What the four readers on_llm_end calls read, in the order the one-pass oracle returns."""
    return (
        _extract.usage(response),
        _extract.response_model(response),
        _extract.finish_reasons(response),
        _extract.response_id(response),
    )


@settings(max_examples=300, deadline=None)
@given(
    batches=st.lists(st.lists(generations(), max_size=3), max_size=3),
    llm_output=llm_outputs(),
)
def test_each_reader_agrees_with_a_one_pass_reading(
    batches: list[list[Generation]], llm_output: dict[str, Any] | None
) -> None:
    response = LLMResult(generations=batches, llm_output=llm_output)
    assert read_in_one_pass(response) == _each_reader(response)


def test_readers_read_a_typical_chat_response() -> None:
    message = AIMessage(
        content="hi",
        response_metadata={"model_name": "gpt-4o-2024", "finish_reason": "stop", "id": "r-9"},
        usage_metadata={"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
    )
    response = LLMResult(generations=[[ChatGeneration(message=message)]])
    assert _each_reader(response) == (
        _extract.Usage(3, 2),
        "gpt-4o-2024",
        ("stop",),
        "r-9",
    )


def _chat_generation(**message_fields: Any) -> ChatGeneration:
    return ChatGeneration(message=AIMessage(content="out", **message_fields))


def _responses() -> list[LLMResult]:
    usage = UsageMetadata(input_tokens=4, output_tokens=6, total_tokens=10)
    return [
        LLMResult(generations=[]),
        LLMResult(generations=[[]], llm_output={"model": "lo", "id": ""}),
        LLMResult(
            generations=[
                [Generation(text="a", generation_info={"stop_reason": "length"})],
                [
                    _chat_generation(
                        response_metadata={"model_id": "m2", "stop_reason": "end", "id": ""},
                        usage_metadata=usage,
                    ),
                    _chat_generation(
                        response_metadata={"model_name": "m3", "id": "r3"}, usage_metadata=usage
                    ),
                ],
            ],
            llm_output={"model_name": "lo", "id": "lo-id", "usage": {"output_tokens": 9}},
        ),
        LLMResult(
            generations=[[Generation(text="b")], [Generation(text="c")]],
            llm_output={"usage": {"input_tokens": 1, "output_tokens": 2}, "id": "only-lo"},
        ),
    ]


@pytest.mark.parametrize("response", _responses())
def test_the_four_guarded_extractors_agree_with_a_one_pass_reading(response: LLMResult) -> None:
    assert read_in_one_pass(response) == _each_reader(response)


def test_the_extractors_agree_with_a_one_pass_reading_of_a_real_model_result() -> None:
    seen: list[LLMResult] = []

    class Keep(OTelCallbackHandler):
        def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
            seen.append(response)

    model = FakeChatModel(responses=["one two", AIMessage(content="x", id="m-1")])
    model.batch(["a", "b c"], config={"callbacks": [Keep(tracer_provider=TracerProvider())]})
    assert len(seen) == 2
    for response in seen:
        assert read_in_one_pass(response) == _each_reader(response)
