"""Wrappers around the few LangChain methods where no callback handler can keep a trace whole.

Installed once per process by the first `OTelCallbackHandler` (`instrument()` builds one too)
and kept: each wrapper only acts for runs whose handlers include an `OTelCallbackHandler`, and
otherwise calls the original straight through. What each one mends:

- A model call serving several inputs at once (`generate` over several conversations, a text
  model's `batch`) starts every run before calling the provider, so no run's span is current
  where the provider is called: the span of the run being served is made current around it
  (for a text model serving several prompts in one call, run 0's, which LangChain itself
  attributes that call to).
- `BaseLLM.agenerate` starts its runs in child tasks, so the span made current at the start
  never reaches `_agenerate`: it is made current around it.
- `BaseChatModel.agenerate` cancelled from outside raises at its `gather` without reporting
  the error: the run is ended with the cancellation where it is cancelled.
- A stream's outermost run starts inside the generator body, i.e. in the *consumer's* context,
  so its span would be current in the app's code between chunks and, after a `break`, for as
  long as the suspended generator lives: every step of such a generator runs in a context of
  its own instead (as LangChain already does for the inner steps).
- A tool error LangChain handles (`handle_tool_error`, `handle_validation_error`) reaches the
  handler as the tool's output: the exception is kept for the handler to read at the end of
  that very run (`take_handled_tool_error`).

Everything here leans on LangChain's (and LangGraph's) internals: `PATCHED` names each target
so that a test fails loudly when one of them changes.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import sys
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from typing import Any, Protocol, TypeVar, cast
from uuid import UUID

import wrapt
from langchain_core.language_models import BaseChatModel, BaseLLM
from langchain_core.runnables import Runnable, RunnableBranch, RunnableWithFallbacks
from langchain_core.tools import base as tools_base
from opentelemetry import trace
from opentelemetry.trace import Span

__all__ = ["PATCHED", "install", "take_handled_tool_error"]

Item = TypeVar("Item")


class _Tracer(Protocol):
    """What the wrappers ask of the handler."""

    def _span_not_current(self, run_id: UUID) -> Span | None: ...
    def _end_with_error(self, run_id: UUID, error: BaseException) -> None: ...


# (module, class, method) of every wrapped method (class "" for a module's function);
# LangGraph's only once it is imported.
PATCHED: tuple[tuple[str, str, str], ...] = (
    ("langchain_core.language_models.chat_models", "BaseChatModel", "_generate_with_cache"),
    ("langchain_core.language_models.chat_models", "BaseChatModel", "_agenerate_with_cache"),
    ("langchain_core.language_models.chat_models", "BaseChatModel", "stream"),
    ("langchain_core.language_models.chat_models", "BaseChatModel", "astream"),
    ("langchain_core.language_models.llms", "BaseLLM", "_generate_helper"),
    ("langchain_core.language_models.llms", "BaseLLM", "_agenerate_helper"),
    ("langchain_core.language_models.llms", "BaseLLM", "stream"),
    ("langchain_core.language_models.llms", "BaseLLM", "astream"),
    ("langchain_core.runnables.base", "Runnable", "_transform_stream_with_config"),
    ("langchain_core.runnables.base", "Runnable", "_atransform_stream_with_config"),
    ("langchain_core.runnables.branch", "RunnableBranch", "stream"),
    ("langchain_core.runnables.branch", "RunnableBranch", "astream"),
    ("langchain_core.runnables.fallbacks", "RunnableWithFallbacks", "stream"),
    ("langchain_core.runnables.fallbacks", "RunnableWithFallbacks", "astream"),
    ("langchain_core.tools.base", "", "_handle_tool_error"),
    ("langchain_core.tools.base", "", "_handle_validation_error"),
    ("langgraph.pregel.main", "Pregel", "stream"),
    ("langgraph.pregel.main", "Pregel", "astream"),
)
_LANGGRAPH_MODULE = "langgraph.pregel.main"

_lock = threading.Lock()
_handler_type: type | None = None
# The error a tool's error handler just turned into output, and that output.
_handled_tool_error: contextvars.ContextVar[tuple[BaseException, Any] | None] = (
    contextvars.ContextVar("otel_bridge_handled_tool_error", default=None)
)


def install(handler_type: type) -> None:
    """Wrap the methods (once per process); `handler_type` is the handler class to act for."""
    global _handler_type
    with _lock:
        if _handler_type is not None:
            return
        _handler_type = handler_type
        _wrap(BaseChatModel, "_generate_with_cache", _chat_generate)
        _wrap(BaseChatModel, "_agenerate_with_cache", _chat_agenerate)
        _wrap(BaseLLM, "_generate_helper", _text_generate)
        _wrap(BaseLLM, "_agenerate_helper", _text_agenerate)
        # Where a stream's run starts inside the generator body.
        for owner in (BaseChatModel, BaseLLM, RunnableBranch, RunnableWithFallbacks):
            _wrap(owner, "stream", _stream_in_own_context)
            _wrap(owner, "astream", _astream_in_own_context)
        _wrap(Runnable, "_transform_stream_with_config", _stream_in_own_context)
        _wrap(Runnable, "_atransform_stream_with_config", _astream_in_own_context)
        for name in ("_handle_tool_error", "_handle_validation_error"):
            _wrap(tools_base, name, _remember_handled_error)
    _when_langgraph_is_imported()


def _wrap(owner: Any, name: str, wrapper: Callable[[Any], Any]) -> None:
    """Replace `owner.name` (a class's method or a module's function) by `wrapper(original)`.

    A LangChain without the target gets the handler alone, which still parents every LangChain
    span correctly; the test over PATCHED says which target went missing.
    """
    original = vars(owner).get(name)
    if original is not None:
        setattr(owner, name, functools.wraps(original)(wrapper(original)))


def _when_langgraph_is_imported() -> None:
    """Wrap LangGraph's graph streams now if it is imported, else as soon as it is.

    Importing LangGraph here would cost every app that does not use it seconds of start-up.
    """

    def wrap_pregel(module: Any) -> None:
        pregel = getattr(module, "Pregel", None)
        if pregel is not None:
            _wrap(pregel, "stream", _stream_in_own_context)
            _wrap(pregel, "astream", _astream_in_own_context)

    wrapt.register_post_import_hook(wrap_pregel, _LANGGRAPH_MODULE)


def _tracer_of(run_manager: Any) -> _Tracer | None:
    """The OTelCallbackHandler among a run manager's handlers, if any."""
    if run_manager is None or _handler_type is None:
        return None
    for handler in run_manager.handlers:
        if isinstance(handler, _handler_type):
            return cast("_Tracer", handler)
    return None


