"""Per-invocation cost of tracing a 5-step LangChain chain, and memory held by runs that never end.

Prints, from one run on this machine: microseconds per invocation with no handler, a do-nothing
handler, the bare OTel SDK creating the same number of spans, otel-bridge's handler, and (when
installed) OpenInference's and OpenLLMetry's LangChain instrumentors; then the peak memory that
100k started-but-never-ended runs cost each handler. Usage: `python bench/overhead.py [--quick]`.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import sys
import time
import tracemalloc
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager, CallbackManager
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from otel_bridge.handler import OTelCallbackHandler
from otel_bridge.testing import FakeChatModel

# The chain's root run plus its five steps.
SPANS_PER_INVOCATION = 6
TARGET_RATIO = 2.0


class _CountingExporter(SpanExporter):
    """Receives every finished span synchronously and only counts it: span cost, not I/O."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


class _DoNothingHandler(BaseCallbackHandler):
    """Receives every callback and does nothing.

    It implements `on_chat_model_start`: the base class raises NotImplementedError there, which
    makes LangChain fall back to `on_llm_start` with stringified messages, a cost of its own.
    """

    run_inline = True

    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        return None


def _provider(exporter: SpanExporter | None = None) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter or _CountingExporter()))
    return provider


def _chain() -> Runnable[Any, Any]:
    prompt = ChatPromptTemplate.from_messages([("system", "Answer briefly."), ("human", "{q}")])
    model = FakeChatModel(responses=["The answer is forty two."])
    return (
        prompt
        | model
        | StrOutputParser()
        | RunnableLambda(lambda text: text.upper(), name="shout")
        | RunnableLambda(lambda text: {"answer": text, "length": len(text)}, name="package")
    )


@dataclass
class _Configuration:
    name: str
    call: Callable[[], object]
    setup: Callable[[], None] = lambda: None
    teardown: Callable[[], None] = lambda: None
    exporter: _CountingExporter | None = None
    samples: list[float] = field(default_factory=list)
    # Per round: this configuration's time minus the no-handler time of the same round.
    added: list[float] = field(default_factory=list)
    calls: int = 0

    @property
    def per_call_us(self) -> float:
        return statistics.median(self.samples)

    @property
    def added_us(self) -> float:
        return statistics.median(self.added)

    @property
    def spans_per_call(self) -> float | None:
        return None if self.exporter is None else self.exporter.spans / self.calls


def _timed(configuration: _Configuration, calls: int) -> float:
    configuration.setup()
    try:
        gc.collect()
        started = time.thread_time()
        for _ in range(calls):
            configuration.call()
        elapsed = time.thread_time() - started
    finally:
        configuration.teardown()
    configuration.calls += calls
    return elapsed / calls * 1e6


def _measure(configurations: Sequence[_Configuration], calls: int, rounds: int) -> None:
    """Many short rounds; in each, every configuration runs once, in a shuffled order.

    The machine is shared, so each figure is taken as a difference against the no-handler
    chain *of the same round* (configurations[0]) and the median over rounds is reported: load
    that comes and goes then shifts both sides of each difference alike. CPU time of this
    thread is measured, not wall time, which would mostly measure the other processes.
    """
    for configuration in configurations:
        _timed(configuration, max(calls, 20))
        configuration.calls = 0
        if configuration.exporter is not None:
            configuration.exporter.spans = 0
    shuffler = random.Random(7)
    for _ in range(rounds):
        order = list(configurations)
        shuffler.shuffle(order)
        timings = {id(c): _timed(c, calls) for c in order}
        baseline = timings[id(configurations[0])]
        for configuration in configurations:
            configuration.samples.append(timings[id(configuration)])
            configuration.added.append(timings[id(configuration)] - baseline)


def _bare_sdk_spans(tracer: trace.Tracer) -> Callable[[], None]:
    """The same span tree the chain produces: a root and five children, with the root current."""

    def make() -> None:
        with tracer.start_as_current_span("root"):
            for step in range(SPANS_PER_INVOCATION - 1):
                tracer.start_span(f"step-{step}").end()

    return make


