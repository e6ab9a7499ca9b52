"""The task encoder on traces of real chains (the only stand-in is the LLM API: the fake models
of `otel_bridge.testing`, via `tests.chains`)."""

from __future__ import annotations

import pytest
from otel_bridge_labelstudio import LabelStudioMode, TaskGranularity, default_label_config
from otel_bridge_labelstudio._encoder import TaskEncoder
from otel_bridge_labelstudio._label_config import bind_label_config

from otel_bridge.sink import span_key
from tests import chains

from .test_label_config import TRANSCRIPT_CONFIG


def encoder(mode: str, **options: object) -> TaskEncoder:
    return TaskEncoder(bind_label_config(default_label_config(mode), mode), **options)  # type: ignore[arg-type]


def prediction_texts(payload: dict) -> list[str]:
    (prediction,) = payload["predictions"]
    (result,) = prediction["result"]
    assert result["type"] == "textarea"
    return result["value"]["text"]


def test_chat_model_in_prompt_mode_shows_the_conversation_as_text() -> None:
    trace = chains.trace_of(chains.chat_model(), chains.chat_messages())
    (task,) = encoder("prompt").encode(trace)
    (call,) = trace.llm_calls()
    data = task.payload["data"]
    assert data["prompt"] == "System: You are a polite assistant.\n\nHuman: Say hello in French."
    assert prediction_texts(task.payload) == [chains.CHAT_ANSWER]
    assert task.payload["predictions"][0]["model_version"] == "fake-chat-model"
    assert task.payload["predictions"][0]["result"][0]["from_name"] == "response"
    assert task.payload["predictions"][0]["result"][0]["to_name"] == "prompt"
    assert data["otel_span_key"] == task.span_key == span_key(trace.trace_id, call.span_id)
    assert data["otel_trace_id"] == task.trace_key == format(trace.trace_id, "032x")
    assert data["model"] == "fake-chat-model"
    assert (data["input_tokens"], data["output_tokens"]) == (call.input_tokens, call.output_tokens)
    assert data["latency_s"] == pytest.approx(call.latency_s, abs=1e-6)


def test_plain_llm_in_chat_mode_becomes_a_one_message_dialogue() -> None:
    trace = chains.trace_of(chains.completion_chain(), {"topic": "otters"}, {"tags": ["nightly"]})
    (task,) = encoder("chat").encode(trace)
    assert task.payload["data"]["tags"] == ["nightly"]
    assert task.payload["data"]["prompt"] == [
        {"role": "human", "content": "Tell a story about otters."}
    ]
    assert prediction_texts(task.payload) == [chains.COMPLETION]
    assert task.payload["predictions"][0]["result"][0]["to_name"] == "dialogue"


def test_dialogue_roles_are_mapped_and_tool_calls_shown() -> None:
    trace = chains.trace_of(chains.agent(), {"messages": [("user", chains.AGENT_QUESTION)]})
    first, second = encoder("chat").encode(trace)
    assert [m["role"] for m in first.payload["data"]["prompt"]] == ["system", "human"]
    dialogue = second.payload["data"]["prompt"]
    assert [m["role"] for m in dialogue] == ["system", "human", "ai", "tool"]
    assert 'get_weather({"city": "Paris"})' in dialogue[2]["content"]
    assert dialogue[3]["content"] == "sunny and 21 degrees in Paris"
    assert prediction_texts(second.payload) == [chains.AGENT_ANSWER]


def test_custom_config_keys_are_used_for_data_and_prediction() -> None:
    binding = bind_label_config(TRANSCRIPT_CONFIG, LabelStudioMode.CHAT)
    trace = chains.trace_of(chains.chat_model(), chains.chat_messages())
    (task,) = TaskEncoder(binding).encode(trace)
    assert task.payload["data"]["messages"] == [
        {"speaker": "system", "says": "You are a polite assistant."},
        {"speaker": "human", "says": "Say hello in French."},
    ]
    result = task.payload["predictions"][0]["result"][0]
    assert (result["from_name"], result["to_name"]) == ("better_reply", "transcript")


def test_one_task_per_trace_holds_root_input_and_final_output() -> None:
    trace = chains.trace_of(chains.rag_chain(), chains.QUESTION)
    (task,) = encoder("prompt", granularity=TaskGranularity.TRACE).encode(trace)
    root = trace.run_root()
    assert root is not None
    assert task.span_key == span_key(trace.trace_id, root.span_id)
    assert task.payload["data"]["prompt"] == chains.QUESTION
    assert task.payload["data"]["llm_calls"] == 1
    assert prediction_texts(task.payload) == [chains.RAG_ANSWER]


def test_one_task_per_trace_of_an_agent_answers_with_its_last_message() -> None:
    trace = chains.trace_of(chains.agent(), {"messages": [("user", chains.AGENT_QUESTION)]})
    (task,) = encoder("chat", granularity=TaskGranularity.TRACE).encode(trace)
    assert task.payload["data"]["prompt"] == [{"role": "human", "content": chains.AGENT_QUESTION}]
    assert task.payload["data"]["llm_calls"] == 2
    assert prediction_texts(task.payload) == [chains.AGENT_ANSWER]


def test_a_trace_without_model_calls_gives_no_task_per_call() -> None:
    trace = chains.trace_of(chains.failing_chain(), {"question": "?"}, expect_error=Exception)
    assert encoder("prompt").encode(trace) == ()


def test_a_failed_model_call_is_a_task_with_its_error_and_no_prediction() -> None:
    model = chains.chat_model(error=TimeoutError("upstream timed out"))
    trace = chains.trace_of(model, chains.chat_messages(), expect_error=TimeoutError)
    (task,) = encoder("prompt").encode(trace)
    assert task.payload["data"]["error"] == "TimeoutError"
    assert "predictions" not in task.payload


def test_trace_url_template_links_each_task_to_its_trace() -> None:
    trace = chains.trace_of(chains.chat_model(), chains.chat_messages())
    (call,) = trace.llm_calls()
    template = "http://jaeger.local:16686/trace/{trace_id}?uiFind={span_id}"
    (task,) = encoder("prompt", trace_url_template=template).encode(trace)
    assert task.payload["data"]["trace_url"] == (
        f"http://jaeger.local:16686/trace/{trace.trace_id:032x}?uiFind={call.span_id:016x}"
    )


def test_a_bad_trace_url_template_is_refused_with_the_allowed_fields() -> None:
    with pytest.raises(ValueError, match=r"\{trace_id\} and \{span_id\}"):
        encoder("prompt", trace_url_template="http://x/{traceId}")


@pytest.mark.parametrize("granularity", list(TaskGranularity))
def test_a_trace_made_without_content_makes_no_half_empty_task(
    granularity: TaskGranularity,
) -> None:
    trace = chains.trace_of(chains.chat_model(), chains.chat_messages(), capture_content=False)
    assert trace.llm_calls()  # the call was traced, only without its content
    assert encoder("chat", granularity=granularity).encode(trace) == ()
