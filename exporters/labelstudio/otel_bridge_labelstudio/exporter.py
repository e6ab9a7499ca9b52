"""`LabelStudioSpanExporter`: the core `TraceExporter` wired to the task encoder and the transport."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from label_studio_sdk.core.api_error import ApiError

from otel_bridge.exporter import TraceExporter
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.sink import DeliveryReport, PermanentError, RetryableError, trace_key
from otel_bridge_labelstudio._encoder import Task, TaskEncoder, TaskGranularity
from otel_bridge_labelstudio._filter import TraceFilter
from otel_bridge_labelstudio._label_config import LabelStudioMode
from otel_bridge_labelstudio._transport import (
    AuthenticationFailed,
    LabelStudioTransport,
    Project,
    ProjectNotFound,
    ServerUnreachable,
)
from otel_bridge_labelstudio.settings import resolve_settings

_logger = logging.getLogger(__name__)
_T = TypeVar("_T")

# Tasks per bulk-import request; a trace's tasks always travel in the same request, so a trace
# is in Label Studio entirely or not at all.
_TASKS_PER_IMPORT = 500


@dataclass(frozen=True, slots=True)
class _Target:
    """The project tasks go to and the encoder bound to its labeling config."""

    project: Project
    encoder: TaskEncoder


class LabelStudioSpanExporter(TraceExporter):
    """Turns every LLM call of a finished trace (or each whole trace) into a Label Studio task.

    Arguments and environment variables follow langchain_community's LabelStudioCallbackHandler:
    `api_key` (`LABEL_STUDIO_API_KEY`), `url` (`LABEL_STUDIO_URL`, default
    http://localhost:8080), `project_id` (`LABEL_STUDIO_PROJECT_ID`), `project_name` (an
    strftime pattern, default "LangChain-%Y-%m-%d"), `project_config` (labeling XML, validated
    now) and `mode` ("prompt" or "chat"). The `OTEL_BRIDGE_LABELSTUDIO_*` variables of the same
    names take precedence over the `LABEL_STUDIO_*` ones. Beyond the seed: `task_per`
    ("llm_call" or "trace"), `trace_filter`, `trace_url_template` (a link to the trace in your
    tracing UI, with `{trace_id}` / `{span_id}`) and `timeout` per HTTP request. Everything
    else (`spool_dir`, `grace_period`, ...) goes to `TraceExporter`.

    The server is contacted only from background threads: with `check_connection` (the
    default) one looks the project up right away and logs one warning if the server is
    unreachable or refuses the key (the exporter keeps starting: behind a Collector the sink
    may come up later); an unreachable server delays tasks, a rejected token dead-letters them
    with the server's answer as the reason. `check_connection()` does the same check on the
    caller's thread and raises.
    """

    sink_name: ClassVar[str] = "labelstudio"
    needs_content: ClassVar[bool] = True

    def __init__(
        self,
        api_key: str | None = None,
        url: str | None = None,
        project_id: int | str | None = None,
        project_name: str | None = None,
        project_config: str | None = None,
        mode: str | LabelStudioMode | None = None,
        *,
        task_per: str | TaskGranularity = TaskGranularity.LLM_CALL,
        trace_filter: TraceFilter | None = None,
        trace_url_template: str | None = None,
        timeout: float = 10.0,
        check_connection: bool = True,
        **options: Any,
    ) -> None:
        self.settings = resolve_settings(
            api_key=api_key,
            url=url,
            project_id=project_id,
            project_name=project_name,
            project_config=project_config,
            mode=mode,
            trace_url_template=trace_url_template,
        )
        self.granularity = TaskGranularity(task_per)
        self.trace_filter = trace_filter or TraceFilter()
        self._transport = LabelStudioTransport(
            self.settings.url, self.settings.api_key, timeout=timeout
        )
        self._target: _Target | None = None
        self._target_lock = threading.Lock()
        self._in_outage = False
        super().__init__(**options)
        if check_connection:
            threading.Thread(
                target=self._warn_if_unusable, name="otel-bridge-labelstudio-check", daemon=True
            ).start()

    def destination_identity(self) -> dict[str, str]:
        """Where tasks go: the server and the project (its number, else its title)."""
        settings = self.settings
        project = (
            str(settings.project_id) if settings.project_id is not None else settings.project_title
        )
        return {"url": settings.url, "project": project}

    def check_connection(self) -> None:
        """Find (or create) the project now, on this thread. Raises `ConnectionError` when
        the server cannot be reached and the SDK's `ApiError` (401/403/404) when it refuses the
        key or the project, each naming the server and what to check."""
        try:
            self.project()
        except ServerUnreachable as error:
            raise ConnectionError(
                f"{error.reason}. Start Label Studio or fix url= / LABEL_STUDIO_URL "
                "(check_connection=False skips this check)"
            ) from error
        except PermanentError as error:
            cause = error.__cause__
            status = cause.status_code if isinstance(cause, ApiError) else None
            raise ApiError(
                status_code=status,
                body=f"{error.reason} (check_connection=False skips this check)",
            ) from error
        except RetryableError as error:
            raise ConnectionError(
                f"{error.reason} (check_connection=False skips this check)"
            ) from error

    def _warn_if_unusable(self) -> None:
        # Read-only: creating the project here would race other exporters starting alongside.
        settings = self.settings
        try:
            if settings.project_id is not None:
                self._transport.project_by_id(settings.project_id, settings.mode)
            else:
                self._transport.check_access(settings.project_title)
        except (RetryableError, PermanentError) as error:
            _logger.warning(
                "Label Studio is not usable yet (%s); tasks wait in the spool until it is",
                error.reason,
            )
        except Exception:
            _logger.warning("Label Studio check failed; tasks wait in the spool", exc_info=True)

    @property
    def token_kind(self) -> str:
        """Which kind of API key this is ("personal access token" or "legacy token")."""
        return self._transport.token_kind.value

    def project(self) -> Project:
        """The target project, found or created on first use (network; not for the app's thread)."""
        return self._resolve().project

    def import_tasks(self, tasks: Sequence[Mapping[str, Any]]) -> None:
        """Import ready-made task payloads into the project now, on the caller's thread
        (the seed's `add_prompts_generations`); raises the sink's errors."""
        project = self._checked(self.project)
        self._checked(lambda: self._transport.import_tasks(project.id, tasks))

    def _resolve(self) -> _Target:
        with self._target_lock:
            if self._target is None:
                settings = self.settings
                if settings.project_id is not None:
                    project = self._transport.project_by_id(settings.project_id, settings.mode)
                else:
                    project = self._transport.find_or_create_project(
                        settings.project_title, settings.project_config, settings.mode
                    )
                encoder = TaskEncoder(
                    project.binding, self.granularity, settings.trace_url_template
                )
                self._target = _Target(project, encoder)
                _logger.info("Label Studio tasks go to project %d (%r)", project.id, project.title)
            return self._target

    # --- TraceExporter hooks ----------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        # The project found before the fork is still this sink's target; its HTTP client is not.
        self._target_lock = threading.Lock()
        self._transport.drop_client()

    def accepts(self, trace: FinishedTrace) -> bool:
        return self.trace_filter.matches(trace)

    def already_delivered(self, keys: Sequence[str]) -> set[str]:
        """Trace keys with tasks in the project (a trace is imported whole, in one request)."""
        if not keys:
            return set()
        try:
            project = self._checked(self.project)
            span_keys = self._checked(lambda: self._transport.existing_span_keys(project.id, keys))
        except PermanentError:
            # `deliver` meets the same failure and dead-letters the traces with its reason.
            return set()
        return {key.partition("-")[0] for key in span_keys} & set(keys)

    def deliver(self, traces: Sequence[FinishedTrace]) -> DeliveryReport:
        target = self._checked(self._resolve)
        project, encoder = target.project, target.encoder
        permanent: dict[str, str] = {}
        tasks_by_trace: dict[str, list[Task]] = {}
        for trace in traces:
            try:
                tasks_by_trace[trace_key(trace)] = list(encoder.encode(trace))
            except Exception as error:  # one malformed trace must not hold back the batch
                _logger.exception(
                    "could not encode trace %s as Label Studio tasks", trace_key(trace)
                )
                permanent[trace_key(trace)] = f"could not encode as Label Studio tasks: {error!r}"
        with_tasks = [key for key, tasks in tasks_by_trace.items() if tasks]
        existing = self._checked(lambda: self._transport.existing_span_keys(project.id, with_tasks))
        fresh = {
            key: [task for task in tasks if task.span_key not in existing]
            for key, tasks in tasks_by_trace.items()
        }
        delivered = {key for key, tasks in fresh.items() if not tasks}
        retryable: dict[str, str] = {}
        retry_after: float | None = None
        # After a failure that concerns every request (outage, rejected token), the rest of
        # the batch shares its fate without being tried.
        failure: RetryableError | PermanentError | None = None
        for chunk in _chunks([key for key, tasks in fresh.items() if tasks], fresh):
            if failure is None:
                try:
                    self._import(project, chunk, fresh, permanent)
                except (RetryableError, PermanentError) as error:
                    failure = error
                else:
                    delivered.update(key for key in chunk if key not in permanent)
                    continue
            if isinstance(failure, RetryableError):
                retryable.update(dict.fromkeys(chunk, failure.reason))
                retry_after = failure.retry_after
            else:
                permanent.update(dict.fromkeys(chunk, failure.reason))
        if failure is None and self._in_outage:
            self._in_outage = False
            _logger.warning("Label Studio at %s answers again", self.settings.url)
        return DeliveryReport(
            delivered=frozenset(delivered),
            retryable=retryable,
            permanent=permanent,
            retry_after=retry_after,
        )

    # --- internals --------------------------------------------------------------------------

    def _import(
        self,
        project: Project,
        chunk: Sequence[str],
        fresh: dict[str, list[Task]],
        permanent: dict[str, str],
    ) -> None:
        """Import a chunk; when the server refuses its payload, find the traces at fault."""
        payload = [task.payload for key in chunk for task in fresh[key]]
        try:
            self._checked(lambda: self._transport.import_tasks(project.id, payload))
        except (AuthenticationFailed, ProjectNotFound):
            raise
        except PermanentError as error:
            if len(chunk) == 1:
                permanent[chunk[0]] = error.reason
                return
            for key in chunk:
                self._import(project, [key], fresh, permanent)

    def _checked(self, call: Callable[[], _T]) -> _T:
        """Run a transport call; a project that vanished is looked up (or created) again, and
        an outage is logged once as a warning (each retry is only logged at INFO by the core)."""
        try:
            return call()
        except ServerUnreachable as error:
            if not self._in_outage:
                self._in_outage = True
                _logger.warning("%s; tasks wait in the spool and are retried", error.reason)
            raise
        except ProjectNotFound as error:
            if self.settings.project_id is not None:
                raise
            with self._target_lock:
                self._target = None
            raise RetryableError(
                f"{error.reason}; the project is looked up or created again on the next attempt"
            ) from error


def _chunks(keys: Sequence[str], tasks: dict[str, list[Task]]) -> list[list[str]]:
    chunks: list[list[str]] = []
    size = 0
    for key in keys:
        if not chunks or size + len(tasks[key]) > _TASKS_PER_IMPORT:
            chunks.append([])
            size = 0
        chunks[-1].append(key)
        size += len(tasks[key])
    return chunks
