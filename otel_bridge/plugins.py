"""Sinks as plug-ins: the core finds sink exporters through the `opentelemetry_traces_exporter`
entry points (the group `OTEL_TRACES_EXPORTER` reads too) and never imports a sink by name.

A sink package may also offer a `SINK_REPORT` (`SinkReport`) at its root, which front ends such
as `otel-bridge demo` use to say what the sink does and what it needs; the package root should
import it without the sink's client library, so listing sinks stays cheap: `lazy_exports` gives a
root the rest of its public names on first use.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import Distribution, EntryPoint, entry_points
from typing import Any

from otel_bridge._lazy import lazy_exports
from otel_bridge.langchain_views import FinishedTrace

__all__ = [
    "TRACES_EXPORTER_GROUP",
    "InstalledSink",
    "SinkReport",
    "count_traces",
    "installed_sinks",
    "lazy_exports",
    "needs_one_of",
    "sink_entry_point",
    "sink_entry_points",
]

TRACES_EXPORTER_GROUP = "opentelemetry_traces_exporter"


def _runs_as_is(environ: Mapping[str, str]) -> str:
    return ""


def _no_destination(exporter: Any) -> str:
    return type(exporter).__name__


@dataclass(frozen=True, slots=True)
class SinkReport:
    """A sink in its own words, for front ends that show what sinks did with some traces.

    `work` says what the sink makes of traces ("6 review tasks"); `verb`/`verb_past` complete
    "set ... to <verb> <work>" and "<verb_past> <work>"; `needs` returns what the user must set
    before the sink can run ("" when the environment is enough, e.g. an offline default);
    `destination` says where a built exporter delivers; `quiet_loggers` are loggers a front end
    may keep at ERROR (the client library's bookkeeping).
    """

    title: str
    verb: str
    verb_past: str
    work: Callable[[Sequence[FinishedTrace]], str]
    needs: Callable[[Mapping[str, str]], str] = _runs_as_is
    destination: Callable[[Any], str] = _no_destination
    quiet_loggers: tuple[str, ...] = ()


def count_traces(traces: Sequence[FinishedTrace]) -> str:
    """A `SinkReport.work` for a sink that makes one record of each trace: "3 traces"."""
    return f"{len(traces)} traces"


def needs_one_of(variables: Sequence[str], advice: str) -> Callable[[Mapping[str, str]], str]:
    """A `SinkReport.needs` for a sink that runs once one of `variables` is set: "" then, else
    `advice` (what to set)."""

    def needs(environ: Mapping[str, str]) -> str:
        return "" if any(environ.get(variable) for variable in variables) else advice

    return needs


@dataclass(frozen=True, slots=True)
class InstalledSink:
    """An installed sink exporter: its entry point and, when its package offers one, its report."""

    entry_point: EntryPoint
    report: SinkReport | None

    @property
    def name(self) -> str:
        return self.entry_point.name


def sink_entry_points(*, bridge_only: bool = False) -> list[EntryPoint]:
    """Every installed span exporter's entry point, sorted by name; with `bridge_only`, only
    ours and those of distributions built on otel-bridge (not the SDK's console, otlp, ...)."""
    found = sorted(entry_points(group=TRACES_EXPORTER_GROUP), key=lambda ep: ep.name)
    if bridge_only:
        found = [ep for ep in found if ep.dist is not None and _built_on_bridge(ep.dist)]
    return found


def sink_entry_point(name: str) -> EntryPoint:
    """The entry point of the sink exporter `name`; LookupError naming the installed ones."""
    for entry_point in entry_points(group=TRACES_EXPORTER_GROUP, name=name):
        return entry_point
    installed = ", ".join(ep.name for ep in sink_entry_points()) or "none"
    raise LookupError(
        f"no sink exporter named {name!r} in entry point group {TRACES_EXPORTER_GROUP} "
        f"(installed: {installed})"
    )


def installed_sinks() -> list[InstalledSink]:
    """Every installed otel-bridge sink with its report, found without importing the exporter
    classes (as long as the sink's package root is light, see the module docstring)."""
    return [InstalledSink(ep, _report(ep)) for ep in sink_entry_points(bridge_only=True)]


def _built_on_bridge(dist: Distribution) -> bool:
    names = {_requirement_name(requirement) for requirement in dist.requires or ()}
    return _normalized(dist.name) == _OWN_NAME or _OWN_NAME in names


def _requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return _normalized(match.group(1)) if match else ""


def _normalized(name: str) -> str:
    # PEP 503 normalization: otel_bridge, Otel.Bridge and otel-bridge are one distribution.
    return re.sub(r"[-_.]+", "-", name).lower()


_OWN_NAME = "otel-bridge"


def _report(entry_point: EntryPoint) -> SinkReport | None:
    try:
        found = getattr(import_module(entry_point.module), "SINK_REPORT", None)
    except Exception:
        # A broken plug-in is reported when something builds its exporter, not while listing.
        return None
    return found if isinstance(found, SinkReport) else None
