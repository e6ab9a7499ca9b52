"""The drop-in for langchain_community's `LabelStudioCallbackHandler`: OTel spans, tasks off the hot path."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from label_studio_sdk import LabelStudio
from opentelemetry import metrics, trace

from otel_bridge.sink_handler import SinkCallbackHandler, drop_in_exporter_options
from otel_bridge_labelstudio._label_config import LabelStudioMode, object_tag
from otel_bridge_labelstudio.exporter import LabelStudioSpanExporter
from otel_bridge_labelstudio.settings import DEFAULT_PROJECT_NAME

_logger = logging.getLogger(__name__)


class LabelStudioCallbackHandler(SinkCallbackHandler):
    """`callbacks=[LabelStudioCallbackHandler(...)]` with langchain_community's arguments.

    Every run becomes an OpenTelemetry span; a `LabelStudioSpanExporter` built from the same
    arguments (`exporter_options` adds its own, e.g. `task_per`, `trace_filter`, `spool_dir`)
    turns the LLM calls of each finished trace into review tasks on a background thread, so
    the call returns without waiting for Label Studio; a task is in the project well under a
    second after its trace ends, and whatever was traced is there when the app exits normally.
    Like the seed, the constructor finds or creates the project and fails if the server is
    unreachable (`ConnectionError`) or refuses the key (the SDK's `ApiError`);
    `check_connection=False` skips that. Like the seed, the project receives the runs this
    handler is passed (see `SinkCallbackHandler`). Other keyword arguments go to
    `OTelCallbackHandler` (e.g. `tracer_provider`, `capture_content`, `raise_error`).

    The seed's attributes: `ls_client` (a `label_studio_sdk.LabelStudio` client),
    `ls_project` (the project as the SDK returns it), `project_id`, `project_name`,
    `project_config`, `mode`, `payload` (prompts of the LLM runs in flight, by run id) and
    `add_prompts_generations(run_id, generations)`.
    """

    DEFAULT_PROJECT_NAME: str = DEFAULT_PROJECT_NAME

    def __init__(
        self,
        api_key: str | None = None,
        url: str | None = None,
        project_id: int | None = None,
        project_name: str | None = None,
        project_config: str | None = None,
        mode: str | LabelStudioMode | None = None,
        *,
        check_connection: bool = True,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        exporter_options: Mapping[str, Any] | None = None,
        **handler_options: Any,
    ) -> None:
        # The connection is checked below, by the handler, which raises as the original did.
        options = drop_in_exporter_options(
            LabelStudioSpanExporter.sink_name,
            exporter_options,
            meter_provider=meter_provider,
            check_connection=False,
        )
        exporter = LabelStudioSpanExporter(
            api_key=api_key,
            url=url,
            project_id=project_id,
            project_name=project_name,
            project_config=project_config,
            mode=mode,
            **options,
        )
        super().__init__(
            exporter,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            check_connection=check_connection,
            **handler_options,
        )
        self.exporter: LabelStudioSpanExporter = exporter
        self.mode = self.exporter.settings.mode
        self.project_config = self.exporter.settings.project_config
        self.project_name = self.exporter.settings.project_name
        self.url = self.exporter.settings.url
        self.api_key = self.exporter.settings.api_key
        # Maps run_id to the prompts of LLM runs in flight, as the seed's did.
        self.payload: dict[str, dict[str, Any]] = {}
        self._ls_client: LabelStudio | None = None

    # --- the seed's attributes -------------------------------------------------------------------

    @property
    def project_id(self) -> int:
        """The project's number (found or created on first use when not checked at construction)."""
        return self.exporter.project().id

    @property
    def ls_client(self) -> LabelStudio:
        """A Label Studio SDK client for the same server and key."""
        if self._ls_client is None:
            self._ls_client = LabelStudio(base_url=self.url, api_key=self.api_key)
        return self._ls_client

    @property
    def ls_project(self) -> Any:
        """The project, read from the server through `ls_client` (network, on each access)."""
        return self.ls_client.projects.get(self.project_id)

    @property
    def parsed_label_config(self) -> Any:
        """The project's labeling config as the server parses it (through `ls_project`)."""
        return self.ls_project.parsed_label_config

    @property
    def from_name(self) -> str:
        """The TextArea the generation goes to, as the original found it in the config."""
        return self.exporter.project().binding.from_name

    @property
    def to_name(self) -> str:
        """The object tag that TextArea names (`toName`)."""
        return self.exporter.project().binding.to_name

    @property
    def value(self) -> str:
        """The task-data field that object reads (`value="$prompt"` -> "prompt")."""
        return self.exporter.project().binding.data_key

    @property
    def input_type(self) -> str:
        """That object's tag: "Text" in prompt mode, "Paragraphs" in chat mode."""
        return object_tag(self.exporter.project().binding.mode)

    def add_prompts_generations(self, run_id: str, generations: Sequence[Sequence[Any]]) -> None:
        """Import one task per prompt of `payload[run_id]` with its generations, now, on this
        thread (as the seed did). The handler itself never needs this: traced calls become
        tasks on the delivery thread."""
        target = self.exporter.project()
        binding = target.binding
        entry = self.payload[run_id]
        model_version = entry.get("kwargs", {}).get("invocation_params", {}).get("model_name")
        tasks = [
            {
                "data": {binding.data_key: prompt, "run_id": run_id},
                "predictions": [
                    {
                        "result": [
                            {
                                "from_name": binding.from_name,
                                "to_name": binding.to_name,
                                "type": "textarea",
                                "value": {"text": [_text(g) for g in generation]},
                            }
                        ],
                        "model_version": model_version,
                    }
                ],
            }
            for prompt, generation in zip(entry["prompts"], generations, strict=False)
        ]
        self.exporter.import_tasks(tasks)

    # --- payload bookkeeping (cheap: a reference per LLM run in flight) --------------------------

    def on_llm_start(
        self, serialized: dict[str, Any], prompts: list[str], *, run_id: UUID, **kwargs: Any
    ) -> Any:
        self.payload[str(run_id)] = {"prompts": prompts, "kwargs": kwargs}
        return super().on_llm_start(serialized, prompts, run_id=run_id, **kwargs)

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[Any]], *, run_id: UUID, **kwargs: Any
    ) -> Any:
        try:
            dialogues = [
                [
                    {"role": _seed_role(message), "content": getattr(message, "content", "")}
                    for message in message_list
                ]
                for message_list in messages
            ]
            self.payload[str(run_id)] = {"prompts": dialogues, "run_id": run_id, "kwargs": kwargs}
        except Exception:  # bookkeeping must never cost the user's call
            _logger.debug("could not record the chat prompt of run %s", run_id, exc_info=True)
        return super().on_chat_model_start(serialized, messages, run_id=run_id, **kwargs)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> Any:
        self.payload.pop(str(run_id), None)
        return super().on_llm_end(response, run_id=run_id, **kwargs)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> Any:
        self.payload.pop(str(run_id), None)
        return super().on_llm_error(error, run_id=run_id, **kwargs)


def _seed_role(message: Any) -> str:
    # As the seed named speakers: a ChatMessage's own role, else the message class.
    role = getattr(message, "role", None)
    return role if isinstance(role, str) else type(message).__name__


def _text(generation: Any) -> str:
    return str(getattr(generation, "text", generation))
