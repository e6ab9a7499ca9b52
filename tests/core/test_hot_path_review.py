"""Review of the handler's hot-path changes: the lazy age check of the open-run registry, the
one-pass extraction with its guarded fallback, usage sums, pooled content encoders and the
context read once per start. Each test pins behaviour the previous, slower code had.

Real SDK spans (`InMemorySpanExporter`), real LangChain runnables and `FakeChatModel`; payloads
LangChain never builds are handed to the handler's callbacks directly. Time comes from a fake
clock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, Generation, LLMResult
from langchain_core.prompt_values import ChatPromptValue
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_bridge import _extract, semconv
from otel_bridge._content import ContentPolicy, _dumps, _Shrinker, encode
from otel_bridge._registry import (
    EVICTED_OVER_CAPACITY,
    EVICTED_RESTARTED,
    EVICTED_TOO_OLD,
    OpenRunRegistry,
)
from otel_bridge._run_context import RunScopedContext
from otel_bridge.handler import OTelCallbackHandler
from otel_bridge.testing import FakeChatModel
from tests.core.test_extract_response import read_in_one_pass
from tests.support.clock import FakeClock


def _only(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = exporter.get_finished_spans()
    return span


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "otel_bridge" and record.levelno >= logging.WARNING
    ]


# --- registry: the lazy age check ---------------------------------------------------------------


class _Recorder:
    def __init__(self) -> None:
        self.evicted: list[tuple[str, str]] = []

    def __call__(self, run_id: uuid.UUID, run: str, reason: str) -> None:
        self.evicted.append((run, reason))


def _registry(
    clock: FakeClock, *, max_runs: int = 100, max_age_s: float = 10.0
) -> tuple[OpenRunRegistry[str], _Recorder, dict[str, uuid.UUID]]:
    recorder = _Recorder()
    registry: OpenRunRegistry[str] = OpenRunRegistry(
        max_runs=max_runs, max_age_s=max_age_s, clock=clock, on_evict=recorder
    )
    ids: dict[str, uuid.UUID] = {}
    return registry, recorder, ids


def _add(
    registry: OpenRunRegistry[str], ids: dict[str, uuid.UUID], clock: FakeClock, name: str
) -> None:
    run_id = ids.setdefault(name, uuid.uuid4())
    registry.add(run_id, name, clock())


def test_age_eviction_happens_exactly_at_the_oldest_entrys_age_after_entries_come_and_go() -> None:
    clock = FakeClock(0.0)
    registry, recorder, ids = _registry(clock)
    _add(registry, ids, clock, "a")
    clock.now = 5.0
    _add(registry, ids, clock, "b")
    clock.now = 6.0
    assert registry.pop(ids["a"]) == "a"
    clock.now = 9.0
    _add(registry, ids, clock, "c")
    # "a" is gone; "b" (started at 5) is the oldest and is not too old before 15.
    clock.now = 14.999
    _add(registry, ids, clock, "d")
    assert recorder.evicted == []
    clock.now = 15.0
    _add(registry, ids, clock, "e")
    assert recorder.evicted == [("b", EVICTED_TOO_OLD)]
    clock.now = 18.999
    _add(registry, ids, clock, "f")
    assert recorder.evicted == [("b", EVICTED_TOO_OLD)]
    clock.now = 19.0
    _add(registry, ids, clock, "g")
    assert recorder.evicted[1:] == [("c", EVICTED_TOO_OLD)]
    assert len(registry) == 4
    assert registry.evicted == 2


def test_restarted_run_is_evicted_once_and_then_aged_from_its_restart() -> None:
    clock = FakeClock(0.0)
    registry, recorder, ids = _registry(clock)
    _add(registry, ids, clock, "a")
    clock.now = 3.0
    _add(registry, ids, clock, "a")
    assert recorder.evicted == [("a", EVICTED_RESTARTED)]
    clock.now = 12.999
    _add(registry, ids, clock, "b")
    assert recorder.evicted == [("a", EVICTED_RESTARTED)]
    assert registry.get(ids["a"]) == "a"
    clock.now = 13.0
    _add(registry, ids, clock, "c")
    assert recorder.evicted[1:] == [("a", EVICTED_TOO_OLD)]
    assert registry.get(ids["a"]) is None


def test_over_capacity_eviction_moves_the_age_deadline_to_the_new_oldest() -> None:
    clock = FakeClock(0.0)
    registry, recorder, ids = _registry(clock, max_runs=2)
    for name, now in (("a", 0.0), ("b", 4.0), ("c", 6.0)):
        clock.now = now
        _add(registry, ids, clock, name)
    assert recorder.evicted == [("a", EVICTED_OVER_CAPACITY)]
    clock.now = 13.999
    registry.pop(ids["c"])
    _add(registry, ids, clock, "d")
    assert recorder.evicted == [("a", EVICTED_OVER_CAPACITY)]
    clock.now = 14.0
    registry.pop(ids["d"])
    _add(registry, ids, clock, "e")
    assert recorder.evicted[1:] == [("b", EVICTED_TOO_OLD)]


def test_end_stale_evicts_without_a_start_and_later_starts_still_age_out() -> None:
    clock = FakeClock(0.0)
    registry, recorder, ids = _registry(clock)
    _add(registry, ids, clock, "a")
    clock.now = 9.999
    assert registry.end_stale() == 0
    clock.now = 10.0
    assert registry.end_stale() == 1
    assert recorder.evicted == [("a", EVICTED_TOO_OLD)]
    # The registry is empty now; entries added later must still be aged from their own start.
    clock.now = 10.5
    _add(registry, ids, clock, "b")
    clock.now = 11.0
    assert registry.end_stale() == 0
    clock.now = 20.5
    _add(registry, ids, clock, "c")
    assert recorder.evicted[1:] == [("b", EVICTED_TOO_OLD)]
    assert registry.drain() == [(ids["c"], "c")]
    clock.now = 100.0
    _add(registry, ids, clock, "d")
    clock.now = 110.0
    _add(registry, ids, clock, "e")
    assert recorder.evicted[2:] == [("d", EVICTED_TOO_OLD)]


def test_registry_evicts_like_a_full_check_on_every_start_over_random_histories() -> None:
    """Against a reference that looks at every entry on every start (the old behaviour)."""
    rng = random.Random(20261121)
    for _ in range(200):
        clock = FakeClock(0.0)
        max_runs = rng.randint(1, 6)
        registry, recorder, ids = _registry(clock, max_runs=max_runs, max_age_s=10.0)
        reference: dict[str, float] = {}
        expected: list[tuple[str, str]] = []
        for _step in range(60):
            clock.now += rng.choice((0.0, 0.5, 1.0, 3.0, 7.0))
            action = rng.random()
            name = f"r{rng.randint(0, 9)}"
            if action < 0.55:
                if name in reference:
                    del reference[name]
                    restarted = True
                else:
                    restarted = False
                reference[name] = clock.now
                while len(reference) > max_runs:
                    oldest = next(iter(reference))
                    del reference[oldest]
                    expected.append((oldest, EVICTED_OVER_CAPACITY))
                for old_name, started in list(reference.items()):
                    if started <= clock.now - 10.0:
                        del reference[old_name]
                        expected.append((old_name, EVICTED_TOO_OLD))
                if restarted:
                    expected.append((name, EVICTED_RESTARTED))
                _add(registry, ids, clock, name)
            elif action < 0.9:
                reference.pop(name, None)
                registry.pop(ids.get(name, uuid.uuid4()))
            else:
                for old_name, started in list(reference.items()):
                    if started <= clock.now - 10.0:
                        del reference[old_name]
                        expected.append((old_name, EVICTED_TOO_OLD))
                registry.end_stale()
            assert recorder.evicted == expected
            assert len(registry) == len(reference)


def test_handler_ends_a_never_ended_run_once_it_is_too_old_and_not_before(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    clock = FakeClock()
    handler = OTelCallbackHandler(tracer_provider=provider, max_run_age_s=60.0, clock=clock)
    stuck = uuid.uuid4()
    handler.on_chain_start({"name": "stuck"}, {}, run_id=stuck)
    # Runs come and go; the stuck run stays the oldest.
    chain = RunnableLambda(lambda x: x)
    for step in range(5):
        clock.now += 10.0
        chain.invoke(step, config={"callbacks": [handler]})
    clock.now = 1059.999
    chain.invoke("before", config={"callbacks": [handler]})
    assert handler.span_for_run(stuck) is not None
    clock.now = 1060.0
    chain.invoke("after", config={"callbacks": [handler]})
    assert handler.span_for_run(stuck) is None
    assert handler.evicted_runs == 1
    (evicted,) = [s for s in exporter.get_finished_spans() if s.name == "stuck"]
    assert evicted.status.status_code == trace.StatusCode.ERROR
    assert evicted.status.description == EVICTED_TOO_OLD
    assert handler.open_runs == 0
    # Evicting its scope must not leave it current: what the caller sees is what it had.
    assert type(otel_context.get_current()) is not RunScopedContext


# --- malformed payloads: each costs only its own attributes -------------------------------------


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
    spans = exporter.get_finished_spans()
    assert len(spans) == 2
    for span in spans:
        attributes = span.attributes or {}
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
    spans = exporter.get_finished_spans()
    assert len(spans) == 2
    for span in spans:
        attributes = span.attributes or {}
        assert attributes[semconv.GEN_AI_OPERATION_NAME] == semconv.OP_CHAT
        assert attributes[semconv.GEN_AI_PROVIDER_NAME] == "fake"
        assert semconv.GEN_AI_REQUEST_TEMPERATURE not in attributes
        assert (
            attributes[semconv.GEN_AI_INPUT_MESSAGES]
            == '[{"role":"user","parts":[{"type":"text","content":"hi"}]}]'
        )
    # The model, the parameters and the tool definitions are three attributes, each logged once.
    assert len(_warnings(caplog)) == 3
    assert all(semconv.GEN_AI_TOOL_DEFINITIONS not in (s.attributes or {}) for s in spans)
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
    spans = exporter.get_finished_spans()
    assert len(spans) == 2
    for span in spans:
        attributes = span.attributes or {}
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
    assert read_in_one_pass(response) == (
        _extract.usage(response),
        _extract.response_model(response),
        _extract.finish_reasons(response),
        _extract.response_id(response),
    )


def test_the_extractors_agree_with_a_one_pass_reading_of_a_real_model_result() -> None:
    seen: list[LLMResult] = []

    class Keep(OTelCallbackHandler):
        def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
            seen.append(response)

    model = FakeChatModel(responses=["one two", AIMessage(content="x", id="m-1")])
    model.batch(["a", "b c"], config={"callbacks": [Keep(tracer_provider=TracerProvider())]})
    assert len(seen) == 2
    for response in seen:
        assert read_in_one_pass(response) == (
            _extract.usage(response),
            _extract.response_model(response),
            _extract.finish_reasons(response),
            _extract.response_id(response),
        )


# --- usage sums ----------------------------------------------------------------------------------


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


# --- content encoding ----------------------------------------------------------------------------

_POLICY = ContentPolicy(max_length=1_000_000)


def _careful(value: Any) -> str:
    return _dumps(_Shrinker(None, None, None).convert(value))


def _nested(seed: int) -> Any:
    rng = random.Random(seed)

    def build(depth: int) -> Any:
        kind = rng.randint(0, 5 if depth < 4 else 2)
        if kind == 0:
            return rng.randint(-1000, 1000)
        if kind == 1:
            return f's{seed}-{rng.random()}\n"é\u2028'
        if kind == 2:
            return rng.choice([None, True, 1.5, -0.0])
        if kind == 3:
            return [build(depth + 1) for _ in range(rng.randint(0, 4))]
        if kind == 4:
            return (HumanMessage(f"m{seed}"), build(depth + 1))
        return {f"k{i}-{seed}": build(depth + 1) for i in range(rng.randint(0, 4))}

    return {"seed": seed, "value": build(0)}


def test_encodes_under_eight_threads_match_a_single_threaded_encode() -> None:
    values = [_nested(seed) for seed in range(40)]
    expected = [encode(value, _POLICY) for value in values]
    assert expected == [_careful(value) for value in values]
    barrier = threading.Barrier(8)
    results: dict[int, list[list[str]]] = {}
    failures: list[BaseException] = []

    def work(index: int) -> None:
        try:
            order = values[index:] + values[:index]
            barrier.wait()
            results[index] = [[encode(value, _POLICY) for value in order] for _ in range(50)]
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    for index, rounds in results.items():
        order = expected[index:] + expected[:index]
        for texts in rounds:
            assert texts == order


class _EncodesInRepr:
    """A value the encoder knows nothing about, whose repr encodes another value."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __repr__(self) -> str:
        return "Encodes(" + encode(self.inner, _POLICY) + ")"


