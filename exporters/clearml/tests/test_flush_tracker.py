"""`flush_tracker` does work proportional to what it reports: it never waits on ClearML's
reporting subprocess, whose fixed 5 s period made each ClearML flush take up to 5 s whatever was
reported (a few runs took 11 s per flush_tracker, 15 s with finish). Run under ClearML's
default settings, in a process of its own (exporters/clearml/tests/flush_child.py), against a
real offline session; the session then holds the tables of the flush once.

The only stand-in is the LLM API: `otel_bridge.testing.FakeChatModel`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from otel_bridge_clearml.encoder import ACTION_RECORDS_TITLE, SESSION_ANALYSIS_TITLE

from tests.support.processes import run_python

from .conftest import closed_session_of, environment_without_clearml_state
from .flush_child import RUNS


@pytest.mark.parametrize("mode", ["handler_task", "app_task"])
def test_flush_tracker_never_waits_on_the_reporting_subprocess(mode: str, tmp_path: Path) -> None:
    defaults = tmp_path / "clearml.conf"
    defaults.write_text("")  # ClearML's own defaults: subprocess reporting on Linux
    env = {
        **environment_without_clearml_state(),
        "CLEARML_CONFIG_FILE": str(defaults),
        "CLEARML_CACHE_DIR": str(tmp_path / "clearml-cache"),
    }
    child = run_python(
        "-m",
        "exporters.clearml.tests.flush_child",
        mode,
        str(tmp_path / "spool"),
        env=env,
        timeout=240,
    )
    (line,) = [line for line in child.stdout.splitlines() if line.startswith("{")]
    facts = json.loads(line)
    assert facts["subprocess_waits"] == 0, facts
    # The handler's own task reports from a thread; the app's keeps ClearML's subprocess.
    assert facts["reports_through_subprocess"] is (mode == "app_task")

    session = closed_session_of(Path(facts["folder"]), tmp_path / "imported")
    assert session.table_series(ACTION_RECORDS_TITLE) == ["few runs"]
    assert session.table_series(SESSION_ANALYSIS_TITLE) == ["few runs"]
    (rows,) = session.tables(SESSION_ANALYSIS_TITLE).values()
    assert sorted(row["output"] for row in rows) == [
        f"Answer to: question {n}" for n in range(RUNS)
    ]
    (model,) = session.output_models()
    assert model["init"]["name"] == "few runs"
