"""Token usage summed per model across the runs of a trace, exactly, also when threads end runs
concurrently. Real LangChain runnables and `FakeChatModel`."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from langchain_core.messages import (
    AIMessage,
    HumanMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, LLMResult
from opentelemetry.sdk.trace import TracerProvider

from otel_bridge.handler import OTelCallbackHandler
from otel_bridge.testing import FakeChatModel


def _chat_generation(**message_fields: Any) -> ChatGeneration:
    return ChatGeneration(message=AIMessage(content="out", **message_fields))


def test_usage_metadata_sums_per_model_across_runs(provider: TracerProvider) -> None:
    handler = OTelCallbackHandler(tracer_provider=provider)
    first = FakeChatModel(model_name="model-a", responses=["one two three"])
    second = FakeChatModel(model_name="model-b", responses=["x"])
    config: Any = {"callbacks": [handler]}
    for _ in range(3):
        first.invoke("hello there", config=config)
    second.invoke("four words right here", config=config)
    assert handler.usage_metadata == {
        "model-a": UsageMetadata(input_tokens=6, output_tokens=9, total_tokens=15),
        "model-b": UsageMetadata(input_tokens=4, output_tokens=1, total_tokens=5),
    }
    # A snapshot: changing it does not change the handler's totals.
    handler.usage_metadata["model-a"]["input_tokens"] = 0
    assert handler.usage_metadata["model-a"]["input_tokens"] == 6


def test_usage_metadata_sums_exactly_when_threads_end_runs_concurrently(
    provider: TracerProvider,
) -> None:
    handler = OTelCallbackHandler(tracer_provider=provider, capture_content=False)
    threads_count, runs_per_thread = 8, 200
    barrier = threading.Barrier(threads_count)
    failures: list[BaseException] = []

    def work(index: int) -> None:
        try:
            model = f"model-{index % 2}"
            result = LLMResult(
                generations=[
                    [
                        _chat_generation(
                            response_metadata={"model_name": model},
                            usage_metadata=UsageMetadata(
                                input_tokens=index + 1, output_tokens=2, total_tokens=index + 3
                            ),
                        )
                    ]
                ]
            )
            run_ids = [uuid.uuid4() for _ in range(runs_per_thread)]
            for run_id in run_ids:
                handler.on_chat_model_start({"name": "M"}, [[HumanMessage("hi")]], run_id=run_id)
            barrier.wait()
            for run_id in run_ids:
                handler.on_llm_end(result, run_id=run_id)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    even = sum(index + 1 for index in range(0, threads_count, 2)) * runs_per_thread
    odd = sum(index + 1 for index in range(1, threads_count, 2)) * runs_per_thread
    outputs = 2 * runs_per_thread * threads_count // 2
    assert handler.usage_metadata == {
        "model-0": UsageMetadata(
            input_tokens=even, output_tokens=outputs, total_tokens=even + outputs
        ),
        "model-1": UsageMetadata(
            input_tokens=odd, output_tokens=outputs, total_tokens=odd + outputs
        ),
    }
    assert handler.open_runs == 0
