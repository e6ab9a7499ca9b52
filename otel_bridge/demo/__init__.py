"""`otel-bridge demo`: a small but real LangChain application traced end to end. Its terminal
views of traces live in `otel_bridge.rendering`, shared with `otel-bridge tree`."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otel_bridge.demo.runner import DemoOptions, run_demo

__all__ = ["DemoOptions", "run_demo"]

# Imported on first use: the runner pulls in LangGraph and the sinks.
_LAZY = {
    "DemoOptions": "otel_bridge.demo.runner",
    "run_demo": "otel_bridge.demo.runner",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'otel_bridge.demo' has no attribute {name!r}")
    return getattr(import_module(module), name)
