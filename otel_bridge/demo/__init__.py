"""`otel-bridge demo`: a small but real LangChain application traced end to end, and the
terminal views (trace trees, GenAI metrics) that `otel-bridge tree` shares."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otel_bridge.demo.rendering import render_trace, render_traces
    from otel_bridge.demo.runner import DemoOptions, run_demo

__all__ = ["DemoOptions", "render_trace", "render_traces", "run_demo"]

# Imported on first use: `otel-bridge tree` needs the renderer, not LangGraph and the sinks.
_LAZY = {
    "DemoOptions": "otel_bridge.demo.runner",
    "run_demo": "otel_bridge.demo.runner",
    "render_trace": "otel_bridge.demo.rendering",
    "render_traces": "otel_bridge.demo.rendering",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'otel_bridge.demo' has no attribute {name!r}")
    return getattr(import_module(module), name)
