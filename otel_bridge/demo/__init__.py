"""`otel-bridge demo`: a small but real LangChain application traced end to end. Its terminal
views of traces live in `otel_bridge.rendering`, shared with `otel-bridge tree`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from otel_bridge._lazy import lazy_exports

if TYPE_CHECKING:
    from otel_bridge.demo.runner import DemoOptions, run_demo

__all__ = ["DemoOptions", "run_demo"]

# Imported on first use: the runner pulls in LangGraph and the sinks.
_LAZY = {
    "DemoOptions": "otel_bridge.demo.runner",
    "run_demo": "otel_bridge.demo.runner",
}

__getattr__ = lazy_exports(__name__, _LAZY)