def _restore_callback_manager_init() -> None:
    """Undo a peer's wrapper of `BaseCallbackManager.__init__` that its uninstrument() left.

    opentelemetry-instrumentation-langchain 0.62 unwraps `langchain_core.callbacks`, where the
    class is only re-exported, so its handler stays in every callback manager after
    uninstrument(); without this, it would run inside every other configuration's timing.
    """
    init = BaseCallbackManager.__dict__["__init__"]
    while hasattr(init, "__wrapped__"):
        init = init.__wrapped__
    BaseCallbackManager.__init__ = init  # type: ignore[method-assign]
    if CallbackManager(handlers=[]).handlers:
        raise RuntimeError("a peer instrumentor's handler is still installed")


def _openinference() -> tuple[Callable[[TracerProvider], None], Callable[[], None]] | None:
    try:
        from openinference.instrumentation.langchain import LangChainInstrumentor
    except ImportError:
        return None
    instrumentor = LangChainInstrumentor()

    def uninstrument() -> None:
        instrumentor.uninstrument()
        _restore_callback_manager_init()

    return (lambda provider: instrumentor.instrument(tracer_provider=provider), uninstrument)


def _openllmetry() -> tuple[Callable[[TracerProvider], None], Callable[[], None]] | None:
    try:
        from opentelemetry.instrumentation.langchain import LangchainInstrumentor
    except ImportError:
        return None
    instrumentor = LangchainInstrumentor()

    def uninstrument() -> None:
        instrumentor.uninstrument()
        _restore_callback_manager_init()

    return (lambda provider: instrumentor.instrument(tracer_provider=provider), uninstrument)


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _instrumented_handler() -> BaseCallbackHandler | None:
    """The handler a global instrumentor adds to every callback manager, if any."""
    handlers = CallbackManager(handlers=[]).handlers
    return handlers[0] if handlers else None


