"""Per-invocation cost of tracing a 6-run LangChain chain, and memory held by runs.

Prints, from one run on this machine: microseconds per invocation with no handler, a do-nothing
handler, the bare OTel SDK creating the same number of spans (in a tight loop, and inside the chain
from a handler that does nothing else), the floor (the do-nothing handler plus the spans
otel-bridge makes, with the same attributes, made by the bare SDK inside the chain: the target is
measured against it), otel-bridge's handler, and (when installed) OpenInference's and
OpenLLMetry's LangChain instrumentors; then how much memory 100k started-but-never-ended runs
make each handler hold, and what 1,000,000 completed runs leave behind. Usage:
`python bench/overhead.py [--quick]`."""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import import_module, metadata
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager, CallbackManager
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_bridge.handler import DEFAULT_MAX_OPEN_RUNS, OTelCallbackHandler
from otel_bridge.testing import FakeChatModel

# The chain's root run plus its five steps.
SPANS_PER_INVOCATION = 6
# Issue 21: otel-bridge's added cost at most this many times the floor's.
TARGET_RATIO = 1.3
FLOOR = "floor: same spans, same attributes"


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


class _BareSpanHandler(_DoNothingHandler):
    """The do-nothing handler plus bare SDK spans, measured together inside the chain.

    One span per run, parented by the run tree, no attributes: the least a span-per-run handler
    can do. With `current`, each span is also made current while its run executes (attached at
    start, detached at end, as `start_as_current_span` would), which is what lets spans of an
    instrumented HTTP client nest under it; without, no context is touched. Measured in place
    because the same SDK calls cost more interleaved with LangChain's code than in a tight loop.
    """

    def __init__(self, tracer: trace.Tracer, *, current: bool) -> None:
        self._tracer = tracer
        self._current = current
        self._spans: dict[uuid.UUID, tuple[trace.Span, object]] = {}

    def _begin(self, name: str, run_id: uuid.UUID, parent_run_id: uuid.UUID | None) -> None:
        parent = self._spans.get(parent_run_id) if parent_run_id is not None else None
        context = None if parent is None else trace.set_span_in_context(parent[0])
        span = self._tracer.start_span(name, context=context)
        token = otel_context.attach(trace.set_span_in_context(span)) if self._current else None
        self._spans[run_id] = (span, token)

    def _end(self, run_id: uuid.UUID) -> None:
        span, token = self._spans.pop(run_id)
        if token is not None:
            otel_context.detach(token)  # type: ignore[arg-type]
        span.end()

    def on_chain_start(self, serialized: Any, inputs: Any, **kwargs: Any) -> None:
        self._begin("chain", kwargs["run_id"], kwargs.get("parent_run_id"))

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self._begin("chat", kwargs["run_id"], kwargs.get("parent_run_id"))

    def on_chain_end(self, outputs: Any, **kwargs: Any) -> None:
        self._end(kwargs["run_id"])

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        self._end(kwargs["run_id"])


@dataclass(frozen=True)
class _RecordedSpan:
    """What otel-bridge wrote for one run: the span's name and kind, the attributes it started
    the span with, those it set when the run ended, and whether the span was made current."""

    name: str
    kind: SpanKind
    start_attributes: dict[str, Any]
    end_attributes: dict[str, Any]
    current: bool


class _StartAttributes(SpanProcessor):
    """Keeps each span's attributes as they were when it started (the rest come at its end)."""

    def __init__(self) -> None:
        self.at_start: dict[int, dict[str, Any]] = {}

    def on_start(self, span: SdkSpan, parent_context: Any = None) -> None:
        self.at_start[span.context.span_id] = dict(span.attributes or {})