def test_a_repr_that_encodes_gets_its_own_encoder_and_both_texts_are_right() -> None:
    inner = {"list": [1, 2, {"x": "y"}], "message": AIMessage("hi")}
    value = {"outer": [_EncodesInRepr(inner), _EncodesInRepr([inner, inner])], "after": 3}
    text = encode(value, _POLICY)
    assert text == _careful(value)
    decoded = json.loads(text)
    assert decoded["outer"][0] == "Encodes(" + _careful(inner) + ")"
    assert decoded["after"] == 3
    # The pool is still sound: a plain value encodes as before.
    assert encode({"a": [1, {"b": 2}]}, _POLICY) == '{"a":[1,{"b":2}]}'


def test_a_cyclic_value_leaves_no_stale_cycle_marks_for_the_next_value() -> None:
    shared = [1, 2]
    cyclic: dict[str, Any] = {"shared": shared}
    cyclic["self"] = cyclic
    assert json.loads(encode(cyclic, _POLICY)) == {"shared": [1, 2], "self": "[cycle]"}
    # The same containers, no longer cyclic, and a value holding the same list twice.
    del cyclic["self"]
    for _ in range(3):
        assert encode(cyclic, _POLICY) == '{"shared":[1,2]}'
        assert encode([shared, shared, {"s": shared}], _POLICY) == '[[1,2],[1,2],{"s":[1,2]}]'
    # A default conversion that fails mid-walk leaves nothing behind either.
    broken = BrokenModelDump()
    assert encode({"x": [shared, broken]}, _POLICY) == _careful({"x": [shared, broken]})
    assert encode({"x": [shared]}, _POLICY) == '{"x":[[1,2]]}'


