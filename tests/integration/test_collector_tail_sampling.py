"""collector-config/tail-sampling.yaml in our Collector build (`make collector`): every trace
reaches the backend (a second Collector writing a file); only errored, slow and review-tagged
traces reach `otel-bridge serve`.

The traces come from real LangChain runs traced by `OTelCallbackHandler` (the chat model is
`otel_bridge.testing.FakeChatModel`, the stand-in for a paid API), tagged the way the README
says (`config={"metadata": {"review": True}}`); the slow ones are made with the SDK and explicit
timestamps, so that no test waits ten seconds.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import set_span_in_context

from otel_bridge import OTelCallbackHandler
from otel_bridge.testing import FakeChatModel
from tests.support.collector import (
    CONFIG_DIR,
    TOKEN,
    Processes,
    assert_no_deprecation_warnings,
    read_lines,
    span_ids,
    start_backend,
    start_bridge,
    start_collector,
    wait_for,
)
from tests.support.collector_app import Trace, export_each, group_by_trace, trace_id
from tests.support.collector_app import span_ids as sent_span_ids

pytestmark = pytest.mark.slow


class Traces:
    """Traces made in this process, each under a label."""

    def __init__(self) -> None:
        self._memory = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create({"service.name": "tail-test"}))
        self.provider.add_span_processor(SimpleSpanProcessor(self._memory))
        self.handler = OTelCallbackHandler(tracer_provider=self.provider)
        self.chain = ChatPromptTemplate.from_template("Review {topic}.") | FakeChatModel(
            responses=["Reviewed."]
        )
        self.labelled: dict[str, Trace] = {}

    def _take(self, label: str) -> None:
        (trace,) = group_by_trace(self._memory.get_finished_spans())
        self._memory.clear()
        self.labelled[label] = trace

    def run(self, label: str, metadata: dict[str, object] | None = None) -> None:
        config = {"callbacks": [self.handler], "metadata": metadata or {}}
        self.chain.invoke({"topic": label}, config)  # type: ignore[arg-type]
        self._take(label)

    def run_failing(self, label: str) -> None:
        def refuse(_: object) -> None:
            raise ValueError("the tool failed")

        with pytest.raises(ValueError, match="the tool failed"):
            (self.chain | RunnableLambda(refuse)).invoke(
                {"topic": label}, {"callbacks": [self.handler]}
            )
        self._take(label)

    def lasting(self, label: str, seconds: float) -> None:
        """A chain with one LLM call whose timestamps say it took `seconds`."""
        tracer = self.provider.get_tracer("tail-test")
        end = time.time_ns()
        start = end - int(seconds * 1e9)
        root = tracer.start_span("chain", start_time=start)
        llm = tracer.start_span("llm", context=set_span_in_context(root), start_time=start + 1000)
        llm.end(end_time=end - 1000)
        root.end(end_time=end)
        self._take(label)


SAMPLED = ["errored", "slow", "tagged", "tagged-last"]


def test_only_errored_slow_and_tagged_traces_reach_the_bridge_and_all_reach_the_backend(
    processes: Processes, tmp_path: Path
) -> None:
    traces = Traces()
    for n in range(4):
        traces.run(f"plain-{n}")
    traces.run("tagged-false", {"review": False})
    traces.lasting("nine-seconds", 9.0)  # under the 10 s threshold
    traces.run_failing("errored")
    traces.lasting("slow", 12.0)
    traces.run("tagged", {"review": True})
    traces.run("tagged-last", {"review": True})
    labelled = traces.labelled

    bridge = start_bridge(processes, tmp_path / "bridge", sink="    grace_period: 0.5")
    backend, backend_file = start_backend(processes, tmp_path)
    gateway = start_collector(
        processes,
        [CONFIG_DIR / "tail-sampling.yaml"],
        tmp_path,
        env={
            "BACKEND_OTLP_ENDPOINT": f"127.0.0.1:{backend.grpc_port}",
            "BACKEND_OTLP_INSECURE": "true",
            "OTEL_BRIDGE_ENDPOINT": bridge.http_endpoint,
            "OTEL_BRIDGE_TOKEN": TOKEN,
            "TAIL_SAMPLING_DECISION_WAIT": "2s",
        },
        name="tail-sampling",
    )
    assert_no_deprecation_warnings(gateway, backend)
    # In this order: a trace's decision comes no earlier than those of traces sent before it,
    # so once the last one is at the bridge, every other decision has been made.
    export_each(gateway.grpc_port, list(labelled.values()))

    last = labelled["tagged-last"]
    wait_for(lambda: trace_id(last) in span_ids(bridge.deliveries()), "the last tagged trace")
    at_bridge = span_ids(bridge.deliveries())
    assert sorted(label for label, t in labelled.items() if trace_id(t) in at_bridge) == sorted(
        SAMPLED
    )
    for label in SAMPLED:
        trace = labelled[label]
        assert sorted(at_bridge[trace_id(trace)]) == sorted(sent_span_ids(trace)), label
    assert len(bridge.deliveries()) == len(SAMPLED)

    def backend_has_all() -> bool:
        received = span_ids(read_lines(backend_file))
        return all(
            sent_span_ids(t) <= set(received.get(trace_id(t), [])) for t in labelled.values()
        )

    wait_for(backend_has_all, "every trace at the backend")
    assert_no_deprecation_warnings(gateway)
