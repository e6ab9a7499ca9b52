"""Where every setting comes from, one rule for the core and every sink: the argument, else
`OTEL_BRIDGE_<SINK>_<NAME>`, else `OTEL_BRIDGE_<NAME>` (settings every sink shares), else the
generic variables (the OpenTelemetry specification's, or the ones langchain_community's handlers
read), else the default.

Each package declares its settings as `Setting`s in a module named `settings`; the declarations
are also the README's configuration reference (`python -m otel_bridge._docs` writes the tables).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

__all__ = [
    "CAPTURE_CONTENT",
    "EXPORTER_SETTINGS",
    "FILE_SINK_SETTINGS",
    "HANDLER_SETTINGS",
    "PREFIX",
    "PRICES",
    "SEMCONV",
    "Found",
    "Setting",
    "parse_bool",
    "parse_content_capture",
    "parse_file_format",
    "parse_list",
    "parse_vocabularies",
    "seconds_setting",
    "sink_variable",
]

_logger = logging.getLogger("otel_bridge")
_T = TypeVar("_T")

PREFIX = "OTEL_BRIDGE_"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def sink_variable(sink: str, name: str) -> str:
    """`OTEL_BRIDGE_<SINK>_<NAME>`: the variable a sink reads first for its setting `name`."""
    return f"{PREFIX}{sink.upper()}_{name}"


def parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("not a boolean; use true or false")


def parse_list(raw: str) -> tuple[str, ...]:
    """A comma-separated list; blanks dropped."""
    return tuple(item.strip() for item in raw.split(",") if item.strip())


@dataclass(frozen=True, slots=True)
class Found(Generic[_T]):
    """A value that was given, and where: the parameter's name or the variable's."""

    value: _T
    source: str


@dataclass(frozen=True, slots=True)
class Setting(Generic[_T]):
    """One constructor parameter: the variables that may set it, its default, its README row.

    `name` gives `OTEL_BRIDGE_<SINK>_<NAME>` for a sink's setting (`sink` set), and
    `OTEL_BRIDGE_<NAME>` for a core setting or one every sink `shared`s (resolve those with
    `for_sink`); a sink's or shared setting's `name` is its parameter's, upper-cased, unless
    given. `generic` variables come after ours. A parameter no variable sets is documented all
    the same. A value that does not `parse` raises ValueError naming the variable, or, when
    `lenient` (the handler: a typo must not break the app), is logged and skipped.
    """

    parameter: str
    default: _T
    meaning: str
    default_text: str = ""
    name: str | None = None
    sink: str | None = None
    shared: bool = False
    generic: tuple[str, ...] = ()
    parse: Callable[[str], Any] = str
    lenient: bool = False

    @property
    def variables(self) -> tuple[str, ...]:
        ours: list[str] = []
        name = self.name
        if name is None and (self.sink is not None or self.shared):
            name = self.parameter.upper()
        if name is not None:
            if self.sink is not None:
                ours.append(sink_variable(self.sink, name))
            if self.sink is None or self.shared:
                ours.append(PREFIX + name)
        return (*ours, *self.generic)

    def for_sink(self, sink: str) -> Setting[_T]:
        """This shared setting as sink `sink` reads it."""
        return dataclasses.replace(self, sink=sink)

    def lookup(
        self,
        argument: _T | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        variables: Sequence[str] | None = None,
    ) -> Found[_T] | None:
        """The argument when given (not None, not ""), else the first variable set (not blank),
        parsed; None when neither. `variables` replaces the declared ones for this call."""
        if argument is not None and argument != "":
            return Found(argument, self.parameter)
        env = os.environ if environ is None else environ
        for variable in self.variables if variables is None else variables:
            raw = env.get(variable)
            if raw is None or not raw.strip():
                continue
            try:
                return Found(cast(_T, self.parse(raw)), variable)
            except ValueError as error:
                if not self.lenient:
                    raise ValueError(f"{variable}={raw!r} is not valid: {error}") from None
                _logger.warning("otel-bridge: ignoring %s=%r: %s", variable, raw, error)
        return None

    def resolve(
        self,
        argument: _T | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        variables: Sequence[str] | None = None,
    ) -> _T:
        """`lookup`'s value, else the default."""
        found = self.lookup(argument, environ=environ, variables=variables)
        return self.default if found is None else found.value


# OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT as the GenAI instrumentations read it now:
# booleans, or where content goes. This bridge records content on spans (attributes and span
# events) and writes no GenAI log events, so only the span modes capture anything here.
CONTENT_ON_SPANS = frozenset({"span_only", "span_and_event"})
CONTENT_NOT_ON_SPANS = frozenset({"no_content", "event_only"})
_content_warned: set[str] = set()