class BrokenModelDump:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def _message_cases() -> list[Any]:
    tool_call = {
        "name": "search",
        "args": {"q": "x", "api_key": "sk"},
        "id": "c1",
        "type": "tool_call",
    }
    return [
        HumanMessage("plain"),
        HumanMessage(""),
        HumanMessage('quote " backslash \\ newline \n \u2028 é \x00'),
        SystemMessage("sys"),
        AIMessage("answer"),
        AIMessage("", tool_calls=[tool_call]),
        AIMessage("with calls", tool_calls=[tool_call]),
        AIMessage(
            content=[{"type": "text", "text": "block"}, "bare", {"type": "image", "url": "u"}]
        ),
        AIMessageChunk(content="chunk"),
        HumanMessage(content=["a", {"type": "text", "text": "b"}]),
        HumanMessage("extra calls", tool_calls=[{"id": "x", "name": "n", "args": {}}]),
        ChatMessage(content="custom role", role="critic"),
        ChatMessage(content="", role="user"),
        ToolMessage(content="result", tool_call_id="c1"),
        ToolMessage(content=[{"type": "text", "text": "r"}], tool_call_id="c2"),
        FunctionMessage(content="fn out", name="f"),
        HumanMessage("mentions a token and a password"),
    ]


@pytest.mark.parametrize("message", _message_cases(), ids=lambda m: type(m).__name__)
def test_messages_encode_like_the_careful_walk_alone_in_lists_and_in_prompt_values(
    message: BaseMessage,
) -> None:
    others = [HumanMessage("first"), message, AIMessage("last")]
    values: list[Any] = [
        message,
        [message],
        others,
        [message, message],
        ChatPromptValue(messages=others),
        {"input": others},
        _extract.input_messages([others, [message]]),
    ]
    # Twice: the first encoding of a class teaches the per-class cache the fast path uses.
    for _ in range(2):
        for value in values:
            assert encode(value, _POLICY) == _careful(value), value


