"""The Label Studio calls the exporter makes (via label-studio-sdk 2.x), with failures classified.

Every call raises `RetryableError` when waiting can help (outage, throttling, 5xx) and
`PermanentError` when it cannot (rejected token, missing project, unusable config).
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import functools
import json
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NoReturn, TypeVar

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core import RequestOptions
from label_studio_sdk.core.api_error import ApiError

from otel_bridge.sink import (
    PermanentError,
    RetryableError,
    http_status_is_retryable,
    retry_after_seconds,
)
from otel_bridge_labelstudio._encoder import SPAN_KEY_FIELD, TRACE_ID_FIELD
from otel_bridge_labelstudio._label_config import (
    Binding,
    LabelConfigError,
    LabelStudioMode,
    bind_label_config,
)

_T = TypeVar("_T")

_AUTH_FAILURES = frozenset({401, 403})
# Trace ids per task-list query: each becomes a ~180-byte filter item in the URL, and 40 keep
# the request line under the 8 KiB that proxies in front of Label Studio (nginx) accept.
_KEYS_PER_QUERY = 40
_TASKS_PAGE_SIZE = 500
# The SDK would otherwise retry (and sleep) on its own; the core's retry policy owns that.
_NO_SDK_RETRY: RequestOptions = {"max_retries": 0}


class TokenKind(StrEnum):
    """Label Studio accepts two kinds of API key, sent differently."""

    LEGACY = "legacy token"
    PERSONAL = "personal access token"


def token_kind(api_key: str) -> TokenKind:
    """A personal access token is a JWT (header.payload.signature); anything else is legacy."""
    return TokenKind.PERSONAL if _jwt_claims(api_key) is not None else TokenKind.LEGACY


def _jwt_claims(token: str) -> dict[str, Any] | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header, claims = (
            json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))) for p in parts[:2]
        )
    except (binascii.Error, ValueError):
        return None
    if not isinstance(header, dict) or "alg" not in header or not isinstance(claims, dict):
        return None
    return claims


class AuthenticationFailed(PermanentError):
    """The server refused the API key (HTTP 401/403)."""


class ServerUnreachable(RetryableError):
    """No HTTP answer at all: connection refused, DNS failure, timeout."""


class ProjectNotFound(PermanentError):
    """The server answered 404 for a project (wrong id, or deleted since it was found)."""


@dataclass(frozen=True, slots=True)
class Project:
    """The project tasks go to, and where its config wants the input and the generation."""

    id: int
    title: str
    binding: Binding


class LabelStudioTransport:
    """A thin client over one Label Studio server and API key."""

    def __init__(self, url: str, api_key: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.token_kind = token_kind(api_key)
        self._api_key = api_key
        self._timeout = timeout
        self._client: LabelStudio | None = None

    def drop_client(self) -> None:
        """Forget the SDK client (and the httpx pool inside it); the next call builds a new one.
        For a forked child, whose copy of the pool shares keep-alive sockets with the parent: it
        is dropped, not closed, since closing would end connections the parent still uses."""
        self._client = None

    # --- projects --------------------------------------------------------------------------

    def project_by_id(self, project_id: int, mode: LabelStudioMode) -> Project:
        client = self._sdk()
        project = self._call(
            f"reading project {project_id}",
            lambda: client.projects.get(project_id, request_options=_NO_SDK_RETRY),
            project_scoped=True,
        )
        return _project(project_id, project.title or "", project.label_config, mode)

    def check_access(self, title: str) -> None:
        """Reach the server and have the key accepted, changing nothing (a project lookup)."""
        client = self._sdk()
        self._call(
            f"listing projects titled {title!r}",
            lambda: client.projects.list(title=title, page_size=1, request_options=_NO_SDK_RETRY),
        )

    def find_or_create_project(self, title: str, config: str, mode: LabelStudioMode) -> Project:
        """The oldest project titled exactly `title`, else a new one with `config`."""
        client = self._sdk()
        # The server's `title` filter matches substrings case-insensitively; exactness is ours.
        candidates: list[Any] = self._call(
            f"listing projects titled {title!r}",
            lambda: list(client.projects.list(title=title, request_options=_NO_SDK_RETRY)),
        )
        same = sorted(p.id for p in candidates if p.title == title and p.id is not None)
        if same:
            return self.project_by_id(same[0], mode)
        created = self._call(
            f"creating project {title!r}",
            lambda: client.projects.create(
                title=title, label_config=config, request_options=_NO_SDK_RETRY
            ),
        )
        if created.id is None:
            raise RetryableError(f"Label Studio created project {title!r} without returning its id")
        return _project(created.id, title, config, mode)

    # --- tasks -----------------------------------------------------------------------------

    def existing_span_keys(self, project_id: int, trace_keys: Collection[str]) -> set[str]:
        """The idempotency keys already present in the project among tasks of these traces."""
        found: set[str] = set()
        ordered = sorted(set(trace_keys))
        for start in range(0, len(ordered), _KEYS_PER_QUERY):
            query = json.dumps(
                {"filters": _any_trace_filter(ordered[start : start + _KEYS_PER_QUERY])},
                separators=(",", ":"),
            )
            found.update(
                self._call(
                    f"looking up existing tasks in project {project_id}",
                    functools.partial(self._span_keys, project_id, query),
                    project_scoped=True,
                )
            )
        return found

    def import_tasks(self, project_id: int, tasks: Sequence[Mapping[str, Any]]) -> None:
        """Create `tasks` (data + predictions) in one bulk request."""
        client = self._sdk()
        request: list[Any] = list(tasks)
        response = self._call(
            f"importing {len(tasks)} tasks into project {project_id}",
            lambda: client.projects.import_tasks(
                project_id, request=request, request_options=_NO_SDK_RETRY
            ),
            project_scoped=True,
        )
        if response.task_count is not None and response.task_count != len(tasks):
            raise RetryableError(
                f"Label Studio created {response.task_count} of {len(tasks)} tasks in project "
                f"{project_id}; the rest will be retried"
            )

    # --- plumbing --------------------------------------------------------------------------

    def _span_keys(self, project_id: int, query: str) -> list[str]:
        # Paged by hand: the SDK's iterator asks for one page past the end and reads the 404.
        client = self._sdk()
        keys: list[str] = []
        seen = page = 0
        while True:
            page += 1
            response: Any = client.tasks.list(
                project=project_id,
                query=query,
                fields="task_only",
                page=page,
                page_size=_TASKS_PAGE_SIZE,
                request_options=_NO_SDK_RETRY,
            )
            items = response.items or []
            for task in items:
                key = (task.data or {}).get(SPAN_KEY_FIELD)
                if isinstance(key, str):
                    keys.append(key)
            seen += len(items)
            total = getattr(response.response, "total", None)
            if len(items) < _TASKS_PAGE_SIZE or (total is not None and seen >= total):
                return keys

    def _sdk(self) -> LabelStudio:
        if self._client is None:
            claims = _jwt_claims(self._api_key)
            expiry = claims.get("exp") if claims else None
            if isinstance(expiry, int | float) and expiry < time.time():
                raise AuthenticationFailed(
                    f"the Label Studio personal access token expired at "
                    f"{email.utils.formatdate(expiry, usegmt=True)}; create a new one under "
                    "Account & Settings -> Personal Access Token"
                )
            self._client = LabelStudio(
                base_url=self.url, api_key=self._api_key, timeout=self._timeout
            )
        return self._client

    def _call(self, doing: str, request: Callable[[], _T], *, project_scoped: bool = False) -> _T:
        try:
            return request()
        except ApiError as error:
            self._raise_classified(doing, error, project_scoped)
        except httpx.TimeoutException as error:
            raise ServerUnreachable(
                f"Label Studio at {self.url} timed out while {doing}: {error!r}"
            ) from error
        except httpx.TransportError as error:
            raise ServerUnreachable(
                f"Label Studio at {self.url} is unreachable while {doing}: {error!r}"
            ) from error

    def _raise_classified(self, doing: str, error: ApiError, project_scoped: bool) -> NoReturn:
        status = error.status_code or 0
        detail = _detail(error.body)
        where = f"Label Studio at {self.url} answered HTTP {status} while {doing}: {detail}"
        if status in _AUTH_FAILURES:
            raise AuthenticationFailed(
                f"{where}. The server rejected the {self.token_kind.value}: check "
                "LABEL_STUDIO_API_KEY (Account & Settings in Label Studio)"
            ) from error
        if status == 404 and project_scoped:
            raise ProjectNotFound(where) from error
        if http_status_is_retryable(status):
            raise RetryableError(where, retry_after=_retry_after(error.headers)) from error
        raise PermanentError(where) from error


def _project(project_id: int, title: str, config: str | None, mode: LabelStudioMode) -> Project:
    try:
        binding = bind_label_config(config or "", mode)
    except LabelConfigError as error:
        raise PermanentError(f"Label Studio project {project_id} ({title!r}): {error}") from None
    return Project(id=project_id, title=title, binding=binding)


def _any_trace_filter(trace_keys: Sequence[str]) -> dict[str, Any]:
    """A Data Manager filter matching tasks whose data names any of these trace ids."""
    return {
        "conjunction": "or",
        "items": [
            {
                "filter": f"filter:tasks:data.{TRACE_ID_FIELD}",
                "operator": "equal",
                "type": "String",
                "value": key,
            }
            for key in trace_keys
        ],
    }


def _detail(body: Any) -> str:
    if isinstance(body, Mapping):
        for key in ("detail", "validation_errors", "label_config"):
            if body.get(key):
                return str(body[key])
    return str(body)[:500]


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    return retry_after_seconds(
        next((v for k, v in (headers or {}).items() if k.lower() == "retry-after"), None)
    )