def parse_content_capture(raw: str) -> bool:
    """True when content goes on spans. An unknown value captures nothing, with one WARNING (a
    mistyped privacy setting must fail closed)."""
    lowered = raw.strip().lower()
    if lowered in _TRUE or lowered in CONTENT_ON_SPANS:
        return True
    if lowered in _FALSE or lowered in CONTENT_NOT_ON_SPANS:
        if lowered == "event_only" and lowered not in _content_warned:
            _content_warned.add(lowered)
            _logger.warning(
                "otel-bridge: content capture EVENT_ONLY: this bridge writes content only on "
                "spans, so no content is recorded"
            )
        return False
    if lowered not in _content_warned:
        _content_warned.add(lowered)
        _logger.warning(
            "otel-bridge: unknown content capture value %r: no content is recorded (use "
            "NO_CONTENT, SPAN_ONLY, EVENT_ONLY, SPAN_AND_EVENT, true or false)",
            raw,
        )
    return False


def seconds_setting(parameter: str, default: float, meaning: str, **options: Any) -> Setting[float]:
    """A setting in seconds: the README shows its default as "2 s", a variable's value is parsed
    as a number. `options` as `Setting`'s."""
    return Setting(parameter, default, meaning, f"{default:g} s", parse=float, **options)


# --- OTelCallbackHandler and instrument() ---------------------------------------------------------

DEFAULT_MAX_CONTENT_LENGTH = 64 * 1024
DEFAULT_MAX_OPEN_RUNS = 10_000
DEFAULT_MAX_RUN_AGE_S = 3600.0

CAPTURE_CONTENT: Setting[bool] = Setting(
    "capture_content",
    True,
    "record messages, inputs, outputs, documents on spans: `true`/`SPAN_ONLY`/`SPAN_AND_EVENT` "
    "yes; `false`/`NO_CONTENT`/`EVENT_ONLY` no; any other value no, with a warning",
    generic=("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",),
    parse=parse_content_capture,
)
MAX_CONTENT_LENGTH: Setting[int] = Setting(
    "max_content_length",
    DEFAULT_MAX_CONTENT_LENGTH,
    "maximum characters per captured value",
    name="MAX_CONTENT_LENGTH",
    generic=("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",),
    parse=int,
    lenient=True,
)


def parse_vocabularies(raw: str) -> tuple[str, ...]:
    names = tuple(name.lower() for name in parse_list(raw))
    unknown = sorted(set(names) - {"gen_ai", "openinference"})
    if unknown:
        raise ValueError(f"unknown vocabulary {', '.join(unknown)}; use gen_ai, openinference")
    return names


SEMCONV: Setting[tuple[str, ...]] = Setting(
    "semconv",
    ("gen_ai",),
    "attribute vocabularies: `gen_ai` (always written), `openinference` adds OpenInference's "
    "span kind, input/output values and metadata for trace UIs that read them (Phoenix)",
    "`gen_ai`",
    name="SEMCONV",
    parse=parse_vocabularies,
    lenient=True,
)
PRICES: Setting[Any] = Setting(
    "prices",
    None,
    "price table (model -> price per 1k input/output/cached input tokens; a mapping, or a "
    "JSON/YAML file): each model call's cost as `langchain.llm.cost`, attribute and metric",
    "none (no cost recorded)",
    name="PRICES",
)
HANDLER_SETTINGS: tuple[Setting[Any], ...] = (
    Setting(
        "tracer_provider",
        None,
        "where spans go",
        "the global SDK provider, else one built by `configure_tracer_provider`",
    ),
    Setting(
        "meter_provider",
        None,
        "where `gen_ai.client.operation.duration` / `gen_ai.client.token.usage` go",
        "the global one",
    ),
    CAPTURE_CONTENT,
    Setting(
        "exporters", (), "span exporters to attach (each behind a `BatchSpanProcessor`)", "none"
    ),
    MAX_CONTENT_LENGTH,
    Setting("redact", None, "function applied to every captured string", "none"),
    Setting(
        "max_open_runs",
        DEFAULT_MAX_OPEN_RUNS,
        "runs tracked at once; beyond it the oldest is ended with an explicit status",
    ),
    seconds_setting(
        "max_run_age_s", DEFAULT_MAX_RUN_AGE_S, "a run open longer is ended with an explicit status"
    ),
    Setting(
        "raise_error", False, "let the handler's own errors reach your call (never by default)"
    ),
    PRICES,
    SEMCONV,
    *(
        Setting(
            f"ignore_{kind.replace(' ', '_')}",
            False,
            f"LangChain's switch: no spans for {kind} callbacks",
        )
        for kind in ("llm", "chat model", "chain", "agent", "retriever", "retry", "custom event")
    ),
    Setting("clock", None, "clock for run ages (tests)", "`time.monotonic`"),
)