def test_message_content_over_the_limit_is_cut_like_the_careful_walk() -> None:
    value = [HumanMessage("word " * 100), AIMessage("short")]
    encode(value, _POLICY)
    for limit in (64, 200, 400, 600):
        text = encode(value, ContentPolicy(max_length=limit))
        # The redact hook always takes the careful walk: an identity hook is the reference.
        assert text == encode(value, ContentPolicy(max_length=limit, redact=lambda s: s))
        assert len(text) <= limit
        json.loads(text)


# --- context: nothing left behind after any mode ------------------------------------------------


def _scopes_reachable(context: Context) -> list[RunScopedContext]:
    """Run scopes reachable from `context` through contexts, dicts, lists and tuples."""
    found: list[RunScopedContext] = []
    pending: list[Any] = [context]
    seen: set[int] = set()
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, RunScopedContext):
            found.append(item)
            pending.append(item.below)
            pending.append(item.beneath_roots)
        if isinstance(item, dict):
            pending.extend(dict.values(item))
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return found


def _chain(handler: OTelCallbackHandler) -> Any:
    prompt = ChatPromptTemplate.from_messages([("human", "{question}")])
    model = FakeChatModel(responses=["one two three four"])
    return (prompt | model | StrOutputParser() | RunnableLambda(str.upper)).with_config(
        callbacks=[handler]
    )