def _record_our_spans(chain: Runnable[Any, Any], question: Any) -> dict[str, _RecordedSpan]:
    """One invocation traced by otel-bridge, its spans by run name (the chain's are unique)."""
    recorder = InMemorySpanExporter()
    at_start = _StartAttributes()
    provider = _provider(recorder)
    provider.add_span_processor(at_start)
    chain.invoke(question, {"callbacks": [OTelCallbackHandler(tracer_provider=provider)]})
    recorded: dict[str, _RecordedSpan] = {}
    for span in recorder.get_finished_spans():
        attributes = dict(span.attributes or {})
        started = at_start.at_start[span.context.span_id]
        run_type = attributes["langchain.run.type"]
        recorded[attributes["langchain.run.name"]] = _RecordedSpan(
            span.name,
            span.kind,
            started,
            {key: value for key, value in attributes.items() if key not in started},
            # otel-bridge leaves LangChain's own templates and parsers not current: they cannot
            # call out (see otel_bridge._callouts).
            run_type not in ("prompt", "parser"),
        )
    if len(recorded) != SPANS_PER_INVOCATION:
        raise RuntimeError(f"expected {SPANS_PER_INVOCATION} runs, recorded {sorted(recorded)}")
    return recorded


class _FloorHandler(_DoNothingHandler):
    """The floor: what any span-per-run handler must pay for the spans otel-bridge makes.

    The do-nothing handler plus, per run, the bare SDK span otel-bridge makes for it: the same
    name, kind, parent and attributes, the start ones passed to `start_span` and the end ones
    set in one call at the end (their values computed beforehand, so none of the handler's own
    work is in it), made current while the run executes exactly where otel-bridge does.
    Measured inside the chain, as otel-bridge is.
    """

    def __init__(self, tracer: trace.Tracer, recorded: dict[str, _RecordedSpan]) -> None:
        self._tracer = tracer
        self._recorded = recorded
        self._spans: dict[uuid.UUID, tuple[trace.Span, object, dict[str, Any]]] = {}

    def _begin(self, serialized: Any, kwargs: dict[str, Any]) -> None:
        # LangChain names a chat model's run after its serialized form.
        recorded = self._recorded[kwargs.get("name") or serialized["name"]]
        parent_run_id = kwargs.get("parent_run_id")
        parent = self._spans.get(parent_run_id) if parent_run_id is not None else None
        context = None if parent is None else trace.set_span_in_context(parent[0])
        span = self._tracer.start_span(
            recorded.name, context=context, kind=recorded.kind, attributes=recorded.start_attributes
        )
        token = otel_context.attach(trace.set_span_in_context(span)) if recorded.current else None
        self._spans[kwargs["run_id"]] = (span, token, recorded.end_attributes)

    def _end(self, run_id: uuid.UUID) -> None:
        span, token, end_attributes = self._spans.pop(run_id)
        if len(end_attributes) == 1:
            span.set_attribute(*next(iter(end_attributes.items())))
        elif end_attributes:
            span.set_attributes(end_attributes)
        if token is not None:
            otel_context.detach(token)  # type: ignore[arg-type]
        span.end()

    def on_chain_start(self, serialized: Any, inputs: Any, **kwargs: Any) -> None:
        self._begin(serialized, kwargs)

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self._begin(serialized, kwargs)

    def on_chain_end(self, outputs: Any, **kwargs: Any) -> None:
        self._end(kwargs["run_id"])

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        self._end(kwargs["run_id"])


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


def _spans_like_ours(
    tracer: trace.Tracer, chain: Runnable[Any, Any], question: Any
) -> Callable[[], None]:
    """Bare SDK spans carrying exactly the attributes otel-bridge writes for one invocation.

    Separates what the SDK charges for those attributes from what the handler's own code costs.
    """
    recorder = InMemorySpanExporter()
    chain.invoke(
        question, {"callbacks": [OTelCallbackHandler(tracer_provider=_provider(recorder))]}
    )
    recorded = list(recorder.get_finished_spans())
    root = next(span for span in recorded if span.parent is None)
    children = [(s.name, dict(s.attributes or {})) for s in recorded if s is not root]
    root_attributes = dict(root.attributes or {})

    def make() -> None:
        with tracer.start_as_current_span(root.name, attributes=root_attributes):
            for name, attributes in children:
                tracer.start_span(name, attributes=attributes).end()

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


# The peers measured beside ours: each one's instrumentor class, as (module, class name).
_PEERS = {
    "OpenInference": ("openinference.instrumentation.langchain", "LangChainInstrumentor"),
    "OpenLLMetry": ("opentelemetry.instrumentation.langchain", "LangchainInstrumentor"),
}


