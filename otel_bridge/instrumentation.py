"""`instrument()` / `uninstrument()`: trace every LangChain run in the process, no code change;
`LangChainBridgeInstrumentor`, the same as an OpenTelemetry instrumentor.

LangChain's configure hooks add a handler to every callback manager it builds; the hook's
"context variable" here reads one process-wide slot, so runs in any thread or task see it.
(The LangChain code paths that need more than a handler are mended by `_langchain_patches`,
installed by every handler, this one included.) The instrumentor is registered under the
`opentelemetry_instrumentor` entry point `otel_bridge`, so `opentelemetry-instrument python
app.py` traces an app's LangChain runs without a line of it changing.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from contextvars import ContextVar
from typing import Any, cast

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.tracers import context as tracer_context
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)

from otel_bridge._private import configure_hook_registered, unregister_configure_hook
from otel_bridge.handler import OTelCallbackHandler

__all__ = ["LangChainBridgeInstrumentor", "instrument", "instrumented_handler", "uninstrument"]


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


_slot = _ProcessWideHandler()
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
        if not configure_hook_registered(_hook):
            tracer_context.register_configure_hook(
                _hook[0], inheritable=True, handle_class=OTelCallbackHandler
            )
        return handler


def uninstrument() -> None:
    """Stop tracing runs started from now on; removes the hook entirely. Safe to call twice."""
    with _lock:
        _slot.handler = None
        unregister_configure_hook(_hook)


def instrumented_handler() -> OTelCallbackHandler | None:
    """The handler `instrument()` installed, if instrumentation is on."""
    return _slot.handler


class LangChainBridgeInstrumentor(BaseInstrumentor):
    """`instrument()` as an OpenTelemetry instrumentor.

    `LangChainBridgeInstrumentor().instrument(tracer_provider=..., meter_provider=...,
    **options)` takes `instrument()`'s arguments and `uninstrument()` undoes it; both are the
    very same switch as `otel_bridge.instrument()` / `otel_bridge.uninstrument()`, so either
    form sees (and undoes) what the other did.
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("langchain-core >= 1.0",)

    def instrument(self, **kwargs: Any) -> OTelCallbackHandler | None:
        """Switch instrumentation on; when it is on already, return its handler (no warning,
        like `otel_bridge.instrument()`)."""
        handler = _slot.handler
        if handler is not None:
            return handler
        return cast("OTelCallbackHandler | None", super().instrument(**kwargs))

    def uninstrument(self, **kwargs: Any) -> None:
        """Switch instrumentation off; safe to call when it is off."""
        if _slot.handler is not None:
            super().uninstrument(**kwargs)

    # BaseInstrumentor keeps its own flag; here the state is instrument()'s, whoever set it.
    @property
    def _is_instrumented_by_opentelemetry(self) -> bool:
        return _slot.handler is not None

    @_is_instrumented_by_opentelemetry.setter
    def _is_instrumented_by_opentelemetry(self, value: bool) -> None:
        pass

    def _instrument(self, **kwargs: Any) -> OTelCallbackHandler:
        return instrument(**kwargs)

    def _uninstrument(self, **kwargs: Any) -> None:
        uninstrument()
