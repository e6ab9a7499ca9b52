"""`instrument()` / `uninstrument()`: trace every LangChain run in the process, no code change.

LangChain's configure hooks add a handler to every callback manager it builds; the hook's
"context variable" here reads one process-wide slot, so runs in any thread or task see it.
One LangChain code path needs more than a handler for context propagation (see
`_legacy_llm_context`), and instrument() patches it while instrumented.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, cast

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, BaseCallbackHandler
from langchain_core.language_models import BaseLLM
from langchain_core.outputs import LLMResult
from langchain_core.tracers import context as tracer_context
from opentelemetry import metrics, trace

from otel_bridge.handler import OTelCallbackHandler

__all__ = ["instrument", "instrumented_handler", "uninstrument"]


class _ProcessWideHandler:
    """Quacks like the `ContextVar` LangChain's configure hook reads, but is process-wide.

    A real ContextVar would only be set in the context that called `instrument()`: threads
    started later (and their executors) begin with an empty context and would go untraced.
    """

    __slots__ = ("handler",)

    def __init__(self) -> None:
        self.handler: OTelCallbackHandler | None = None

    def get(self, default: Any = None) -> OTelCallbackHandler | None:
        return self.handler if self.handler is not None else default


_AgenerateHelper = Callable[..., Awaitable[LLMResult]]


def _legacy_llm_context(original: _AgenerateHelper) -> _AgenerateHelper:
    """Make an async text-completion run's span current around the model's own code.

    `BaseLLM.agenerate` starts its runs inside `asyncio.gather`, i.e. in child tasks whose
    context changes never reach the caller, so the context the handler attaches at the start
    is not the one `_agenerate` runs in. This wrapper attaches the span in the right one.
    """

    @functools.wraps(original)
    async def _agenerate_helper(
        self: BaseLLM,
        prompts: list[str],
        stop: list[str] | None,
        run_managers: list[AsyncCallbackManagerForLLMRun],
        *args: Any,
        **kwargs: Any,
    ) -> LLMResult:
        span = _single_run_span(run_managers)
        if span is None:
            return await original(self, prompts, stop, run_managers, *args, **kwargs)
        # Attached and detached within this coroutine, so always in the same context.
        with trace.use_span(
            span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        ):
            return await original(self, prompts, stop, run_managers, *args, **kwargs)

    return _agenerate_helper


def _single_run_span(run_managers: list[AsyncCallbackManagerForLLMRun]) -> trace.Span | None:
    # With several prompts the model serves them all in one call: no single span is right.
    if len(run_managers) != 1:
        return None
    run_manager = run_managers[0]
    for handler in run_manager.handlers:
        if isinstance(handler, OTelCallbackHandler):
            span = handler.span_for_run(run_manager.run_id)
            if span is not None:
                return span
    return None


_slot = _ProcessWideHandler()
_unpatched_agenerate_helper: _AgenerateHelper | None = None
# With a handler class in the hook, LangChain adds the process-wide handler only to callback
# managers that hold no OTelCallbackHandler yet: a run the app also passes its own handler (or a
# sink's drop-in handler, whose spans reach the global provider's processors too) is traced once,
# not twice.
_hook = (cast("ContextVar[BaseCallbackHandler | None]", _slot), True, OTelCallbackHandler, None)
_lock = threading.Lock()


def instrument(
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    **options: Any,
) -> OTelCallbackHandler:
    """Trace every LangChain run in this process; returns the handler doing it.

    `options` are `OTelCallbackHandler`'s (`exporters=`, `capture_content=`, ...). Calling it
    again while instrumented changes nothing and returns the handler already installed. Runs
    given an `OTelCallbackHandler` of their own (or a sink's drop-in handler) are traced by that
    handler alone, so no span is recorded twice.
    """
    with _lock:
        if _slot.handler is not None:
            return _slot.handler
        handler = OTelCallbackHandler(
            tracer_provider=tracer_provider, meter_provider=meter_provider, **options
        )
        _slot.handler = handler
        if _hook not in tracer_context._configure_hooks:
            tracer_context.register_configure_hook(
                _hook[0], inheritable=True, handle_class=OTelCallbackHandler
            )
        _patch_legacy_llm()
        return handler


def _patch_legacy_llm() -> None:
    global _unpatched_agenerate_helper
    original = getattr(BaseLLM, "_agenerate_helper", None)
    # A LangChain without this private method gets the handler alone, which still parents
    # every LangChain span correctly.
    if original is None or _unpatched_agenerate_helper is not None:
        return
    _unpatched_agenerate_helper = original
    BaseLLM._agenerate_helper = _legacy_llm_context(original)  # type: ignore[method-assign,assignment]


def _unpatch_legacy_llm() -> None:
    global _unpatched_agenerate_helper
    if _unpatched_agenerate_helper is not None:
        BaseLLM._agenerate_helper = _unpatched_agenerate_helper  # type: ignore[method-assign,assignment]
        _unpatched_agenerate_helper = None


def uninstrument() -> None:
    """Stop tracing runs started from now on; removes the hook entirely. Safe to call twice."""
    with _lock:
        _slot.handler = None
        hooks = tracer_context._configure_hooks
        # The hook list is LangChain's; there is no public way to unregister a hook.
        while _hook in hooks:
            hooks.remove(_hook)
        _unpatch_legacy_llm()


def instrumented_handler() -> OTelCallbackHandler | None:
    """The handler `instrument()` installed, if instrumentation is on."""
    return _slot.handler