def _assert_unchanged(before: Context, *, exact: bool = True) -> None:
    """The caller's context is `before` again, and holds no run's span.

    Where LangChain ended the run in another `contextvars.Context` (async), the attach token
    cannot be reset there; by design (see `_run_context`) one closed scope may then linger,
    reading exactly as `before` and holding nothing else.
    """
    current = otel_context.get_current()
    if exact:
        assert current is before
    else:
        lingering = 0
        while isinstance(current, RunScopedContext) and not current.is_open:
            lingering += 1
            current = current.below
        assert current is before
        assert lingering <= 1
        current = otel_context.get_current()
        assert dict(current.items()) == dict(before.items())
    assert [scope for scope in _scopes_reachable(current) if scope.is_open] == []
    assert [scope for scope in _scopes_reachable(current) if dict.__len__(scope)] == []


@pytest.fixture
def outer(provider: TracerProvider) -> Iterator[Context]:
    """A request span made current by the app, as a web framework would."""
    with provider.get_tracer("app").start_as_current_span("request"):
        yield otel_context.get_current()


def test_invoke_batch_and_early_closed_stream_leave_the_callers_context_as_it_was(
    provider: TracerProvider, exporter: InMemorySpanExporter, outer: Context
) -> None:
    handler = OTelCallbackHandler(tracer_provider=provider)
    chain = _chain(handler)
    assert chain.invoke({"question": "q"}) == "ONE TWO THREE FOUR"
    _assert_unchanged(outer)
    assert len(chain.batch([{"question": "a"}, {"question": "b"}, {"question": "c"}])) == 3
    _assert_unchanged(outer)
    stream = FakeChatModel(responses=["one two three four"]).stream(
        "q", config={"callbacks": [handler]}
    )
    next(stream)
    stream.close()
    _assert_unchanged(outer)
    streamed = _chain(handler).stream({"question": "q"})
    next(streamed)
    streamed.close()
    _assert_unchanged(outer)
    assert handler.open_runs == 0
    # Every run nested under the app's request span.
    request = trace.get_current_span(outer).get_span_context()
    assert all(s.context.trace_id == request.trace_id for s in exporter.get_finished_spans())


def test_ainvoke_and_a_gather_of_twenty_leave_the_callers_context_as_it_was(
    provider: TracerProvider, outer: Context
) -> None:
    handler = OTelCallbackHandler(tracer_provider=provider)
    chain = _chain(handler)

    async def main() -> None:
        before = otel_context.get_current()
        assert await chain.ainvoke({"question": "q"}) == "ONE TWO THREE FOUR"
        _assert_unchanged(before, exact=False)
        results = await asyncio.gather(*(chain.ainvoke({"question": f"q{i}"}) for i in range(20)))
        assert len(results) == 20
        _assert_unchanged(before, exact=False)
        stream = chain.astream({"question": "q"})
        await stream.__anext__()
        await stream.aclose()
        # LangChain ends the inner runs when the event loop finalizes the inner generators.
        for _ in range(200):
            if handler.open_runs == 0:
                break
            await asyncio.sleep(0)
        assert handler.open_runs == 0
        _assert_unchanged(before, exact=False)

    asyncio.run(main())
    _assert_unchanged(outer)
    assert handler.open_runs == 0


def test_a_span_started_right_after_an_async_stream_is_closed_is_not_a_child_of_its_run(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    handler = OTelCallbackHandler(tracer_provider=provider)
    model = FakeChatModel(responses=["one two three four"]).with_config(callbacks=[handler])

    async def main() -> Any:
        stream = model.astream("q")
        await stream.__anext__()
        await stream.aclose()
        with provider.get_tracer("app").start_as_current_span("after") as after:
            pass
        for _ in range(200):
            if handler.open_runs == 0:
                break
            await asyncio.sleep(0)
        return after

    after = asyncio.run(main())
    assert handler.open_runs == 0
    finished = {s.context.span_id: s.name for s in exporter.get_finished_spans()}
    parent = after.parent
    assert parent is None or finished.get(parent.span_id) is None, finished.get(parent.span_id)
