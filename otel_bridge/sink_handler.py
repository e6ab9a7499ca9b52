"""The base of every sink's drop-in callback handler: its runs, and only its runs, feed one sink."""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from opentelemetry import context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from otel_bridge._exit import call_before_exit, cancel_before_exit
from otel_bridge._private import provider_span_processor
from otel_bridge.exporter import TraceExporter
from otel_bridge.handler import OTelCallbackHandler
from otel_bridge.ids import SeedProofIdGenerator
from otel_bridge.settings import GRACE_PERIOD

__all__ = [
    "CALLBACK_COUNTERS",
    "DROP_IN_GRACE_PERIOD",
    "DROP_IN_SCHEDULE_DELAY_MILLIS",
    "RECORD_LISTS",
    "CallbackCounters",
    "SinkCallbackHandler",
    "drop_in_exporter_options",
]

# Freshness of the drop-in handlers (trace end -> in the sink): their own span processor hands
# spans over at least this often (the SDK's default is 5 s; under load it still exports in
# batches of 512 as soon as they fill), and a trace is delivered this long after its root ended.
# Every span of a drop-in's trace comes through that one processor, children before the root
# that encloses them, so a short grace loses nothing.
DROP_IN_SCHEDULE_DELAY_MILLIS = 200
DROP_IN_GRACE_PERIOD = 0.25


def drop_in_exporter_options(
    sink_name: str, options: Mapping[str, Any] | None, **drop_in_defaults: Any
) -> dict[str, Any]:
    """The user's `options` for a drop-in handler's exporter, over the drop-in's own defaults
    (what the original did, e.g. ClearML's tables per flush) and its short grace period, unless
    the argument or OTEL_BRIDGE_<SINK>_GRACE_PERIOD / OTEL_BRIDGE_GRACE_PERIOD says otherwise."""
    resolved = {**drop_in_defaults, **(options or {})}
    variables = GRACE_PERIOD.for_sink(sink_name).variables
    if resolved.get("grace_period") is None and not any(os.environ.get(v) for v in variables):
        resolved["grace_period"] = DROP_IN_GRACE_PERIOD
    return resolved


@runtime_checkable
class _ConnectionCheck(Protocol):
    def check_connection(self) -> None: ...


class _AlsoToGlobalProvider(SpanProcessor):
    """Hands every span to the processors of the app's global SDK TracerProvider, if any.

    Looked up per span, so a provider the app installs after the handler was built still
    receives them.
    """

    def __init__(self, own: TracerProvider) -> None:
        self._own = own

    def _global(self) -> SpanProcessor | None:
        provider = trace.get_tracer_provider()
        if provider is self._own or not isinstance(provider, TracerProvider):
            return None
        return provider_span_processor(provider)

    def on_start(self, span: Span, parent_context: context.Context | None = None) -> None:
        processor = self._global()
        if processor is not None:
            processor.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        processor = self._global()
        if processor is not None:
            processor.on_end(span)


def _own_provider(exporter: TraceExporter) -> TracerProvider:
    # No atexit hook of its own: the handler stops it before exit (`_Stop`), and a provider per
    # dropped handler would otherwise stay referenced by `atexit` until the end.
    provider = TracerProvider(
        resource=Resource.create(), id_generator=SeedProofIdGenerator(), shutdown_on_exit=False
    )
    provider.add_span_processor(_AlsoToGlobalProvider(provider))
    provider.add_span_processor(
        BatchSpanProcessor(exporter, schedule_delay_millis=DROP_IN_SCHEDULE_DELAY_MILLIS)
    )
    return provider


