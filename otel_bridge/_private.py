"""The private attributes of other projects we rely on, each in one place, checked by
tests/core/test_private_apis.py so an upgrade that changes one fails there, loudly, first.

- `TracerProvider._active_span_processor` (opentelemetry-sdk): the SDK has no public way to reach
  a provider's processors, which a drop-in handler's own provider hands its spans to.
- `langchain_core.tracers.context._configure_hooks`: LangChain registers configure hooks publicly
  (`register_configure_hook`) but has no way to unregister one, which `uninstrument()` needs.
- `json.encoder.c_make_encoder` (CPython): the C walk behind `json.JSONEncoder.iterencode`,
  built once and reused by the content capture; the public encoder builds it again on every
  call (1.8 us more a value). orjson would be faster but writes other bytes (NaN, small floats,
  UUIDs, Enums) and rejects values json takes.
"""

from __future__ import annotations

import json.encoder
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import Any

from langchain_core.tracers import context as _tracer_context
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

__all__ = [
    "configure_hook_registered",
    "json_c_encoder",
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


# A JSON walk: (value, indent level) -> the text's chunks.
JsonWalk = Callable[[Any, int], Iterable[str]]


def json_c_encoder(
    default: Callable[[Any], Any], encode_string: Callable[[str], str]
) -> JsonWalk | None:
    """CPython's C JSON walk for compact text (`,` and `:`), keys unsorted, strings written by
    `encode_string`, NaN and infinities refused (ValueError), `default` for other types: what
    `json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=default).iterencode` runs.
    None where the interpreter has no C accelerator. Each walk owns its cycle markers: one walk
    must not be used by two threads at once."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    walk: JsonWalk = make({}, default, encode_string, None, ":", ",", False, False, False)
    return walk
