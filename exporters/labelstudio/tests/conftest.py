"""Fixtures for the Label Studio exporter tests: the real server `make test` starts
(LABEL_STUDIO_URL, LABEL_STUDIO_LEGACY_TOKEN), a personal access token obtained through the API,
a unique project per test, exporters wired to a temporary spool, and reads as a reviewer sees them.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from label_studio_sdk import LabelStudio
from otel_bridge_labelstudio import LabelStudioSpanExporter

from tests.support.factories import shut_down_after

from .server import LabelStudioServer, create_personal_access_token

# Read once at import: tests scrub these variables from os.environ to check precedence.
_SERVICE_ENV = {
    name: os.environ.get(name) for name in ("LABEL_STUDIO_URL", "LABEL_STUDIO_LEGACY_TOKEN")
}
_EXPORTER_ENV = re.compile(r"^(OTEL_BRIDGE_LABELSTUDIO_|LABEL_STUDIO_(API_KEY|URL|PROJECT_ID)$)")
_RESTARTABLE = pytest.StashKey[LabelStudioServer]()


def _service_env(name: str) -> str:
    value = _SERVICE_ENV[name]
    if not value:
        pytest.fail(
            f"{name} is not set: the Label Studio exporter tests need the real server that "
            "`make test` starts; run them as `scripts/services.sh run -- .venv/bin/python -m "
            "pytest exporters/labelstudio/tests`",
            pytrace=False,
        )
    return value


@pytest.fixture(scope="session")
def label_studio_url() -> str:
    return _service_env("LABEL_STUDIO_URL")


@pytest.fixture(scope="session")
def legacy_token() -> str:
    return _service_env("LABEL_STUDIO_LEGACY_TOKEN")


@pytest.fixture(scope="session")
def personal_access_token(label_studio_url: str, legacy_token: str) -> str:
    return create_personal_access_token(label_studio_url, legacy_token)


@pytest.fixture(scope="session")
def reviewer(label_studio_url: str, legacy_token: str) -> LabelStudio:
    """The SDK client a reviewer's tooling would use to read projects and tasks back."""
    return LabelStudio(base_url=label_studio_url, api_key=legacy_token)


@pytest.fixture(autouse=True)
def scrubbed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No exporter setting leaks in from the shell; tests set what they mean to test."""
    for name in list(os.environ):
        if _EXPORTER_ENV.match(name):
            monkeypatch.delenv(name)


@pytest.fixture
def project_name(request: pytest.FixtureRequest) -> str:
    """A title no other test (or earlier run against the same server) uses."""
    test = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name.removeprefix("test_"))[:30]
    return f"ob-{test}-{uuid.uuid4().hex[:8]}"  # at most 42 of Label Studio's 50 characters


MakeLabelStudioExporter = Callable[..., LabelStudioSpanExporter]


@pytest.fixture
def make_exporter(
    label_studio_url: str, legacy_token: str, project_name: str, tmp_path: Path
) -> Iterator[MakeLabelStudioExporter]:
    """Exporters against the test server and the test's project; shut down after the test."""
    settings: dict[str, Any] = {
        "url": label_studio_url,
        "api_key": legacy_token,
        "project_name": project_name,
        "spool_dir": tmp_path / "spool",
        "grace_period": 0.0,
        "shutdown_timeout": 1.0,
    }
    yield from shut_down_after(lambda **options: LabelStudioSpanExporter(**{**settings, **options}))


def tasks_of(reviewer: LabelStudio, project_id: int) -> list[Any]:
    """Every task of the project with its predictions, oldest first, as the SDK returns them."""
    return sorted(reviewer.tasks.list(project=project_id), key=lambda task: task.id)


def projects_titled(reviewer: LabelStudio, title: str) -> list[Any]:
    return [p for p in reviewer.projects.list(title=title) if p.title == title]


# --- the restartable server: launched at collection, so its slow first start overlaps tests ---


@pytest.hookimpl(trylast=True)  # after -k / -m deselection
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if any("restartable_server" in getattr(item, "fixturenames", ()) for item in items):
        shared = os.environ.get("LABEL_STUDIO_DATA_DIR")
        token = os.environ.get("LABEL_STUDIO_LEGACY_TOKEN")
        seed = (Path(shared), token) if shared and token else None
        data_dir = Path(tempfile.mkdtemp(prefix="otel-bridge-label-studio-"))
        server = LabelStudioServer(data_dir, seed)
        config.stash[_RESTARTABLE] = server
        # A failure to start is reported by the fixture, to the test that needs the server.
        with contextlib.suppress(RuntimeError):
            server.start()


def pytest_unconfigure(config: pytest.Config) -> None:
    server = config.stash.get(_RESTARTABLE, None)
    if server is not None:
        server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def restartable_server(pytestconfig: pytest.Config) -> LabelStudioServer:
    """A Label Studio of the tests' own, which a test may stop and start again."""
    server = pytestconfig.stash[_RESTARTABLE]
    try:
        if not server.running:
            server.start()
        server.wait_ready()
    except RuntimeError as error:
        pytest.fail(f"the tests' own Label Studio server did not start: {error}", pytrace=False)
    return server
