"""The README's install table walked as a newcomer walks it: each row's one command in a fresh
environment of its own (tests/support/example_envs.py), then what that row promises done with
nothing else installed. The `make` rows are tested where they run: `make demo` in test_demo.py,
`make ui` in test_trace_ui.py, `make install` is every other test's environment. The chat model
is the bundled fake (the stand-in for a paid LLM API).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_demo import clean_environment
from tests.integration.test_readme import section
from tests.support import example_envs

_EXAMPLES = example_envs.ROOT / "examples"
_TIMEOUT_S = 300


def _rows() -> dict[str, str]:
    """What you want -> its command, for the rows whose command is a pip install."""
    rows = {}
    for line in section("Install by goal").splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 2 and (command := re.match(r"`(pip install [^`]+)`", cells[1])):
            rows[cells[0]] = command.group(1)
    return rows


ROWS = _rows()


@pytest.fixture(scope="module", autouse=True)
def _remove_the_environments() -> Iterator[None]:
    yield
    example_envs.remove_all()


def _run(
    goal: str, args: list[str], tmp_path: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    python = example_envs.python_for(ROWS[goal])
    return subprocess.run(
        [str(python), *args],
        cwd=tmp_path,
        env=clean_environment(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
        check=False,
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return result.stdout


def test_the_table_has_a_row_for_each_goal() -> None:
    goals = " ".join(ROWS)
    for goal in ("handler", "receiver", "demo", "Label Studio", "UpTrain", "ClearML", "SageMaker"):
        assert goal in goals
    assert any(goal.startswith("everything `examples/`") for goal in ROWS)


def test_handler_only_runs_the_quickstart(tmp_path: Path) -> None:
    goal = next(goal for goal in ROWS if goal.startswith("the handler"))
    out = _ok(_run(goal, [str(_EXAMPLES / "quickstart.py")], tmp_path))
    assert out.startswith("Spans, with parent links, attributes and metrics.")


def test_the_receiver_row_validates_the_bridge_configuration(tmp_path: Path) -> None:
    goal = next(goal for goal in ROWS if goal.startswith("the receiver"))
    config = example_envs.ROOT / "collector-config" / "bridge.yaml"
    args = ["-m", "otel_bridge.cli", "serve", "--check-config", "--config", str(config)]
    _ok(_run(goal, args, tmp_path, OTEL_BRIDGE_TOKEN="a-token-of-32-characters-or-more!"))


def test_the_c_code_row_gives_the_file_sink_its_c_walk(tmp_path: Path) -> None:
    goal = next(goal for goal in ROWS if "in C" in goal)
    script = (
        "from otel_bridge import otlp_json\n"
        "from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans\n"
        "scope = ScopeSpans()\n"
        "scope.spans.add(name='n')\n"
        "print(otlp_json._native_spans_json.__module__, otlp_json._spans(scope))\n"
    )
    out = _ok(_run(goal, ["-c", script], tmp_path))
    assert out == 'otel_bridge_speedups._otlp_json [{"traceId":"","spanId":"","name":"n"}]\n'
    config = example_envs.ROOT / "collector-config" / "bridge.yaml"
    args = ["-m", "otel_bridge.cli", "serve", "--check-config", "--config", str(config)]
    _ok(_run(goal, args, tmp_path, OTEL_BRIDGE_TOKEN="a-token-of-32-characters-or-more!"))


def test_the_demo_row_runs_the_demo(tmp_path: Path) -> None:
    goal = next(goal for goal in ROWS if goal.startswith("the demo,"))
    output = tmp_path / "traces.jsonl"
    args = ["-m", "otel_bridge.cli", "demo", "--fake-model", "--output", str(output)]
    out = _ok(_run(goal, [*args, "--spool-dir", str(tmp_path / "spool")], tmp_path))
    assert "OTLP JSON file: appended 4 traces" in out


@pytest.mark.parametrize(
    ("sink", "package", "extras"),
    [
        ("Label Studio", "otel_bridge_labelstudio", []),
        ("UpTrain", "otel_bridge_uptrain", ["uptrain", "rouge_score"]),
        ("ClearML", "otel_bridge_clearml", ["clearml", "textstat", "spacy"]),
        ("SageMaker", "otel_bridge_sagemaker", ["sagemaker"]),
    ],
)
def test_each_sink_row_installs_its_drop_in_and_its_library(
    sink: str, package: str, extras: list[str], tmp_path: Path
) -> None:
    goal = next(goal for goal in ROWS if goal.startswith(sink))
    handler = f"{sink.replace(' ', '')}CallbackHandler"
    probe = f"import {', '.join([package, *extras])}; print({package}.{handler}.__name__)"
    assert _ok(_run(goal, ["-c", probe], tmp_path)).strip() == handler


def test_the_examples_row_has_every_module_every_example_imports(tmp_path: Path) -> None:
    goal = next(goal for goal in ROWS if goal.startswith("everything `examples/`"))
    modules = sorted({module for path in _EXAMPLES.rglob("*.py") for module in _imported(path)})
    probe = (
        "import importlib.util, sys; "
        f"missing = [m for m in {modules!r} if importlib.util.find_spec(m) is None]; "
        "print(missing)"
    )
    assert _ok(_run(goal, ["-c", probe], tmp_path)).strip() == "[]"


def _imported(path: Path) -> set[str]:
    """The top-level modules an example imports, outside the standard library."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found - sys.stdlib_module_names