def _peer(name: str) -> tuple[Callable[[TracerProvider], None], Callable[[], None]] | None:
    """The peer `name`'s instrument(provider) and uninstrument(); None when it is not installed."""
    module, class_name = _PEERS[name]
    try:
        instrumentor_class = getattr(import_module(module), class_name)
    except ImportError:
        return None
    instrumentor = instrumentor_class()

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


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _memory_handler(name: str, runs: int) -> tuple[BaseCallbackHandler, Callable[[], str]]:
    """The handler measured as `name`, and a note to print after the measurement."""
    if name in ("otel-bridge", "otel-bridge, bound lifted"):
        lifted = name.endswith("lifted")
        ours = OTelCallbackHandler(
            tracer_provider=_provider(),
            max_open_runs=runs + 1 if lifted else DEFAULT_MAX_OPEN_RUNS,
        )
        return (
            ours,
            lambda: (
                f"open runs kept: {ours.open_runs:,}, ended by the bound: {ours.evicted_runs:,}"
            ),
        )
    peer = _peer(name)
    if peer is None:
        raise LookupError(name)
    instrument, _ = peer
    instrument(_provider())
    handler = _instrumented_handler()
    if handler is None:
        raise LookupError(name)
    return handler, lambda: ""


def _measure_memory(name: str, runs: int) -> None:
    """In a fresh process: start `runs` chain runs that never end; print the peak RSS growth."""
    handler, note = _memory_handler(name, runs)
    gc.collect()
    before = _rss_bytes()
    for index in range(runs):
        handler.on_chain_start(
            {"name": "never-ends", "id": ["bench", "NeverEnds"]},
            {"question": f"request {index}"},
            run_id=uuid.uuid4(),
            name="never-ends",
        )
    # ru_maxrss is in KiB on Linux: the peak of the whole process, taken after the runs.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"{(peak - before) / 2**20:.1f}\t{note()}")


def _measure_completed(pairs: int) -> None:
    """In a fresh process: `pairs` parent+child runs that start and end; print the RSS growth.

    Measured after a warm-up, from the current RSS (not the peak), so it shows what the runs
    leave behind rather than what they use while running.
    """
    exporter = _CountingExporter()
    handler = OTelCallbackHandler(tracer_provider=_provider(exporter))

    def one_pair(index: int) -> None:
        parent, child = uuid.uuid4(), uuid.uuid4()
        handler.on_chain_start(
            {"name": "outer"}, {"question": f"request {index}"}, run_id=parent, name="outer"
        )
        handler.on_chain_start(
            {"name": "inner"},
            f"step {index}",
            run_id=child,
            parent_run_id=parent,
            name="inner",
            tags=["seq:step:1"],
        )
        handler.on_chain_end(f"answer {index}", run_id=child, parent_run_id=parent)
        handler.on_chain_end({"answer": index}, run_id=parent)

    for index in range(10_000):
        one_pair(index)
    gc.collect()
    before = _rss_bytes()
    for index in range(pairs):
        one_pair(index)
    gc.collect()
    growth = _rss_bytes() - before
    print(
        f"{growth / 2**20:.1f}\topen runs left: {handler.open_runs:,}, spans exported: "
        f"{exporter.spans:,}, logged problems: {len(handler._logged_problems)}"
    )