class SinkCallbackHandler(OTelCallbackHandler):
    """An `OTelCallbackHandler` whose spans feed `exporter`, for the sinks' drop-in handlers.

    Like the langchain_community handlers these replace, the sink receives exactly the runs the
    handler was passed: it traces through a TracerProvider of its own, whose spans also reach
    the processors of the app's global SDK TracerProvider when one is installed, so the app's
    own pipeline (OTLP, a Collector) still sees them. With `tracer_provider` given, the exporter
    is attached to that provider instead and receives everything it traces.

    With `check_connection=True` (the drop-ins that check, as their originals did) the
    constructor asks the sink whether it is reachable and accepts the credentials, and raises
    the sink's error if not. Traces reach the sink about `DROP_IN_GRACE_PERIOD` plus one
    delivery after they end; when the app's main thread finishes a normal exit, what was traced
    is delivered before the interpreter winds down (one attempt, within the exporter's
    `shutdown_timeout`), with no flush call needed.
    """

    def __init__(
        self,
        exporter: TraceExporter,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        check_connection: bool = False,
        **handler_options: Any,
    ) -> None:
        self.exporter = exporter
        try:
            if check_connection and isinstance(exporter, _ConnectionCheck):
                exporter.check_connection()
            self._own = _own_provider(exporter) if tracer_provider is None else None
            self._provider = self._own or tracer_provider
            super().__init__(
                tracer_provider=self._provider,
                exporters=None if self._own is not None else [exporter],
                **handler_options,
            )
        except BaseException:
            # Nothing will feed the exporter: stop its delivery thread and release its spool.
            exporter.shutdown()
            raise
        if not self.capture_content:
            exporter.warn_without_content()
        self._stop = _Stop(self._own, exporter)
        if self._own is not None:
            # An app that drops the handler (a new one per request, or one name rebound per
            # example as the seed pages do) gets its traces delivered and its threads and
            # spool connection back, without waiting on the app's thread.
            weakref.finalize(self, self._stop.in_background).atexit = False

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Deliver everything traced so far; True when nothing is left pending in time."""
        timeout_ms = int(timeout_s * 1000)
        spans_handed_over = True
        if isinstance(self._provider, TracerProvider):
            spans_handed_over = self._provider.force_flush(timeout_ms)
        return spans_handed_over and self.exporter.force_flush(timeout_ms)

    def shutdown(self) -> None:
        """Deliver what is pending (within the exporter's shutdown timeout) and stop."""
        self._stop()


class _Stop:
    """Delivers what is pending and stops, once: the spans still in `own`'s span processor are
    handed over and every finished trace gets one delivery attempt (within the exporter's
    `shutdown_timeout`); what fails stays in the spool for the next start.

    Registered to run when the main thread finishes a normal exit, while the interpreter can
    still run thread pools, so the `atexit` shutdown that follows has nothing left to do. It
    holds the provider and exporter, not the handler, so a dropped handler's traces are still
    delivered; a stop already running elsewhere is waited for, not repeated."""

    def __init__(self, own: TracerProvider | None, exporter: TraceExporter) -> None:
        self._own = own
        self._exporter = exporter
        self._lock = threading.Lock()
        self._done = False
        self._exit_token = call_before_exit(self)

    def __call__(self) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
            try:
                if self._own is not None:
                    self._own.shutdown()
                else:
                    self._exporter.shutdown()
            finally:
                cancel_before_exit(self._exit_token)

    def in_background(self) -> None:
        # No new threads while the interpreter shuts down (RuntimeError): the exit callback,
        # which runs earlier, has delivered already, or `atexit` still will.
        with contextlib.suppress(RuntimeError):
            threading.Thread(target=self, name="otel-bridge-stop", daemon=True).start()


# The callback counters of langchain_community's ClearML and SageMaker handlers
# (`BaseMetadataCallbackHandler`): what each callback adds to them, as the originals count.
# A chat model's start counts as an LLM start: the originals had no on_chat_model_start, and
# LangChain called on_llm_start for them instead.
_COUNTED: dict[str, tuple[str, ...]] = {
    "on_llm_start": ("step", "llm_starts", "starts"),
    "on_chat_model_start": ("step", "llm_starts", "starts"),
    "on_llm_new_token": ("step", "llm_streams"),
    "on_llm_end": ("step", "llm_ends", "ends"),
    "on_llm_error": ("step", "errors"),
    "on_chain_start": ("step", "chain_starts", "starts"),
    "on_chain_end": ("step", "chain_ends", "ends"),
    "on_chain_error": ("step", "errors"),
    "on_tool_start": ("step", "tool_starts", "starts"),
    "on_tool_end": ("step", "tool_ends", "ends"),
    "on_tool_error": ("step", "errors"),
    "on_text": ("step", "text_ctr"),
    "on_agent_action": ("step", "tool_starts", "starts"),
    "on_agent_finish": ("step", "agent_ends", "ends"),
}
CALLBACK_COUNTERS = (
    "step",
    "starts",
    "ends",
    "errors",
    "text_ctr",
    "chain_starts",
    "chain_ends",
    "llm_starts",
    "llm_ends",
    "llm_streams",
    "tool_starts",
    "tool_ends",
    "agent_ends",
)


def _counting(name: str, counters: tuple[str, ...]) -> Any:
    def callback(self: Any, *args: Any, **kwargs: Any) -> Any:
        for counter in counters:
            setattr(self, counter, getattr(self, counter) + 1)
        return getattr(super(CallbackCounters, self), name)(*args, **kwargs)

    callback.__name__ = name
    return callback


class CallbackCounters:
    """What langchain_community's `BaseMetadataCallbackHandler` gave the ClearML original (and
    the SageMaker one counted the same way), on a drop-in handler. Mix in before the handler
    class.

    The callback counters, counted on the app's thread as the originals did (a few integer
    additions a callback): `step`, `starts`, `ends`, `errors`, `text_ctr`, `chain_starts`, ...,
    `get_custom_callback_meta()` and `reset_callback_meta()`. Unlike the per-trace counters in
    the sinks' records, these count every run this handler saw, concurrent ones together, as
    the originals' did.

    The switches `ignore_llm_`, `ignore_chain_`, `ignore_agent_`, `ignore_retriever_` set
    LangChain's `ignore_llm`, ... of this handler (the original's `ignore_retriever_` changed
    nothing: it had no property reading it), and `always_verbose_` is what `always_verbose`
    reads. `reset_callback_meta()` leaves them alone (the original set the four it knew back to
    False): here they are the handler's configuration, as its `ignore_*` arguments are.

    The record lists `on_llm_start_records`, `on_llm_end_records`, ... are the rows of the
    handler's `action_records` (ClearML's) whose `action` is that callback, read when asked;
    a handler without `action_records` has empty lists.
    """

    step = starts = ends = errors = text_ctr = 0
    chain_starts = chain_ends = llm_starts = llm_ends = llm_streams = 0
    tool_starts = tool_ends = agent_ends = 0
    # The originals' flag (False there too): modern LangChain calls handlers whatever `verbose`.
    always_verbose_ = False
    # Properties, installed below the class.
    ignore_llm_: bool
    ignore_chain_: bool
    ignore_agent_: bool
    ignore_retriever_: bool
    on_llm_start_records: list[dict[str, Any]]
    on_llm_token_records: list[dict[str, Any]]
    on_llm_end_records: list[dict[str, Any]]
    on_chain_start_records: list[dict[str, Any]]
    on_chain_end_records: list[dict[str, Any]]
    on_tool_start_records: list[dict[str, Any]]
    on_tool_end_records: list[dict[str, Any]]
    on_text_records: list[dict[str, Any]]
    on_agent_finish_records: list[dict[str, Any]]
    on_agent_action_records: list[dict[str, Any]]

    @property
    def always_verbose(self) -> bool:
        return self.always_verbose_

    def get_custom_callback_meta(self) -> dict[str, int]:
        """The counters, named as the originals named them."""
        return {counter: getattr(self, counter) for counter in CALLBACK_COUNTERS}

    def reset_callback_meta(self) -> None:
        """Every counter back to 0."""
        for counter in CALLBACK_COUNTERS:
            setattr(self, counter, 0)


for _name, _counters in _COUNTED.items():
    setattr(CallbackCounters, _name, _counting(_name, _counters))


def _switch(kind: str) -> property:
    """The original's `ignore_<kind>_` field, kept in the `OTelCallbackHandler` switch of that
    kind, so LangChain's `ignore_<kind>` reads what was set."""

    def read(self: Any) -> bool:
        return bool(getattr(self, f"ignore_{kind}"))

    def write(self: Any, value: bool) -> None:
        setattr(self, f"ignore_{kind}", bool(value))

    return property(read, write, doc=f"The original's switch behind `ignore_{kind}`.")


for _kind in ("llm", "chain", "agent", "retriever"):
    setattr(CallbackCounters, f"ignore_{_kind}_", _switch(_kind))

# The original's per-callback record lists, and the `action` of the rows each one holds.
RECORD_LISTS = {
    "on_llm_start_records": "on_llm_start",
    "on_llm_token_records": "on_llm_new_token",
    "on_llm_end_records": "on_llm_end",
    "on_chain_start_records": "on_chain_start",
    "on_chain_end_records": "on_chain_end",
    "on_tool_start_records": "on_tool_start",
    "on_tool_end_records": "on_tool_end",
    "on_text_records": "on_text",
    "on_agent_finish_records": "on_agent_finish",
    "on_agent_action_records": "on_agent_action",
}


def _record_list(action: str) -> property:
    def read(self: Any) -> list[dict[str, Any]]:
        rows = getattr(self, "action_records", None) or ()
        return [row for row in rows if row.get("action") == action]

    return property(read, doc=f"The rows of `action_records` whose action is {action}.")


for _name, _action in RECORD_LISTS.items():
    setattr(CallbackCounters, _name, _record_list(_action))
