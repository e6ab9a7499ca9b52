"""The private attributes of other projects we rely on, each in one place, checked by
tests/core/test_private_apis.py so an upgrade that changes one fails there, loudly, first.

- `TracerProvider._active_span_processor` (opentelemetry-sdk): the SDK has no public way to reach
  a provider's processors, which a drop-in handler's own provider hands its spans to.
- `langchain_core.tracers.context._configure_hooks`: LangChain registers configure hooks publicly
  (`register_configure_hook`) but has no way to unregister one, which `uninstrument()` needs.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from langchain_core.tracers import context as _tracer_context
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

__all__ = [
    "configure_hook_registered",
    "provider_span_processor",
    "unregister_configure_hook",
]

# What `register_configure_hook` appends: (context var, inheritable, handler class, env var).
ConfigureHook = tuple[ContextVar[Any], bool, type[Any] | None, str | None]


def provider_span_processor(provider: TracerProvider) -> SpanProcessor | None:
    """The processor a TracerProvider hands every span to (all its added processors)."""
    processor: SpanProcessor | None = getattr(provider, "_active_span_processor", None)
    return processor


def configure_hook_registered(hook: ConfigureHook) -> bool:
    """True when `hook` is among LangChain's registered configure hooks."""
    return hook in _tracer_context._configure_hooks


def unregister_configure_hook(hook: ConfigureHook) -> None:
    """Remove every registration of `hook` from LangChain's configure hooks."""
    hooks = _tracer_context._configure_hooks
    while hook in hooks:
        hooks.remove(hook)