def _span_to_enter(run_manager: Any) -> Span | None:
    tracer = _tracer_of(run_manager)
    return None if tracer is None else tracer._span_not_current(run_manager.run_id)


def _current(span: Span) -> Any:
    # Attached and detached within the wrapper's own frame, so always in the same context.
    return trace.use_span(
        span, end_on_exit=False, record_exception=False, set_status_on_exception=False
    )


# --- model calls -------------------------------------------------------------------------------
def _chat_generate(original: Callable[..., Any]) -> Callable[..., Any]:
    def _generate_with_cache(
        self: Any, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Any:
        span = _span_to_enter(run_manager)
        if span is None:
            return original(self, messages, stop=stop, run_manager=run_manager, **kwargs)
        with _current(span):
            return original(self, messages, stop=stop, run_manager=run_manager, **kwargs)

    return _generate_with_cache


def _chat_agenerate(original: Callable[..., Any]) -> Callable[..., Any]:
    async def _agenerate_with_cache(
        self: Any, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Any:
        tracer = _tracer_of(run_manager)
        if tracer is None:
            return await original(self, messages, stop=stop, run_manager=run_manager, **kwargs)
        try:
            span = tracer._span_not_current(run_manager.run_id)
            if span is None:
                return await original(self, messages, stop=stop, run_manager=run_manager, **kwargs)
            with _current(span):
                return await original(self, messages, stop=stop, run_manager=run_manager, **kwargs)
        except asyncio.CancelledError as error:
            # `agenerate` re-raises a cancellation from its `gather` without ending the run.
            tracer._end_with_error(run_manager.run_id, error)
            raise

    return _agenerate_with_cache


def _text_generate(original: Callable[..., Any]) -> Callable[..., Any]:
    def _generate_helper(
        self: Any, prompts: Any, stop: Any, run_managers: Any, *args: Any, **kwargs: Any
    ) -> Any:
        # One prompt: its run's span was made current when the run started, right here.
        span = _span_to_enter(run_managers[0]) if len(run_managers) > 1 else None
        if span is None:
            return original(self, prompts, stop, run_managers, *args, **kwargs)
        with _current(span):
            return original(self, prompts, stop, run_managers, *args, **kwargs)

    return _generate_helper


def _text_agenerate(original: Callable[..., Any]) -> Callable[..., Any]:
    async def _agenerate_helper(
        self: Any, prompts: Any, stop: Any, run_managers: Any, *args: Any, **kwargs: Any
    ) -> Any:
        span = _span_to_enter(run_managers[0]) if run_managers else None
        if span is None:
            return await original(self, prompts, stop, run_managers, *args, **kwargs)
        with _current(span):
            return await original(self, prompts, stop, run_managers, *args, **kwargs)

    return _agenerate_helper


# --- handled tool errors ------------------------------------------------------------------------
def _remember_handled_error(original: Callable[..., Any]) -> Callable[..., Any]:
    def handle(error: BaseException, *args: Any, **kwargs: Any) -> Any:
        # Called by the tool run's own frame, which ends the run right after, in this context.
        content = original(error, *args, **kwargs)
        _handled_tool_error.set((error, content))
        return content

    return handle


def take_handled_tool_error(content: Any) -> BaseException | None:
    """The exception behind a tool run's output `content`, if an error handler made it; once."""
    handled = _handled_tool_error.get()
    if handled is None:
        return None
    _handled_tool_error.set(None)
    error, handled_content = handled
    try:
        return error if handled_content is content or handled_content == content else None
    except Exception:
        return None


# --- streams -----------------------------------------------------------------------------------
def _stream_in_own_context(
    original: Callable[..., Generator[Item, None, None]],
) -> Callable[..., Any]:
    def stream(*args: Any, **kwargs: Any) -> Iterator[Item]:
        return _steps_in_own_context(original(*args, **kwargs))

    return stream


def _astream_in_own_context(
    original: Callable[..., AsyncGenerator[Item, None]],
) -> Callable[..., Any]:
    def astream(*args: Any, **kwargs: Any) -> AsyncIterator[Item]:
        return _asteps_in_own_context(original(*args, **kwargs))

    return astream


def _steps_in_own_context(steps: Generator[Item, None, None]) -> Iterator[Item]:
    """`steps`, each advanced in a copy of the context the consumer had at the first step."""
    context = contextvars.copy_context()
    try:
        item = context.run(next, steps)
        while True:
            try:
                yield item
            except GeneratorExit:
                raise
            except BaseException as thrown:
                item = context.run(steps.throw, thrown)
            else:
                item = context.run(next, steps)
    except StopIteration:
        return
    finally:
        # Closing an unfinished stream ends its runs: in their own context too.
        context.run(steps.close)


async def _asteps_in_own_context(steps: AsyncGenerator[Item, None]) -> AsyncIterator[Item]:
    """The async `_steps_in_own_context`: every step of every `__anext__` runs in the copy."""
    context = contextvars.copy_context()
    try:
        item = await _InContext(_first_step_untracked(steps), context)
        while True:
            try:
                yield item
            except GeneratorExit:
                raise
            except BaseException as thrown:
                item = await _InContext(steps.athrow(thrown), context)
            else:
                item = await _InContext(steps.__anext__(), context)
    except StopAsyncIteration:
        return
    finally:
        await _InContext(steps.aclose(), context)


def _first_step_untracked(steps: AsyncGenerator[Item, None]) -> Any:
    """`steps.__anext__()`, without the event loop tracking `steps` to close it at shutdown.

    This wrapper closes `steps` when it is itself closed or finalized (it is tracked); were the
    loop to close `steps` too, at shutdown both would close it at once. The loop's finalizer
    stays set on `steps`, for a wrapper that is never closed.
    """
    firstiter, finalizer = sys.get_asyncgen_hooks()
    sys.set_asyncgen_hooks(None, finalizer)
    try:
        return steps.__anext__()
    finally:
        sys.set_asyncgen_hooks(firstiter, finalizer)


class _InContext:
    """Awaits `awaitable` with each of its steps run in `context`, in the awaiting task.

    Cheaper than a task per chunk, and the task, its cancellation and `current_task()` stay the
    consumer's; only the context differs, so what the steps attach stays in `context`.
    """

    __slots__ = ("_awaitable", "_context")

    def __init__(self, awaitable: Any, context: contextvars.Context) -> None:
        self._awaitable = awaitable
        self._context = context

    def __await__(self) -> Generator[Any, Any, Any]:
        steps = self._awaitable.__await__()
        run = self._context.run
        value: Any = None
        thrown: BaseException | None = None
        while True:
            try:
                signal = run(steps.send, value) if thrown is None else run(steps.throw, thrown)
            except StopIteration as done:
                return done.value
            value, thrown = None, None
            try:
                value = yield signal
            except BaseException as error:
                # GeneratorExit included: an async generator's `aclose()` whose task was
                # cancelled before it started throws CancelledError and then GeneratorExit,
                # both meant for the stream's code. Closing `steps` instead (what a bare
                # `await` does) would leave that generator marked as running for good.
                thrown = error
