"""The ClearML exporter's settings (`otel_bridge.settings`' rule: argument >
OTEL_BRIDGE_CLEARML_<NAME> > generic variable > default), resolved once into `ClearMLSettings`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from otel_bridge.settings import Setting, parse_bool, parse_list
from otel_bridge_clearml.text_analysis import DEFAULT_SPACY_MODEL

__all__ = [
    "ENV_COMPLEXITY_METRICS",
    "ENV_PROJECT_NAME",
    "ENV_SERVICE_NAME",
    "ENV_SPACY_MODEL",
    "ENV_STREAM_LOGS",
    "ENV_TAGS",
    "ENV_TASK_NAME",
    "ENV_TASK_TYPE",
    "ENV_VISUALIZE",
    "SETTINGS",
    "ClearMLSettings",
]

# The seed handler's defaults.
DEFAULT_TASK_TYPE = "inference"
DEFAULT_PROJECT_NAME = "langchain_callback_demo"
# The task types ClearML accepts (clearml.Task.TaskTypes), so a typo fails here, not in Task.init.
TASK_TYPES = frozenset(
    {
        "training",
        "testing",
        "inference",
        "data_processing",
        "application",
        "monitor",
        "controller",
        "optimizer",
        "service",
        "qc",
        "custom",
    }
)
DEFAULT_MAX_SESSION_ROWS = 10_000

SINK = "clearml"
TASK_TYPE: Setting[str] = Setting(
    "task_type", DEFAULT_TASK_TYPE, "the ClearML task type", sink=SINK
)
PROJECT_NAME: Setting[str] = Setting(
    "project_name",
    DEFAULT_PROJECT_NAME,
    "the ClearML project",
    sink=SINK,
    # The OTel service name names the project, as it names the other sinks' containers.
    generic=("OTEL_SERVICE_NAME",),
)
TAGS: Setting[Sequence[str]] = Setting(
    "tags", (), "task tags (the variable comma-separated)", sink=SINK, parse=parse_list
)
TASK_NAME: Setting[str | None] = Setting(
    "task_name", None, "the task's name", "ClearML's default", sink=SINK
)
VISUALIZE: Setting[bool] = Setting(
    "visualize", False, "spaCy renderings as media", sink=SINK, parse=parse_bool
)
COMPLEXITY_METRICS: Setting[bool] = Setting(
    "complexity_metrics", False, "textstat metrics", sink=SINK, parse=parse_bool
)
STREAM_LOGS: Setting[bool] = Setting(
    "stream_logs",
    False,
    "each action record as a JSON line in the task's console",
    sink=SINK,
    parse=parse_bool,
)
SPACY_MODEL: Setting[str] = Setting(
    "spacy_model", DEFAULT_SPACY_MODEL, "the spaCy pipeline for `visualize`", sink=SINK
)
SETTINGS: tuple[Setting[Any], ...] = (
    TASK_TYPE,
    PROJECT_NAME,
    TAGS,
    TASK_NAME,
    VISUALIZE,
    COMPLEXITY_METRICS,
    STREAM_LOGS,
    SPACY_MODEL,
    Setting(
        "task",
        None,
        "the task to log into",
        "the current ClearML task, else a new one (offline without credentials)",
    ),
    Setting("task_init_options", None, "passed to `Task.init`", "none"),
    Setting("max_session_rows", DEFAULT_MAX_SESSION_ROWS, "rows kept for the session tables"),
    Setting(
        "tables_per",
        "trace",
        "`trace`: the two tables for each trace as it is delivered; `flush`: only the session's"
        " tables, at each `report_session` (what `ClearMLCallbackHandler` uses: one pair per"
        " `flush_tracker`, as the original)",
        "`trace` (the drop-in: `flush`)",
    ),
)

ENV_TASK_TYPE = TASK_TYPE.variables[0]
ENV_PROJECT_NAME, ENV_SERVICE_NAME = PROJECT_NAME.variables
(ENV_TAGS,) = TAGS.variables
(ENV_TASK_NAME,) = TASK_NAME.variables
(ENV_VISUALIZE,) = VISUALIZE.variables
(ENV_COMPLEXITY_METRICS,) = COMPLEXITY_METRICS.variables
(ENV_STREAM_LOGS,) = STREAM_LOGS.variables
(ENV_SPACY_MODEL,) = SPACY_MODEL.variables


@dataclass(frozen=True, slots=True)
class ClearMLSettings:
    """The resolved configuration of one `ClearMLSpanExporter`.

    `task_name` None means ClearML's own default (the script name), as in the seed.
    """

    task_type: str
    project_name: str
    tags: tuple[str, ...]
    task_name: str | None
    visualize: bool
    complexity_metrics: bool
    stream_logs: bool
    spacy_model: str

    @classmethod
    def resolve(
        cls,
        *,
        task_type: str | None = None,
        project_name: str | None = None,
        tags: Sequence[str] | None = None,
        task_name: str | None = None,
        visualize: bool | None = None,
        complexity_metrics: bool | None = None,
        stream_logs: bool | None = None,
        spacy_model: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> ClearMLSettings:
        """Apply the precedence; ValueError names the argument or variable that is invalid."""
        if isinstance(tags, str):
            raise ValueError(f"tags must be a list of strings, not the string {tags!r}")
        found_type = TASK_TYPE.lookup(task_type, environ=environ)
        if found_type is not None and found_type.value not in TASK_TYPES:
            raise ValueError(
                f"{found_type.source}={found_type.value!r} is not a ClearML task type; use one "
                f"of {', '.join(sorted(TASK_TYPES))}"
            )
        return cls(
            task_type=DEFAULT_TASK_TYPE if found_type is None else found_type.value,
            project_name=PROJECT_NAME.resolve(project_name, environ=environ),
            tags=tuple(str(tag) for tag in TAGS.resolve(tags, environ=environ)),
            task_name=TASK_NAME.resolve(task_name, environ=environ),
            visualize=bool(VISUALIZE.resolve(visualize, environ=environ)),
            complexity_metrics=bool(
                COMPLEXITY_METRICS.resolve(complexity_metrics, environ=environ)
            ),
            stream_logs=bool(STREAM_LOGS.resolve(stream_logs, environ=environ)),
            spacy_model=SPACY_MODEL.resolve(spacy_model, environ=environ),
        )