def _memory_in_subprocess(name: str, runs: int) -> str:
    result = subprocess.run(
        [sys.executable, __file__, "--memory-of", name, "--runs", str(runs)]
        if name != "completed"
        else [sys.executable, __file__, "--completed", str(runs)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return "not installed" if "LookupError" in result.stderr else "failed"
    mib, _, note = result.stdout.strip().partition("\t")
    return f"{float(mib):10.1f} MiB" + (f"  ({note})" if note else "")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--completed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    # OpenInference calls a LangChain API LangChain has deprecated: keep the figures readable.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    if args.memory_of:
        _measure_memory(args.memory_of, args.runs)
        return 0
    if args.completed:
        _measure_completed(args.completed)
        return 0
    calls, repeats, never_ending, completed_pairs = (
        (10, 10, 10_000, 50_000) if args.quick else (20, 100, 100_000, 500_000)
    )

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

    bare_exporter, in_place_exporter, current_exporter, ours_exporter, no_content_exporter = (
        _CountingExporter() for _ in range(5)
    )
    openinference_exporter, floor_exporter = _CountingExporter(), _CountingExporter()
    configurations = [
        _Configuration("no handler", lambda: chain.invoke(question)),
        _Configuration("do-nothing handler", traced_by(_DoNothingHandler())),
        _Configuration(
            "bare SDK spans (alone)",
            _bare_sdk_spans(_provider(bare_exporter).get_tracer("bench")),
            exporter=bare_exporter,
        ),
        _Configuration(
            "bare SDK spans with our attributes",
            _spans_like_ours(_provider().get_tracer("bench"), chain, question),
        ),
        _Configuration(
            "do-nothing handler + bare SDK spans",
            traced_by(
                _BareSpanHandler(_provider(in_place_exporter).get_tracer("bench"), current=False)
            ),
            exporter=in_place_exporter,
        ),
        _Configuration(
            "... and each span current",
            traced_by(
                _BareSpanHandler(_provider(current_exporter).get_tracer("bench"), current=True)
            ),
            exporter=current_exporter,
        ),
        _Configuration(
            FLOOR,
            traced_by(
                _FloorHandler(
                    _provider(floor_exporter).get_tracer("bench"),
                    _record_our_spans(chain, question),
                )
            ),
            exporter=floor_exporter,
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
        _Configuration(
            "otel-bridge, semconv +openinference",
            traced_by(
                OTelCallbackHandler(
                    tracer_provider=_provider(openinference_exporter),
                    semconv="gen_ai,openinference",
                )
            ),
            exporter=openinference_exporter,
        ),
    ]
    missing: list[str] = []
    peers = {name: _peer(name) for name in _PEERS}
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
    ours_added = by_name["otel-bridge"].added_us
    in_place = by_name["do-nothing handler + bare SDK spans"].added_us
    in_place_current = by_name["... and each span current"].added_us
    summed = by_name["do-nothing handler"].added_us + by_name["bare SDK spans (alone)"].per_call_us
    with_attributes = (
        by_name["do-nothing handler"].added_us
        + by_name["bare SDK spans with our attributes"].per_call_us
    )
    floor = by_name[FLOOR].added_us
    ratio = ours_added / floor if floor > 0 else float("inf")
    print(
        f"\ntarget: otel-bridge added cost <= {TARGET_RATIO} x the floor (do-nothing handler + "
        "the same spans with the same attributes, made by the bare SDK inside the chain)"
    )
    print(
        f"  otel-bridge added {ours_added:.1f} us, the floor {floor:.1f} us -> {ratio:.2f} x "
        f"({'within' if ratio <= TARGET_RATIO else 'OVER'} target)",
        flush=True,
    )
    print(f"otel-bridge added {ours_added:.1f} us against other references:")
    for label, reference in (
        ("in the chain, spans current, no attributes", in_place_current),
        ("in the chain, no attributes", in_place),
        ("the two apart, summed", summed),
        ("the two apart, spans with our attributes", with_attributes),
    ):
        other = ours_added / reference if reference > 0 else float("inf")
        print(f"  {label:<44}{reference:8.1f} us -> {other:.2f} x", flush=True)
    in_chain = in_place - by_name["do-nothing handler"].added_us
    print(
        f"the same bare SDK spans cost {in_chain:.1f} us inside the chain against "
        f"{by_name['bare SDK spans (alone)'].per_call_us:.1f} us in a tight loop of their own",
        flush=True,
    )

    print(
        f"\npeak memory growth (RSS, one fresh process each) while {never_ending:,} runs start "
        "and never end:",
        flush=True,
    )
    for name in ("otel-bridge", "otel-bridge, bound lifted", "OpenInference", "OpenLLMetry"):
        print(f"{name:<38}{_memory_in_subprocess(name, never_ending)}", flush=True)
    print(
        f"\nRSS growth (fresh process, after a 10,000-pair warm-up) over {completed_pairs:,} "
        f"parent+child pairs = {2 * completed_pairs:,} runs that complete:",
        flush=True,
    )
    print(f"{'otel-bridge':<38}{_memory_in_subprocess('completed', completed_pairs)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
