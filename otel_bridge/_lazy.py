"""Package roots whose public names are imported on first use, so that importing the root stays
cheap: the core's (`otel_bridge`, `otel_bridge.demo`) and the sinks' (through
`otel_bridge.plugins`)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for the root of `package`: each name in `exports` (name -> the
    module defining it, absolute or relative to `package`) is imported on first use, then kept
    on the root."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
