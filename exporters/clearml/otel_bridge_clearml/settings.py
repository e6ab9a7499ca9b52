"""Where and how the ClearML exporter logs, resolved once from arguments and environment variables
(argument > OTEL_BRIDGE_CLEARML_* > generic variable > default).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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
    "ClearMLSettings",
]

ENV_TASK_TYPE = "OTEL_BRIDGE_CLEARML_TASK_TYPE"
ENV_PROJECT_NAME = "OTEL_BRIDGE_CLEARML_PROJECT_NAME"
ENV_TAGS = "OTEL_BRIDGE_CLEARML_TAGS"  # comma-separated
ENV_TASK_NAME = "OTEL_BRIDGE_CLEARML_TASK_NAME"
ENV_VISUALIZE = "OTEL_BRIDGE_CLEARML_VISUALIZE"
ENV_COMPLEXITY_METRICS = "OTEL_BRIDGE_CLEARML_COMPLEXITY_METRICS"
ENV_STREAM_LOGS = "OTEL_BRIDGE_CLEARML_STREAM_LOGS"
ENV_SPACY_MODEL = "OTEL_BRIDGE_CLEARML_SPACY_MODEL"
# Generic: the OTel service name names the project, as it names the other sinks' containers.
ENV_SERVICE_NAME = "OTEL_SERVICE_NAME"

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
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


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
        env = os.environ if environ is None else environ
        resolved_type = task_type or env.get(ENV_TASK_TYPE) or DEFAULT_TASK_TYPE
        if resolved_type not in TASK_TYPES:
            source = "task_type" if task_type else ENV_TASK_TYPE
            raise ValueError(
                f"{source}={resolved_type!r} is not a ClearML task type; use one of "
                f"{', '.join(sorted(TASK_TYPES))}"
            )
        if tags is None:
            raw_tags = env.get(ENV_TAGS, "")
            tags = [tag.strip() for tag in raw_tags.split(",") if tag.strip()]
        elif isinstance(tags, str):
            raise ValueError(f"tags must be a list of strings, not the string {tags!r}")
        return cls(
            task_type=resolved_type,
            project_name=project_name
            or env.get(ENV_PROJECT_NAME)
            or env.get(ENV_SERVICE_NAME)
            or DEFAULT_PROJECT_NAME,
            tags=tuple(str(tag) for tag in tags),
            task_name=task_name or env.get(ENV_TASK_NAME) or None,
            visualize=_flag(visualize, env, ENV_VISUALIZE),
            complexity_metrics=_flag(complexity_metrics, env, ENV_COMPLEXITY_METRICS),
            stream_logs=_flag(stream_logs, env, ENV_STREAM_LOGS),
            spacy_model=spacy_model or env.get(ENV_SPACY_MODEL) or DEFAULT_SPACY_MODEL,
        )


def _flag(value: bool | None, env: Mapping[str, str], variable: str) -> bool:
    if value is not None:
        return bool(value)
    raw = env.get(variable, "").strip().lower()
    if not raw or raw in _FALSE:
        return False
    if raw in _TRUE:
        return True
    raise ValueError(f"{variable}={raw!r} is not a boolean; use true or false")