def _never_ending_runs_peak_mib(handler: BaseCallbackHandler, runs: int) -> float:
    """Peak traced memory while `runs` chain runs start and never end."""
    gc.collect()
    tracemalloc.start()
    try:
        for index in range(runs):
            handler.on_chain_start(
                {"name": "never-ends", "id": ["bench", "NeverEnds"]},
                {"question": f"request {index}"},
                run_id=uuid.uuid4(),
                name="never-ends",
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    args = parser.parse_args(argv)
    # OpenInference calls a LangChain API LangChain has deprecated: keep the figures readable.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    calls, repeats, never_ending = (10, 10, 10_000) if args.quick else (20, 100, 100_000)

    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}"
    )
    print(
        "versions: langchain-core "
        + _version("langchain-core")
        + ", opentelemetry-sdk "
        + _version("opentelemetry-sdk")
        + ", openinference-instrumentation-langchain "
        + _version("openinference-instrumentation-langchain")
        + ", opentelemetry-instrumentation-langchain "
        + _version("opentelemetry-instrumentation-langchain")
    )
    print(f"chain: prompt | chat model | parser | lambda | lambda ({SPANS_PER_INVOCATION} runs)")
    print(
        f"timing: {repeats} rounds x {calls} invocations per configuration, shuffled, thread "
        "CPU time; median per round, added = median of (configuration - no handler) within a "
        "round; spans exported synchronously\n"
    )

    chain = _chain()
    question = {"q": "What is the answer?"}

    def traced_by(handler: BaseCallbackHandler) -> Callable[[], object]:
        config: Any = {"callbacks": [handler]}
        return lambda: chain.invoke(question, config)

    bare_exporter, ours_exporter, no_content_exporter = (_CountingExporter() for _ in range(3))
    configurations = [
        _Configuration("no handler", lambda: chain.invoke(question)),
        _Configuration("do-nothing handler", traced_by(_DoNothingHandler())),
        _Configuration(
            "bare SDK spans (alone)",
            _bare_sdk_spans(_provider(bare_exporter).get_tracer("bench")),
            exporter=bare_exporter,
        ),
        _Configuration(
            "otel-bridge",
            traced_by(OTelCallbackHandler(tracer_provider=_provider(ours_exporter))),
            exporter=ours_exporter,
        ),
        _Configuration(
            "otel-bridge, capture_content=False",
            traced_by(
                OTelCallbackHandler(
                    tracer_provider=_provider(no_content_exporter), capture_content=False
                )
            ),
            exporter=no_content_exporter,
        ),
    ]
    missing: list[str] = []
    peers = {"OpenInference": _openinference(), "OpenLLMetry": _openllmetry()}
    for name, peer in peers.items():
        if peer is None:
            missing.append(name)
            continue
        instrument, uninstrument = peer
        peer_exporter = _CountingExporter()
        peer_provider = _provider(peer_exporter)
        configurations.append(
            _Configuration(
                name,
                lambda: chain.invoke(question),
                setup=lambda instrument=instrument, p=peer_provider: instrument(p),
                teardown=uninstrument,
                exporter=peer_exporter,
            )
        )
    _measure(configurations, calls, repeats)

    print(f"{'configuration':<38}{'us/invocation':>15}{'added us':>12}{'spans/call':>12}")
    for configuration in configurations:
        spans = configuration.spans_per_call
        shown_spans = "" if spans is None else f"{spans:12.1f}"
        added = "" if configuration.name.startswith("bare") else f"{configuration.added_us:12.1f}"
        print(f"{configuration.name:<38}{configuration.per_call_us:15.1f}{added:>12}{shown_spans}")
    for name in missing:
        print(f"{name:<38}{'not installed':>15}")

    by_name = {c.name: c for c in configurations}
    reference = (
        by_name["do-nothing handler"].added_us + by_name["bare SDK spans (alone)"].per_call_us
    )
    ours_added = by_name["otel-bridge"].added_us
    ratio = ours_added / reference if reference > 0 else float("inf")
    verdict = "within" if ratio <= TARGET_RATIO else "OVER"
    print(
        f"\ntarget: otel-bridge added cost <= {TARGET_RATIO:.0f} x (do-nothing handler added "
        f"+ bare SDK spans) = {TARGET_RATIO * reference:.1f} us\n"
        f"measured: {ours_added:.1f} us added = {ratio:.2f} x reference ({verdict} target)",
        flush=True,
    )

    peer_memory: dict[str, float | None] = {name: None for name in missing}
    for name, peer in peers.items():
        if peer is None:
            continue
        instrument, uninstrument = peer
        instrument(_provider())
        try:
            handler = _instrumented_handler()
            peer_memory[name] = (
                None if handler is None else _never_ending_runs_peak_mib(handler, never_ending)
            )
        finally:
            uninstrument()

    print(f"\npeak traced memory while {never_ending:,} runs start and never end:", flush=True)
    ours_memory_handler = OTelCallbackHandler(tracer_provider=_provider())
    ours_memory = _never_ending_runs_peak_mib(ours_memory_handler, never_ending)
    print(
        f"{'otel-bridge':<38}{ours_memory:10.1f} MiB  (open runs kept: "
        f"{ours_memory_handler.open_runs:,}, ended by the bound: "
        f"{ours_memory_handler.evicted_runs:,})"
    )
    # The same handler with the bound lifted: what each open run costs, for comparison.
    unbounded = OTelCallbackHandler(tracer_provider=_provider(), max_open_runs=never_ending + 1)
    print(
        f"{'otel-bridge, bound lifted':<38}"
        f"{_never_ending_runs_peak_mib(unbounded, never_ending):10.1f} MiB  (open runs kept: "
        f"{unbounded.open_runs:,})"
    )
    for name, value in peer_memory.items():
        shown = "not installed" if value is None else f"{value:10.1f} MiB"
        print(f"{name:<38}{shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