# --- TraceExporter: every sink takes these; each reads OTEL_BRIDGE_<SINK>_<NAME> first ---------

SPOOL_DIR: Setting[str | None] = Setting(
    "spool_dir",
    None,
    "where the SQLite spool lives",
    "`$XDG_CACHE_HOME/otel-bridge/spool` (`~/.cache/...`)",
    shared=True,
)
GRACE_PERIOD = seconds_setting(
    "grace_period", 2.0, "wait after a trace's local root ended before delivering it", shared=True
)
MAX_TRACE_AGE = seconds_setting(
    "max_trace_age", 300.0, "deliver an unfinished trace, marked partial, after this", shared=True
)
MAX_SPOOL_BYTES: Setting[int] = Setting(
    "max_spool_bytes",
    256 * 1024 * 1024,
    "spool bound, dead letters included (the oldest dead letters give way first, logged and "
    "counted as dropped)",
    "256 MiB",
    shared=True,
    parse=int,
)
WHEN_FULL: Setting[str] = Setting(
    "when_full", "drop_newest", "or `drop_oldest`; either way logged and counted", shared=True
)
EXPORTER_SETTINGS: tuple[Setting[Any], ...] = (
    SPOOL_DIR,
    Setting(
        "spool_name",
        None,
        "spool file name: `<name>-<destination digest>.sqlite3`, one file per destination",
        "the sink name",
    ),
    GRACE_PERIOD,
    MAX_TRACE_AGE,
    Setting("max_batch", 64, "traces per `deliver()` call"),
    Setting(
        "retry",
        None,
        "retry policy, then the dead-letter table",
        "`RetryPolicy()`: 1 s doubling to 60 s, ±20 % jitter, 24 h deadline",
    ),
    MAX_SPOOL_BYTES,
    Setting(
        "max_traces",
        10_000,
        "unfinished traces held; the oldest is delivered early (partial) beyond it",
    ),
    Setting(
        "max_spans_per_trace",
        10_000,
        "spans per unfinished trace; the trace is delivered early beyond it",
    ),
    WHEN_FULL,
    Setting(
        "meter_provider", None, "where `otel_bridge.delivery.*` health metrics go", "the global one"
    ),
    Setting("clock", None, "for tests", "the system clock"),
    Setting(
        "shutdown_timeout",
        10.0,
        "`shutdown()` flushes this long; the rest stays in the spool",
        "10 s (ClearML and UpTrain: 30 s)",
    ),
)

# --- The built-in file sink ------------------------------------------------------------------------

FILE_PATH: Setting[str | None] = Setting(
    "path",
    None,
    "the file traces are appended to",
    "`otel-bridge-traces.jsonl` in the working directory",
    sink="file",
)
FILE_FORMATS = ("json", "proto")


def one_of(choices: tuple[str, ...], what: str) -> Callable[[str], str]:
    """A parser for a setting that takes one of `choices` (any case)."""

    def parse(raw: str) -> str:
        lowered = raw.strip().lower()
        if lowered not in choices:
            raise ValueError(f"not {what}; use {' or '.join(choices)}")
        return lowered

    return parse


parse_file_format = one_of(FILE_FORMATS, "a file format")


FILE_FORMAT: Setting[str] = Setting(
    "format",
    "json",
    "`json`: OTLP JSON lines; `proto`: protobuf messages, each after its size in 4 bytes,"
    " big-endian (the Collector file exporter's `format: proto`)",
    sink="file",
    parse=parse_file_format,
)
FILE_LINES_CHOICES = ("request", "trace")


FILE_LINES: Setting[str] = Setting(
    "lines",
    "request",
    "what a request from `otel-bridge serve`'s receiver becomes: `request`: one line (message),"
    " written before the request is answered, as the Collector's file exporter does; `trace`:"
    " spooled, then one line per finished trace (as spans from `export()` always are)",
    sink="file",
    parse=one_of(FILE_LINES_CHOICES, "a choice"),
)
FILE_SINK_SETTINGS: tuple[Setting[Any], ...] = (FILE_PATH, FILE_FORMAT, FILE_LINES)
