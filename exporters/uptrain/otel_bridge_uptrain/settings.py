"""The UpTrain exporter's settings (`otel_bridge.settings`' rule: argument >
OTEL_BRIDGE_UPTRAIN_<NAME> > generic variable > default)."""

from __future__ import annotations

from typing import Any

from otel_bridge.settings import Setting, parse_bool, seconds_setting

SINK = "uptrain"
KEY_TYPES = ("openai", "uptrain")
# The variable langchain_community's handler reads for each key type, after ours.
GENERIC_KEY_VARIABLES = {"openai": "OPENAI_API_KEY", "uptrain": "UPTRAIN_ACCESS_TOKEN"}


def _fraction(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError("not a number") from None


PROJECT_NAME: Setting[str] = Setting("project_name", "langchain", "the UpTrain project", sink=SINK)
KEY_TYPE: Setting[str] = Setting(
    "key_type",
    "openai",
    "`openai` (a local `EvalLLM`) or `uptrain` (UpTrain's `APIClient`)",
    sink=SINK,
)
API_KEY: Setting[str | None] = Setting(
    "api_key",
    None,
    "the judge's key (the generic variable by key type: OpenAI's for `openai`, UpTrain's for `uptrain`)",
    "required",
    sink=SINK,
    generic=tuple(GENERIC_KEY_VARIABLES.values()),
)
MODEL: Setting[str] = Setting("model", "gpt-3.5-turbo", "the judge model", sink=SINK)
LOG_RESULTS: Setting[bool] = Setting(
    "log_results",
    True,
    "print question, response and score per check",
    name="LOG_RESULTS",
    sink=SINK,
    parse=parse_bool,
)
API_BASE: Setting[str | None] = Setting(
    "api_base",
    None,
    "any OpenAI-compatible judge",
    "OpenAI",
    sink=SINK,
    generic=("OPENAI_BASE_URL",),
)
SERVER_URL: Setting[str | None] = Setting(
    "uptrain_server_url",
    None,
    "UpTrain's server, for `key_type=uptrain`",
    "UpTrain's",
    name="SERVER_URL",
    sink=SINK,
    generic=("UPTRAIN_SERVER_URL",),
)
DASHBOARD_URL: Setting[str] = Setting(
    "dashboard_url",
    "http://localhost:4300",
    "UpTrain's local dashboard, for `key_type=openai`: each evaluated row is posted there once",
    sink=SINK,
    generic=("UPTRAIN_LOCAL_URL",),
)
SAMPLE_RATE: Setting[float] = Setting(
    "sample_rate", 1.0, "fraction of traces evaluated (by trace id)", sink=SINK, parse=_fraction
)
SCORE_HISTOGRAMS: Setting[bool] = Setting(
    "score_histograms",
    False,
    "scores also as histograms on the meter provider",
    sink=SINK,
    parse=parse_bool,
)
SETTINGS: tuple[Setting[Any], ...] = (
    PROJECT_NAME,
    KEY_TYPE,
    API_KEY,
    MODEL,
    LOG_RESULTS,
    API_BASE,
    SERVER_URL,
    DASHBOARD_URL,
    Setting("checks", None, "the checks per trace shape", "`CheckPlan()`"),
    SAMPLE_RATE,
    Setting("trace_filter", None, "which traces are evaluated", "all traces"),
    Setting("tracer_provider", None, "where evaluation spans go", "the global one"),
    Setting("meter_provider", None, "where score histograms go", "the global one"),
    SCORE_HISTOGRAMS,
    Setting("log_stream", None, "where `log_results` prints", "stdout"),
    seconds_setting("judge_timeout", 60.0, "seconds per judge call"),
)
