"""`OTelCallbackHandler`: every LangChain run becomes one OpenTelemetry span, linked by run tree.

Spans are parented explicitly by `parent_run_id`; a root run nests under the span current when
the app called LangChain. While a run executes its span is current (see `_run_context`), so
spans from instrumented HTTP clients inside a model or tool become its children; where
LangChain's callbacks alone cannot give that, `_langchain_patches` steps in. A run ending with an
error ends the runs below it that LangChain left open.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import Token
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from langchain_core.agents import AgentAction, AgentFinish
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.messages import BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import LLMResult
from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.context.context import Context
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode

from otel_bridge import _extract, _langchain_patches, semconv, settings
from otel_bridge._callouts import may_call_out
from otel_bridge._content import ContentPolicy, Redactor, encode, encode_text, retrieved_document
from otel_bridge._langchain_patches import take_handled_tool_error
from otel_bridge._metrics import GenAIMetrics
from otel_bridge._outcomes import ControlFlow, HandledToolError, control_flow, handled_tool_error
from otel_bridge._provider import resolve_tracer_provider
from otel_bridge._registry import OpenRunRegistry
from otel_bridge._run_context import (
    SPAN_KEY,
    RunScopedContext,
    context_for_root_run,
    enter,
    leave,
)
from otel_bridge.pricing import PriceTable
from otel_bridge.settings import (
    DEFAULT_MAX_CONTENT_LENGTH,
    DEFAULT_MAX_OPEN_RUNS,
    DEFAULT_MAX_RUN_AGE_S,
)

__all__ = ["OTelCallbackHandler"]

logger = logging.getLogger("otel_bridge")

_MAX_LOGGED_PROBLEMS = 1024
# Runs whose spans are of kind CLIENT: calls to a model service.
_MODEL_OPERATIONS = frozenset({semconv.OP_CHAT, semconv.OP_TEXT_COMPLETION})
# The span attributes that also label the GenAI metrics.
_METRIC_ATTRIBUTES = (
    semconv.GEN_AI_OPERATION_NAME,
    semconv.GEN_AI_PROVIDER_NAME,
    semconv.GEN_AI_REQUEST_MODEL,
)
# The request parameters `_extract.request_parameters` reads, by the attribute each becomes.
_REQUEST_PARAMETERS = {
    "temperature": semconv.GEN_AI_REQUEST_TEMPERATURE,
    "max_tokens": semconv.GEN_AI_REQUEST_MAX_TOKENS,
    "top_p": semconv.GEN_AI_REQUEST_TOP_P,
}
_TRACER_NAME = "otel_bridge"
# Conversations whose last run paused, kept to link the run that resumes each one.
_MAX_PAUSED_CONVERSATIONS = 10_000
# Runs that usually only format or parse (see _callouts).
_PROMPT_AND_PARSER = frozenset({semconv.RUN_TYPE_PROMPT, semconv.RUN_TYPE_PARSER})
# What a model's response says about itself, read at the end of every model run.
_RESPONSE_FACTS: tuple[tuple[str, Callable[[LLMResult], Any]], ...] = (
    (semconv.GEN_AI_RESPONSE_MODEL, _extract.response_model),
    (semconv.GEN_AI_RESPONSE_FINISH_REASONS, _extract.finish_reasons),
    (semconv.GEN_AI_RESPONSE_ID, _extract.response_id),
)


@dataclass(frozen=True, slots=True)
class _ModelRunKind:
    """How a kind of model run starts: its callback (named in logged problems), run type and
    operation, and (attribute, builder) of each content attribute made from its input."""

    callback: str
    run_type: str
    operation: str
    content: tuple[tuple[str, Callable[[Any], Any]], ...]


_CHAT_MODEL_RUN = _ModelRunKind(
    "on_chat_model_start",
    semconv.RUN_TYPE_CHAT_MODEL,
    semconv.OP_CHAT,
    ((semconv.GEN_AI_INPUT_MESSAGES, _extract.input_messages),),
)
_TEXT_MODEL_RUN = _ModelRunKind(
    "on_llm_start",
    semconv.RUN_TYPE_LLM,
    semconv.OP_TEXT_COMPLETION,
    ((semconv.LLM_PROMPTS, list), (semconv.GEN_AI_INPUT_MESSAGES, _extract.prompt_messages)),
)


class _OpenRun:
    """What the handler keeps for a run between its start and end callbacks."""

    # A plain slotted class: one is built per run, and a dataclass's keyword defaults cost more.
    __slots__ = (
        "agent_scope",
        "conversation",
        "first_token_seen",
        "metric_attributes",
        "parent",
        "paused",
        "run_id_text",
        "scope",
        "span",
        "started_s",
        "token",
    )

    def __init__(
        self, span: Span, started_s: float, run_id_text: str, parent: _OpenRun | None
    ) -> None:
        self.span = span
        self.started_s = started_s
        # The run id as written on the span, reused as its children's parent id.
        self.run_id_text = run_id_text
        # The parent run as this handler saw it start (kept after it ends): a failing run
        # finds the descendants LangChain left open through it.
        self.parent = parent
        # The name of the innermost agent this run belongs to (itself, if it is an agent).
        self.agent_scope: str | None = None if parent is None else parent.agent_scope
        self.scope: RunScopedContext | None = None
        self.token: Token[Context] | None = None
        # Set for runs that record GenAI metrics (those with an operation).
        self.metric_attributes: dict[str, str] | None = None
        self.first_token_seen = False
        # Root runs: the conversation (thread) id, and whether a LangGraph interrupt paused it.
        self.conversation: str | None = None
        self.paused = False


class OTelCallbackHandler(BaseCallbackHandler):
    """A LangChain callback handler that records every run as an OpenTelemetry span.

    `callbacks=[OTelCallbackHandler()]` traces one call; `otel_bridge.instrument()` installs one
    for every run in the process. Spans go to `tracer_provider`, else the global SDK provider,
    else (when `exporters` are given or an OTLP endpoint is configured) a provider built from the
    `OTEL_*` variables. Content (messages, inputs, outputs, documents) is captured unless
    `capture_content=False` or `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` says no
    (`false`, `NO_CONTENT`, `EVENT_ONLY`, or an unknown value, which also warns once); each
    value is at most `max_content_length` characters (argument > `OTEL_BRIDGE_MAX_CONTENT_LENGTH`
    > `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT` > 65536), and `redact` rewrites every captured string.
    Runs that never end are ended (status ERROR, counted in `evicted_runs`) once more than
    `max_open_runs` are open or one is older than `max_run_age_s` by `clock`.
    """

    raise_error: bool = False
    run_inline: bool = True

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        capture_content: bool | None = None,
        exporters: Sequence[SpanExporter] | None = None,
        *,
        max_content_length: int | None = None,
        redact: Redactor | None = None,
        max_open_runs: int = DEFAULT_MAX_OPEN_RUNS,
        max_run_age_s: float = DEFAULT_MAX_RUN_AGE_S,
        raise_error: bool = False,
        prices: PriceTable | str | os.PathLike[str] | Mapping[str, Any] | None = None,
        semconv: str | Sequence[str] | None = None,
        ignore_llm: bool = False,
        ignore_chat_model: bool = False,
        ignore_chain: bool = False,
        ignore_agent: bool = False,
        ignore_retriever: bool = False,
        ignore_retry: bool = False,
        ignore_custom_event: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        # Arguments are validated before the provider is resolved: a bad argument must not
        # leave a global provider installed or exporters wired behind.
        self._content = ContentPolicy(
            max_length=settings.MAX_CONTENT_LENGTH.resolve(max_content_length)
            or DEFAULT_MAX_CONTENT_LENGTH,
            redact=redact,
        )
        self._clock = clock
        self._runs: OpenRunRegistry[_OpenRun] = OpenRunRegistry(
            max_runs=max_open_runs,
            max_age_s=max_run_age_s,
            clock=clock,
            on_evict=self._end_evicted,
        )
        self.capture_content = settings.CAPTURE_CONTENT.resolve(capture_content)
        self._prices = _price_table(prices)
        vocabularies = settings.SEMCONV.resolve(
            None
            if semconv is None
            else settings.parse_vocabularies(
                semconv if isinstance(semconv, str) else ",".join(semconv)
            )
        )
        self._openinference = _OPENINFERENCE in vocabularies
        provider = resolve_tracer_provider(tracer_provider, list(exporters or ()))
        self._tracer = provider.get_tracer(_TRACER_NAME)
        self._metrics = GenAIMetrics(meter_provider)
        self.raise_error = raise_error
        # Instance attributes: LangChain reads one on every callback, at dict speed.
        self.ignore_llm = ignore_llm
        self.ignore_chat_model = ignore_chat_model
        self.ignore_chain = ignore_chain
        self.ignore_agent = ignore_agent
        self.ignore_retriever = ignore_retriever
        self.ignore_retry = ignore_retry
        self.ignore_custom_event = ignore_custom_event
        self._usage_lock = threading.Lock()
        # Per model: [input tokens, output tokens], summed as runs end.
        self._usage: dict[str, list[int]] = {}
        self._logged_problems: set[tuple[str, str]] = set()
        # Conversation id -> the span context of its last run, when that run paused.
        self._paused: dict[str, SpanContext] = {}
        self._paused_lock = threading.Lock()
        _langchain_patches.install(OTelCallbackHandler)

    # --- LangChain's ignore_* switches (its read-only properties, made settable) ------------------
    ignore_llm: bool = False
    ignore_chat_model: bool = False
    ignore_chain: bool = False
    ignore_agent: bool = False
    ignore_retriever: bool = False
    ignore_retry: bool = False
    ignore_custom_event: bool = False

    # --- public state ----------------------------------------------------------------------------
    @property
    def usage_metadata(self) -> dict[str, UsageMetadata]:
        """Token usage summed per model name, like langchain_core's UsageMetadataCallbackHandler."""
        with self._usage_lock:
            totals = [(model, tokens[0], tokens[1]) for model, tokens in self._usage.items()]
        return {
            model: UsageMetadata(
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                total_tokens=input_tokens + output_tokens,
            )
            for model, input_tokens, output_tokens in totals
        }

    @property
    def open_runs(self) -> int:
        """Runs started and not yet ended."""
        return len(self._runs)

    @property
    def evicted_runs(self) -> int:
        """Runs that never ended and were ended by the open-run bounds instead."""
        return self._runs.evicted

    def span_for_run(self, run_id: UUID) -> Span | None:
        """The span of a run that is still open, else None."""
        run = self._runs.get(run_id)
        return None if run is None else run.span

    def _span_not_current(self, run_id: UUID) -> Span | None:
        """An open run's span when it is not the current span here (see _langchain_patches)."""
        run = self._runs.get(run_id)
        if run is None or otel_context.get_current().get(SPAN_KEY) is run.span:
            return None
        return run.span

    def end_stale_runs(self) -> int:
        """End runs older than `max_run_age_s` now (also done on every run start)."""
        return self._runs.end_stale()

    # --- problems: logged once per kind, never raised unless raise_error ------------------------
    def _problem(self, where: str, error: BaseException) -> None:
        key = (where, type(error).__name__)
        if key not in self._logged_problems and len(self._logged_problems) < _MAX_LOGGED_PROBLEMS:
            self._logged_problems.add(key)
            logger.warning(
                "otel-bridge: %s failed (%s: %s); the span goes on without it (logged once)",
                where,
                type(error).__name__,
                error,
                exc_info=error,
            )
        if self.raise_error:
            raise error

    def _compute(self, name: str, compute: Callable[..., Any], *args: Any) -> Any:
        """`compute(*args)`, or None when it fails: a failure costs this one attribute."""
        try:
            return compute(*args)
        except Exception as error:
            self._problem(name, error)
            return None

    def _put(
        self, attributes: dict[str, Any], name: str, compute: Callable[..., Any], *args: Any
    ) -> None:
        value = self._compute(name, compute, *args)
        if _present(value):
            attributes[name] = value

    def _capture(
        self,
        attributes: dict[str, Any],
        key: str,
        value: Any,
        build: Callable[[Any], Any] | None = None,
        *,
        text: bool = False,
    ) -> None:
        """Put the content `value` (as `build(value)` if given) under `key`, encoded (with
        `text`, a string as it is).

        A failure costs this one attribute. Content is written on every run, so this is one
        call deep rather than going through `_put`.
        """
        try:
            value = value if build is None else build(value)
            attributes[key] = (encode_text if text else encode)(value, self._content)
        except Exception as error:
            self._problem(key, error)

    # --- starting and ending spans --------------------------------------------------------------
    def _start(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        run_type: str,
        name: str,
        span_name: str,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
        attributes: dict[str, Any],
        *,
        operation: str | None = None,
        enter_scope: bool = True,
    ) -> _OpenRun | None:
        """Start the run's span with `attributes` plus the run identity; None when suppressed.

        Everything that can fail is computed before the span starts, so a failure (re-raised
        with `raise_error`) never leaves a span open or a context attached.
        """
        # Read once: the suppression flag, a root run's parent and the scope entered below all
        # come from the caller's current context.
        current = otel_context.get_current()
        if current.get(_SUPPRESS_INSTRUMENTATION_KEY):
            return None
        if run_id is None:
            self._problem("starting a run", ValueError("LangChain passed no run_id"))
            return None
        runs = self._runs
        if parent_run_id is None:
            parent = None
            parent_context: Context | None = (
                context_for_root_run(current) if isinstance(current, RunScopedContext) else current
            )
        else:
            parent = runs.get(parent_run_id)
            if parent is None:
                # A parent we never saw (ignored, suppressed, or started before this handler
                # was installed): the current span is the best evidence of where this run
                # belongs.
                parent_context = None
                parent_id_text = str(parent_run_id)
            else:
                scope = parent.scope
                parent_context = (
                    scope
                    if scope is not None and scope.is_open
                    else trace.set_span_in_context(parent.span)
                )
                # The parent's id was already formatted when the parent started.
                parent_id_text = parent.run_id_text
        run_id_text = attributes[semconv.RUN_ID] = str(run_id)
        attributes[semconv.RUN_TYPE] = run_type
        attributes[semconv.RUN_NAME] = name
        if parent_run_id is not None:
            attributes[semconv.RUN_PARENT_ID] = parent_id_text
        if tags:
            try:
                attributes[semconv.RUN_TAGS] = _extract.tags(tags)
            except Exception as error:
                self._problem(semconv.RUN_TAGS, error)
        if metadata:
            self._metadata_attributes(attributes, metadata)
        if self._openinference:
            _openinference_start(attributes, run_type)
        conversation = links = None
        if parent_run_id is None:
            conversation = attributes.get(semconv.GEN_AI_CONVERSATION_ID)
            if conversation is not None and self._paused:
                links = self._resume_link(conversation)
        span = self._tracer.start_span(
            span_name,
            context=parent_context,
            # A model call is a call to a model service (the GenAI convention's CLIENT).
            kind=SpanKind.CLIENT if operation in _MODEL_OPERATIONS else SpanKind.INTERNAL,
            attributes=attributes,
            links=links,
        )
        started_s = self._clock()
        run = _OpenRun(span, started_s, run_id_text, parent)
        run.conversation = conversation
        if operation is not None:
            run.metric_attributes = {
                key: attributes[key] for key in _METRIC_ATTRIBUTES if key in attributes
            }
        runs.add(run_id, run, started_s)
        if enter_scope:
            run.scope, run.token = enter(span, parent_run_id is None, current)
        return run

    def _metadata_attributes(self, attributes: dict[str, Any], metadata: dict[str, Any]) -> None:
        """`langchain.run.metadata.*` and the conversation id; each failure costs its own."""
        try:
            if not _extract.carries_attributes(metadata):
                return
        except Exception as error:
            self._problem(semconv.RUN_METADATA_PREFIX + "*", error)
            # The conversation id is read by key, which may still work.
            self._put(
                attributes, semconv.GEN_AI_CONVERSATION_ID, _extract.conversation_id, metadata
            )
            return
        metadata_attributes = self._compute(
            semconv.RUN_METADATA_PREFIX + "*",
            _extract.metadata_attributes,
            metadata,
            semconv.RUN_METADATA_PREFIX,
        )
        if metadata_attributes:
            attributes.update(metadata_attributes)
        self._put(attributes, semconv.GEN_AI_CONVERSATION_ID, _extract.conversation_id, metadata)
        identity = self._compute("user.id/session.id", _extract.identity_attributes, metadata)
        if identity:
            attributes.update(identity)

    def _finish(
        self, run: _OpenRun, error: BaseException | None = None, flow: ControlFlow | None = None
    ) -> None:
        span = run.span
        if flow is not None:
            self._record_control_flow(span, flow)
        elif error is not None:
            self._record_error(span, error)
        if run.paused:
            self._remember_pause(run)
        if run.token is not None and run.scope is not None:
            leave(run.scope, run.token)
        span.end()

    def _record_error(self, span: Span, error: BaseException) -> None:
        if isinstance(error, GeneratorExit):
            # The consumer stopped reading a stream: the run ended early, it did not fail.
            span.set_attribute(semconv.RUN_CLOSED_EARLY, True)
            return
        error_type = type(error).__qualname__
        span.set_attribute(semconv.ERROR_TYPE, error_type)
        span.record_exception(error, escaped=True)
        span.set_status(Status(StatusCode.ERROR, f"{error_type}: {error}"))

    def _record_control_flow(self, span: Span, flow: ControlFlow) -> None:
        """A LangGraph pause or hand-off: not an error (status stays UNSET)."""
        span.set_attribute(semconv.RUN_CONTROL_FLOW, flow.kind)
        if not flow.paused:
            return
        span.set_attribute(semconv.RUN_INTERRUPTED, True)
        for interrupt_id, value in flow.interrupts:
            attributes: dict[str, Any] = {}
            if interrupt_id is not None:
                attributes[semconv.INTERRUPT_ID] = interrupt_id
            if self.capture_content:
                self._capture(attributes, semconv.INTERRUPT_VALUE, value)
            span.add_event(semconv.EVENT_INTERRUPT, attributes)

    def _record_handled_error(self, span: Span, failure: HandledToolError) -> None:
        span.set_attribute(semconv.ERROR_TYPE, failure.error_type)
        if failure.exception is not None:
            # Handled: the exception did not escape the tool.
            span.record_exception(failure.exception, escaped=False)
        span.set_status(Status(StatusCode.ERROR, failure.text[: self._content.max_length]))

    def _note_pause(self, run: _OpenRun) -> None:
        """Mark the root of `run`'s tree as paused; it is recorded as such when it ends."""
        root = run
        while root.parent is not None:
            root = root.parent
        root.paused = True

    def _remember_pause(self, run: _OpenRun) -> None:
        run.span.set_attribute(semconv.RUN_INTERRUPTED, True)
        if run.conversation is None:
            return
        with self._paused_lock:
            paused = self._paused
            paused.pop(run.conversation, None)
            paused[run.conversation] = run.span.get_span_context()
            if len(paused) > _MAX_PAUSED_CONVERSATIONS:
                del paused[next(iter(paused))]

    def _resume_link(self, conversation: str) -> list[Link] | None:
        """A link to the paused run of `conversation`, which the run starting now follows."""
        with self._paused_lock:
            paused = self._paused.pop(conversation, None)
        if paused is None:
            return None
        return [Link(paused, {semconv.LINK_TYPE: semconv.LINK_TYPE_RESUME})]

    def _end_evicted(self, run_id: UUID, run: _OpenRun, reason: str) -> None:
        try:
            run.span.set_attribute(semconv.RUN_ABANDONED, True)
            run.span.set_status(Status(StatusCode.ERROR, reason))
            if run.scope is not None:
                run.scope.close()
            run.span.end()
        except Exception as error:
            self._problem("ending an abandoned run", error)

    def _record_metrics(
        self, run: _OpenRun, error_type: str | None, usage: _extract.Usage | None
    ) -> None:
        attributes = run.metric_attributes
        if attributes is None:
            return
        if error_type is not None:
            attributes = {**attributes, semconv.ERROR_TYPE: error_type}
        self._metrics.record(attributes, self._clock() - run.started_s, usage)

    def _end_with_error(self, run_id: UUID, error: BaseException) -> None:
        run = self._runs.pop(run_id)
        if run is None:
            return
        flow = self._compute("LangGraph control flow", control_flow, error)
        if flow is not None and flow.paused:
            self._note_pause(run)
        self._end_failed(run, error, flow)
        if len(self._runs):
            self._end_descendants(run, error, flow)

    def _end_failed(self, run: _OpenRun, error: BaseException, flow: ControlFlow | None) -> None:
        try:
            failed = flow is None and not isinstance(error, GeneratorExit)
            self._record_metrics(run, type(error).__qualname__ if failed else None, None)
        except Exception as problem:
            self._problem("recording metrics", problem)
        finally:
            self._finish(run, error, flow)

    def _end_descendants(
        self, ended: _OpenRun, error: BaseException, flow: ControlFlow | None
    ) -> None:
        """End, with `error`, every run still open below `ended`.

        LangChain skips the end callbacks of runs it abandons: a model call cancelled at
        `agenerate`'s `gather`, the inner steps of a stream closed mid-way. Their ancestor's
        error is the truest end they will get; a later end callback for them finds nothing.
        """
        for run_id, run in self._runs.snapshot():
            ancestor = run.parent
            while ancestor is not None and ancestor is not ended:
                ancestor = ancestor.parent
            if ancestor is not None and self._runs.remove(run_id, run):
                self._end_failed(run, error, flow)

    # --- model runs -----------------------------------------------------------------------------
    def _model_attributes(
        self,
        operation: str,
        serialized: dict[str, Any],
        metadata: dict[str, Any] | None,
        invocation_params: Mapping[str, Any] | None,
    ) -> tuple[dict[str, Any], str | None]:
        """The request attributes of a model run, and the requested model name."""
        attributes: dict[str, Any] = {semconv.GEN_AI_OPERATION_NAME: operation}
        provider = (metadata or {}).get("ls_provider")
        if isinstance(provider, str) and provider:
            attributes[semconv.GEN_AI_PROVIDER_NAME] = provider
        # Each under its own guard: a failure costs only its attributes (written out rather than
        # `_compute`: this runs at every model start).
        try:
            model = _extract.request_model(serialized, metadata, invocation_params)
        except Exception as error:
            self._problem(semconv.GEN_AI_REQUEST_MODEL, error)
            model = None
        else:
            if model:
                attributes[semconv.GEN_AI_REQUEST_MODEL] = model
        try:
            parameters = _extract.request_parameters(metadata, invocation_params)
        except Exception as error:
            self._problem("request parameters", error)
        else:
            for key, value in parameters.items():
                attributes[_REQUEST_PARAMETERS[key]] = value
        return attributes, model

    def _start_model(
        self,
        kind: _ModelRunKind,
        serialized: dict[str, Any],
        inputs: Any,
        run_id: UUID,
        kwargs: dict[str, Any],
    ) -> None:
        """Start a model run of `kind` whose input (messages or prompts) is `inputs`; `kwargs`
        are the callback's other keyword arguments. A failure costs the span."""
        try:
            params = kwargs.get("invocation_params")
            if not isinstance(params, Mapping):
                params = None
            metadata = kwargs.get("metadata")
            operation = kind.operation
            attributes, model = self._model_attributes(operation, serialized, metadata, params)
            if self.capture_content:
                for key, build in kind.content:
                    self._capture(attributes, key, inputs, build)
                # Opt-in in the convention (descriptions and schemas can be large): with content.
                if params is not None:
                    try:
                        definitions = _extract.tool_definitions(params)
                    except Exception as error:  # costs this attribute only
                        self._problem(semconv.GEN_AI_TOOL_DEFINITIONS, error)
                        definitions = None
                    if definitions:
                        self._capture(attributes, semconv.GEN_AI_TOOL_DEFINITIONS, definitions)
            name = _extract.run_name(serialized, kwargs.get("name"))
            # `generate` over several prompts starts every run before calling the model once per
            # prompt in the same context: no single run's span can be current for those calls.
            batch_size = kwargs.get("batch_size")
            single = not isinstance(batch_size, int) or batch_size <= 1
            self._start(
                run_id,
                kwargs.get("parent_run_id"),
                kind.run_type,
                name,
                f"{operation} {model}" if model else name,
                kwargs.get("tags"),
                metadata,
                attributes,
                operation=operation,
                enter_scope=single,
            )
        except Exception as error:
            self._problem(kind.callback, error)

    # LangChain passes parent_run_id, tags, metadata and the rest as keywords too.
    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        self._start_model(_CHAT_MODEL_RUN, serialized, messages, run_id, kwargs)

    def on_llm_start(
        self, serialized: dict[str, Any], prompts: list[str], *, run_id: UUID, **kwargs: Any
    ) -> None:
        self._start_model(_TEXT_MODEL_RUN, serialized, prompts, run_id, kwargs)

    def on_llm_new_token(
        self, token: str | list[str | dict[str, Any]], *, run_id: UUID, **kwargs: Any
    ) -> None:
        run = self._runs.get(run_id)
        if run is None or run.first_token_seen:
            return
        try:
            run.first_token_seen = True
            elapsed = self._clock() - run.started_s
            run.span.set_attribute(semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, elapsed)
            run.span.add_event(
                semconv.EVENT_FIRST_TOKEN,
                {semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: elapsed},
            )
        except Exception as error:
            self._problem("on_llm_new_token", error)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.pop(run_id)
        if run is None:
            return
        try:
            attributes: dict[str, Any] = {}
            # Each fact under its own guard: a malformed payload costs only its attribute. The
            # guards are written out here (not `_put`): four of them run at every model end.
            try:
                usage = _extract.usage(response)
            except Exception as error:
                self._problem("token usage", error)
                usage = None
            if usage is not None:
                if usage.input_tokens is not None:
                    attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] = usage.input_tokens
                if usage.output_tokens is not None:
                    attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] = usage.output_tokens
                for detail, count in (
                    (semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, usage.cache_read_input_tokens),
                    (
                        semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
                        usage.cache_creation_input_tokens,
                    ),
                    (semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, usage.reasoning_output_tokens),
                ):
                    if count is not None:
                        attributes[detail] = count
            for key, extract in _RESPONSE_FACTS:
                try:
                    value = extract(response)
                except Exception as error:
                    self._problem(key, error)
                    continue
                if _present(value):
                    attributes[key] = value
            if self.capture_content:
                self._capture(
                    attributes, semconv.GEN_AI_OUTPUT_MESSAGES, response, _extract.output_messages
                )
            response_model = attributes.get(semconv.GEN_AI_RESPONSE_MODEL)
            metric_attributes = run.metric_attributes or {}
            cost = None
            if self._prices is not None:
                cost = self._compute(
                    semconv.LLM_COST,
                    self._prices.cost,
                    usage,
                    response_model,
                    metric_attributes.get(semconv.GEN_AI_REQUEST_MODEL),
                )
                if cost is not None:
                    attributes[semconv.LLM_COST] = cost
            run.span.set_attributes(attributes)
            if response_model:
                metric_attributes[semconv.GEN_AI_RESPONSE_MODEL] = response_model
            if cost is not None and run.metric_attributes is not None:
                self._metrics.record_cost(metric_attributes, cost)
            self._add_usage(
                response_model or metric_attributes.get(semconv.GEN_AI_REQUEST_MODEL), usage
            )
            self._record_metrics(run, None, usage)
        except Exception as error:
            self._problem("on_llm_end", error)
        finally:
            self._finish(run)

    def _add_usage(self, model: str | None, usage: _extract.Usage | None) -> None:
        if usage is None or model is None:
            return
        input_tokens = usage.input_tokens or 0
        output_tokens = usage.output_tokens or 0
        with self._usage_lock:
            totals = self._usage.get(model)
            if totals is None:
                self._usage[model] = [input_tokens, output_tokens]
            else:
                totals[0] += input_tokens
                totals[1] += output_tokens

    # --- chains, agents, prompts, parsers ------------------------------------------------------
    def on_chain_start(
        self,
        serialized: dict[str, Any],
        inputs: dict[str, Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            name = _extract.run_name(serialized, kwargs.get("name"))
            run_type = kwargs.get("run_type") or semconv.RUN_TYPE_CHAIN
            attributes: dict[str, Any] = {}
            agent_name = self._agent_name(serialized, name, metadata, parent_run_id)
            span_name = name
            operation = None
            if agent_name is not None:
                run_type = semconv.RUN_TYPE_AGENT
                operation = semconv.OP_INVOKE_AGENT
                span_name = f"{operation} {agent_name}"
                attributes[semconv.GEN_AI_OPERATION_NAME] = operation
                attributes[semconv.GEN_AI_AGENT_NAME] = agent_name
            if self.capture_content:
                self._capture(attributes, semconv.LANGCHAIN_INPUT, inputs)
            run = self._start(
                run_id,
                parent_run_id,
                str(run_type),
                name,
                span_name,
                tags,
                metadata,
                attributes,
                operation=operation,
                # LangChain's own templates and parsers run no code that could call out.
                enter_scope=run_type not in _PROMPT_AND_PARSER or may_call_out(serialized, name),
            )
            if run is not None and agent_name is not None:
                run.agent_scope = agent_name
        except Exception as error:
            self._problem("on_chain_start", error)

    def _agent_name(
        self,
        serialized: Mapping[str, Any] | None,
        name: str,
        metadata: Mapping[str, Any] | None,
        parent_run_id: UUID | None,
    ) -> str | None:
        """The agent's name when this chain run is an agent, else None.

        Classic agents are `AgentExecutor` runs. `langchain.agents.create_agent` graphs mark
        their config with `ls_integration`; that metadata is inherited by every run inside the
        agent, so only the outermost run carrying a given agent name is the agent.
        """
        ids = (serialized or {}).get("id")
        if name == "AgentExecutor" or (
            isinstance(ids, list) and ids and ids[-1] == "AgentExecutor"
        ):
            return name
        if not metadata or metadata.get("ls_integration") != "langchain_create_agent":
            return None
        agent_name = str(metadata.get("lc_agent_name") or name)
        parent = self._runs.get(parent_run_id)
        if parent is not None and parent.agent_scope == agent_name:
            return None
        return agent_name

    def _end_run(
        self,
        run_id: UUID,
        key: str,
        output: Any,
        build: Callable[[Any], Any] | None = None,
        more_attributes: Callable[[Any], Mapping[str, Any]] | None = None,
        failure: HandledToolError | None = None,
        *,
        text: bool = False,
    ) -> None:
        """End a run whose output is content under `key`, plus `more_attributes(output)`;
        with `failure`, as that error."""
        run = self._runs.pop(run_id)
        if run is None:
            return
        try:
            if self.capture_content:
                # One attribute: set_attribute costs the SDK half what set_attributes does.
                try:
                    built = output if build is None else build(output)
                    content = (encode_text if text else encode)(built, self._content)
                except Exception as error:
                    self._problem(key, error)
                else:
                    run.span.set_attribute(key, content)
                    if self._openinference and key == semconv.LANGCHAIN_OUTPUT:
                        run.span.set_attributes(
                            {
                                semconv.OUTPUT_VALUE: content,
                                semconv.OUTPUT_MIME_TYPE: semconv.MIME_JSON,
                            }
                        )
            if more_attributes is not None:
                attributes = more_attributes(output)
                if attributes:
                    run.span.set_attributes(attributes)
            if failure is not None:
                self._record_handled_error(run.span, failure)
            if run.metric_attributes is not None:
                self._record_metrics(run, None if failure is None else failure.error_type, None)
        except Exception as error:
            self._problem("ending a run", error)
        finally:
            self._finish(run)

    def on_chain_end(self, outputs: dict[str, Any] | Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end_run(run_id, semconv.LANGCHAIN_OUTPUT, outputs)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end_with_error(run_id, error)

    # A run of any kind fails the same way.
    on_llm_error = on_tool_error = on_retriever_error = on_chain_error

    def on_agent_action(self, action: AgentAction, *, run_id: UUID, **kwargs: Any) -> None:
        self._event(
            "on_agent_action",
            run_id,
            semconv.EVENT_AGENT_ACTION,
            lambda: {"tool": str(action.tool)},
            lambda: (("tool_input", action.tool_input), ("log", action.log)),
        )

    def on_agent_finish(self, finish: AgentFinish, *, run_id: UUID, **kwargs: Any) -> None:
        self._event(
            "on_agent_finish",
            run_id,
            semconv.EVENT_AGENT_FINISH,
            dict,
            lambda: (("return_values", finish.return_values), ("log", finish.log)),
        )

    # --- tools ----------------------------------------------------------------------------------
    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            name = _extract.run_name(serialized, kwargs.get("name"))
            # The tool's own name: `name` may be a run_name given in the config.
            serialized_name = (serialized or {}).get("name")
            tool_name = (
                serialized_name if isinstance(serialized_name, str) and serialized_name else name
            )
            attributes: dict[str, Any] = {
                semconv.GEN_AI_OPERATION_NAME: semconv.OP_EXECUTE_TOOL,
                semconv.GEN_AI_TOOL_NAME: tool_name,
            }
            description = (serialized or {}).get("description")
            if isinstance(description, str) and description:
                attributes[semconv.GEN_AI_TOOL_DESCRIPTION] = description
            tool_call_id = kwargs.get("tool_call_id")
            if isinstance(tool_call_id, str) and tool_call_id:
                attributes[semconv.GEN_AI_TOOL_CALL_ID] = tool_call_id
            if self.capture_content:
                self._capture(
                    attributes,
                    semconv.GEN_AI_TOOL_CALL_ARGUMENTS,
                    inputs if inputs is not None else input_str,
                    text=True,
                )
            self._start(
                run_id,
                parent_run_id,
                semconv.RUN_TYPE_TOOL,
                name,
                f"{semconv.OP_EXECUTE_TOOL} {tool_name}",
                tags,
                metadata,
                attributes,
                operation=semconv.OP_EXECUTE_TOOL,
            )
        except Exception as error:
            self._problem("on_tool_start", error)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        # A tool error LangChain handled arrives here, as the tool's output.
        failure = self._compute(
            "handled tool error",
            handled_tool_error,
            output,
            take_handled_tool_error(_tool_result(output)),
        )
        self._end_run(
            run_id,
            semconv.GEN_AI_TOOL_CALL_RESULT,
            output,
            _tool_result,
            _tool_call_id,
            failure,
            text=True,
        )

    # --- retrievers -----------------------------------------------------------------------------
    def on_retriever_start(
        self, serialized: dict[str, Any], query: str, *, run_id: UUID, **kwargs: Any
    ) -> None:
        try:
            name = _extract.run_name(serialized, kwargs.get("name"))
            attributes: dict[str, Any] = {semconv.GEN_AI_OPERATION_NAME: semconv.OP_RETRIEVAL}
            if self.capture_content:
                self._capture(attributes, semconv.GEN_AI_RETRIEVAL_QUERY_TEXT, query, text=True)
            self._start(
                run_id,
                kwargs.get("parent_run_id"),
                semconv.RUN_TYPE_RETRIEVER,
                name,
                name,
                kwargs.get("tags"),
                kwargs.get("metadata"),
                attributes,
            )
        except Exception as error:
            self._problem("on_retriever_start", error)

    def on_retriever_end(
        self, documents: Sequence[Document], *, run_id: UUID, **kwargs: Any
    ) -> None:
        self._end_run(run_id, semconv.GEN_AI_RETRIEVAL_DOCUMENTS, documents, _documents)

    # --- events on an open run's span ------------------------------------------------------------
    def _event(
        self,
        where: str,
        run_id: UUID,
        name: str,
        facts: Callable[[], dict[str, Any]],
        content: Callable[[], tuple[tuple[str, Any], ...]] | None = None,
    ) -> None:
        """Add the event `name` to the open run's span: attributes `facts()`, plus each
        `(key, value)` of `content()` encoded when content is captured. A failure costs the
        event, logged as `where`."""
        try:
            attributes = facts()
            if content is not None and self.capture_content:
                for key, value in content():
                    self._capture(attributes, key, value)
            run = self._runs.get(run_id)
            if run is not None:
                run.span.add_event(name, attributes)
        except Exception as error:
            self._problem(where, error)

    def on_text(self, text: str, *, run_id: UUID, **kwargs: Any) -> None:
        self._event("on_text", run_id, semconv.EVENT_TEXT, dict, lambda: (("text", text),))

    def on_retry(self, retry_state: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._event("on_retry", run_id, semconv.EVENT_RETRY, lambda: _retry_facts(retry_state))

    def on_custom_event(
        self,
        name: str,
        data: Any,
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._event(
            "on_custom_event",
            run_id,
            semconv.EVENT_CUSTOM,
            lambda: {"name": str(name)},
            lambda: (("data", data),),
        )


_OPENINFERENCE = semconv.VOCABULARY_OPENINFERENCE
# OpenInference's span kinds by LangChain run type (anything else is a CHAIN).
_OPENINFERENCE_KINDS = {
    semconv.RUN_TYPE_LLM: "LLM",
    semconv.RUN_TYPE_CHAT_MODEL: "LLM",
    semconv.RUN_TYPE_TOOL: "TOOL",
    semconv.RUN_TYPE_RETRIEVER: "RETRIEVER",
    semconv.RUN_TYPE_AGENT: "AGENT",
    semconv.RUN_TYPE_PROMPT: "PROMPT",
}


def _openinference_start(attributes: dict[str, Any], run_type: str) -> None:
    """The OpenInference attributes of a starting run, from the facts already in `attributes`."""
    attributes[semconv.OPENINFERENCE_SPAN_KIND] = _OPENINFERENCE_KINDS.get(run_type, "CHAIN")
    content = attributes.get(semconv.LANGCHAIN_INPUT)
    if content is not None:
        attributes[semconv.INPUT_VALUE] = content
        attributes[semconv.INPUT_MIME_TYPE] = semconv.MIME_JSON
    prefix = semconv.RUN_METADATA_PREFIX
    metadata = {key[len(prefix) :]: v for key, v in attributes.items() if key.startswith(prefix)}
    if metadata:
        attributes[semconv.METADATA] = json.dumps(metadata, default=str)


def _price_table(
    prices: PriceTable | str | os.PathLike[str] | Mapping[str, Any] | None,
) -> PriceTable | None:
    """The argument's table (a bad one raises ValueError at construction), else the file
    OTEL_BRIDGE_PRICES names (a bad one costs the costs, with one WARNING, never the app)."""
    if prices is not None:
        return prices if isinstance(prices, PriceTable) else PriceTable.load(prices)
    found = settings.PRICES.lookup()
    if found is None:
        return None
    try:
        return PriceTable.load(found.value)
    except ValueError as error:
        logger.warning("otel-bridge: %s: %s; no costs are recorded", found.source, error)
        return None


def _present(value: Any) -> bool:
    """Whether an extracted fact is worth an attribute: not None, not an empty tuple.

    Decided by type, never by the value's own comparison or truth, which a hostile payload may
    make raise.
    """
    return value is not None and (type(value) is not tuple or len(value) > 0)


def _retry_facts(retry_state: Any) -> dict[str, Any]:
    """The attempt number and, when it failed, the error of a tenacity retry state."""
    attributes: dict[str, Any] = {}
    attempt = getattr(retry_state, "attempt_number", None)
    if isinstance(attempt, int):
        attributes["attempt"] = attempt
    outcome = getattr(retry_state, "outcome", None)
    failure = outcome.exception() if outcome is not None and outcome.failed else None
    if failure is not None:
        attributes[semconv.ERROR_TYPE] = type(failure).__qualname__
        attributes["exception.message"] = str(failure)
    return attributes


def _tool_result(output: Any) -> Any:
    return output.content if isinstance(output, BaseMessage) else output


def _tool_call_id(output: Any) -> dict[str, str]:
    call_id = getattr(output, "tool_call_id", None)
    return {semconv.GEN_AI_TOOL_CALL_ID: call_id} if isinstance(call_id, str) and call_id else {}


def _documents(documents: Sequence[Document]) -> list[dict[str, Any]]:
    return [
        retrieved_document(document, position)
        if isinstance(document, Document)
        else {"id": str(position), "score": None, "content": str(document), "metadata": {}}
        for position, document in enumerate(documents)
    ]
