"""`response_facts` reads a model response in one pass; it must agree with the four readers it
stands in for (usage, response model, finish reasons, response id) on any response shape."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, Generation, LLMResult

from otel_bridge import _extract

names = st.sampled_from(["", "gpt-4o", "claude", "m-1"])
reasons = st.sampled_from([None, "", "stop", "length", "tool_calls", 3])
ids = st.sampled_from([None, "", "resp-1", "resp-2", 7])
counts = st.one_of(st.none(), st.integers(min_value=0, max_value=10_000))


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


@settings(max_examples=300, deadline=None)
@given(
    batches=st.lists(st.lists(generations(), max_size=3), max_size=3),
    llm_output=llm_outputs(),
)
def test_one_pass_agrees_with_each_reader(
    batches: list[list[Generation]], llm_output: dict[str, Any] | None
) -> None:
    response = LLMResult(generations=batches, llm_output=llm_output)
    assert _extract.response_facts(response) == (
        _extract.usage(response),
        _extract.response_model(response),
        _extract.finish_reasons(response),
        _extract.response_id(response),
    )


def test_one_pass_reads_a_typical_chat_response() -> None:
    message = AIMessage(
        content="hi",
        response_metadata={"model_name": "gpt-4o-2024", "finish_reason": "stop", "id": "r-9"},
        usage_metadata={"input_tokens": 3, "output_tokens": 2, "total_tokens": 5},
    )
    response = LLMResult(generations=[[ChatGeneration(message=message)]])
    assert _extract.response_facts(response) == (
        _extract.Usage(3, 2),
        "gpt-4o-2024",
        ("stop",),
        "r-9",
    )
