"""A task the exporter creates leaves the app around it alone: no snapshot of the app's git
checkout (its uncommitted diff, its packages) for `close()` to wait on, and no reseeding of
`random`, from which the OpenTelemetry SDK draws trace ids by default.

The apps run as scripts of their own in a git checkout with uncommitted changes, as real apps
would: ClearML's repository detection looks at the running script, its seeding at the process.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from otel_bridge_clearml import ClearMLSpanExporter

from .conftest import app_task, closed_session_of
from .offline_session import OfflineSession

_APP = """
import json
import sys

from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from otel_bridge_clearml import ClearMLSpanExporter

spool_dir, frameworks = sys.argv[1], json.loads(sys.argv[2])
options = {} if frameworks is None else {"auto_connect_frameworks": frameworks}
exporter = ClearMLSpanExporter(spool_dir=spool_dir, task_init_options=options)
folder = exporter.task.get_offline_mode_folder()
# The app's own ids, from the SDK's default generator (which draws from `random`).
trace_ids = [RandomIdGenerator().generate_trace_id() for _ in range(3)]
exporter.shutdown()
print(json.dumps({"folder": str(folder), "trace_ids": trace_ids}))
"""
_UNCOMMITTED = "ANSWER = 43  # an uncommitted change\n"
_SUBPROCESS_TIMEOUT_S = 240


@dataclass(frozen=True)
class AppRun:
    session: OfflineSession
    trace_ids: list[int]
    output: str  # the app's stdout and stderr, ClearML's console lines included


def _git(checkout: Path, *arguments: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=app", "-c", "user.email=app@example.com", *arguments],
        cwd=checkout,
        check=True,
        capture_output=True,
    )


def _dirty_checkout(root: Path) -> Path:
    checkout = root / "checkout"
    checkout.mkdir()
    (checkout / "app.py").write_text(_APP)
    (checkout / "settings.py").write_text("ANSWER = 42\n")
    _git(checkout, "init", "--quiet")
    _git(checkout, "add", "app.py", "settings.py")
    _git(checkout, "commit", "--quiet", "--message", "the app")
    (checkout / "settings.py").write_text(_UNCOMMITTED)
    return checkout


@pytest.fixture(scope="module")
def app_runs(tmp_path_factory: pytest.TempPathFactory) -> list[AppRun]:
    """Two runs of the app, side by side: one with the exporter's defaults, one turning a single
    framework binding back on through `task_init_options`."""
    root = tmp_path_factory.mktemp("dirty-app")
    checkout = _dirty_checkout(root)
    # Without ClearML's variables: the tasks earlier tests created in this process left their
    # process state there (CLEARML_PROC_MASTER_ID), which would make each app a subprocess of
    # those tasks. The session fixture's clearml.conf and no credentials: ClearML runs offline.
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CLEARML_", "TRAINS_"))},
        "CLEARML_CONFIG_FILE": os.environ["CLEARML_CONFIG_FILE"],
        "CLEARML_CACHE_DIR": str(root / "clearml-cache"),
    }
    apps = [
        subprocess.Popen(
            [sys.executable, "app.py", str(root / f"spool-{n}"), json.dumps(frameworks)],
            cwd=checkout,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for n, frameworks in enumerate([None, {"matplotlib": True}])
    ]
    runs = []
    try:
        for n, app in enumerate(apps):
            output, _ = app.communicate(timeout=_SUBPROCESS_TIMEOUT_S)
            assert app.returncode == 0, output
            report: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
            session = closed_session_of(Path(report["folder"]), root / f"imported-{n}")
            runs.append(AppRun(session, report["trace_ids"], output))
    finally:
        for app in apps:
            if app.poll() is None:
                app.kill()
                app.wait()
    return runs


def test_the_task_gets_no_snapshot_of_the_apps_checkout(app_runs: list[AppRun]) -> None:
    for run in app_runs:
        task = run.session.task
        script = task.get("script") or {}
        assert not script.get("diff") and not script.get("repository")
        assert not script.get("requirements"), "ClearML analysed the app's packages"
        assert _UNCOMMITTED.strip() not in json.dumps(task)
        # What close() waits up to 300 s for was never started.
        assert "Waiting for repository detection" not in run.output


def test_apps_draw_their_own_trace_ids_after_the_exporter_creates_its_task(
    app_runs: list[AppRun],
) -> None:
    first, second = app_runs
    assert len(set(first.trace_ids)) == 3
    assert not set(first.trace_ids) & set(second.trace_ids)


@pytest.fixture
def random_state_kept() -> Iterator[None]:
    """The test process's `random` as it was: an app task of this test reseeds it."""
    state = random.getstate()
    yield
    random.setstate(state)


@pytest.mark.usefixtures("random_state_kept")
def test_the_apps_own_tasks_keep_clearmls_seeding(spool_dir: Path) -> None:
    random.seed(1337)  # what ClearML's default seeding would do
    reseeded = [random.random() for _ in range(3)]
    random.seed()
    exporter = ClearMLSpanExporter(spool_dir=spool_dir, grace_period=0.0)
    task = exporter.task
    assert exporter.created_task and task.get_random_seed() is None
    assert [random.random() for _ in range(3)] != reseeded
    exporter.shutdown()

    # ClearML's switch is back as the app had it: its own Task.init still seeds (1337).
    mine = app_task("app", "own task")
    assert mine.get_random_seed() == 1337
    mine.close()
