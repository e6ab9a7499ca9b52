"""Every example in examples/ runs as a user runs it: in a fresh environment made by the
`# Install:` command its first line gives (tests/support/example_envs.py), as
`python examples/<name>.py` in its own process, and prints what its docstring promises; with
only the core installed, an example that needs more says in one line what to install.

The chat models are the in-process `otel_bridge.testing.FakeChatModel` (the stand-in for a paid
LLM API) and, for the UpTrain example, the judge is the local OpenAI-compatible server of
`tests/support/fake_openai.py`. Label Studio and moto are the real servers `make test` starts
(scripts/services.sh); ClearML runs in its real offline mode.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_demo import clean_environment
from tests.support import example_envs
from tests.support.fake_openai import FakeJudge

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
_TIMEOUT_S = 300


def required_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(
            f"{name} is not set: this example needs the services `make test` starts; run it as "
            "`scripts/services.sh run -- .venv/bin/python -m pytest tests/integration/test_examples.py`",
            pytrace=False,
        )
    return value


@pytest.fixture(scope="module", autouse=True)
def _remove_the_example_environments() -> Iterator[None]:
    yield
    example_envs.remove_all()


def example_python(name: str) -> str:
    """The Python of a fresh environment made by the example's own install command."""
    return str(example_envs.python_for(example_envs.install_command(EXAMPLES / name)))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A clean environment: no keys, home, caches and spools inside tmp_path."""
    return clean_environment(tmp_path, OTEL_BRIDGE_SPOOL_DIR=str(tmp_path / "spool"))


def start_example(
    name: str, env: dict[str, str], cwd: Path, python: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`python examples/<name>`, by default in the environment of its own install line."""
    return subprocess.run(
        [python or example_python(name), str(EXAMPLES / name)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
        check=False,
    )


def run_example(name: str, env: dict[str, str], cwd: Path) -> str:
    result = start_example(name, env, cwd)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_quickstart_prints_the_answer_and_linked_spans(env: dict[str, str], tmp_path: Path) -> None:
    out = run_example("quickstart.py", env, tmp_path)
    answer, _, console_spans = out.partition("\n")
    assert answer == "Spans, with parent links, attributes and metrics."
    spans = [json.loads(block) for block in re.split(r"(?m)^(?=\{$)", console_spans) if block]
    by_type = {span["attributes"]["langchain.run.type"]: span for span in spans}
    assert set(by_type) == {"chain", "prompt", "chat_model"}
    root = by_type["chain"]
    for child in (by_type["prompt"], by_type["chat_model"]):
        assert child["parent_id"] == root["context"]["span_id"]
        assert child["context"]["trace_id"] == root["context"]["trace_id"]
    assert by_type["chat_model"]["attributes"]["gen_ai.request.model"] == "fake-chat-model"


def test_instrument_everything_traces_without_callbacks(
    env: dict[str, str], tmp_path: Path
) -> None:
    out = run_example("instrument_everything.py", env, tmp_path)
    lines = out.splitlines()
    assert lines[0] == "['Bonjour', 'Merci']"
    assert lines[1] == "Bonjour (after uninstrument: not traced)"
    # Exactly the two batched calls were traced, each a whole trace of its own.
    assert [line for line in lines if line.startswith("trace ")] == [
        line for line in lines if re.fullmatch(r"trace [0-9a-f]{32}", line)
    ]
    assert len([line for line in lines if line.startswith("trace ")]) == 2
    assert lines[2:].count("  RunnableSequence  [chain]") == 2
    assert lines[2:].count("    chat fake-chat-model  [chat_model]") == 2


def test_fastapi_server_spans_parent_the_langchain_spans(
    env: dict[str, str], tmp_path: Path
) -> None:
    out = run_example("fastapi_service.py", env, tmp_path)
    lines = out.splitlines()
    assert lines[:2] == [
        "{'answer': 'You asked: What is a span?'}",
        "{'answer': 'You asked: What is a trace?'}",
    ]
    servers = [i for i, line in enumerate(lines) if "server     GET /ask" in line]
    assert len(servers) == 2
    for index in servers:
        assert lines[index - 1].startswith("trace ")  # the server span is the trace's root
        chain = lines[index + 1]
        assert "chain      RunnableSequence" in chain
        # One level deeper than the server span in the tree drawing.
        assert chain.index("chain") > lines[index].index("server")
        assert any("chat_model" in line for line in lines[index + 2 : index + 4])


def test_rag_to_labelstudio_creates_one_review_task_per_llm_call(
    env: dict[str, str], tmp_path: Path
) -> None:
    from label_studio_sdk import LabelStudio

    url = required_env("LABEL_STUDIO_URL")
    token = required_env("LABEL_STUDIO_LEGACY_TOKEN")
    project = f"examples-rag-{uuid.uuid4().hex[:8]}"
    env.update(
        LABEL_STUDIO_URL=url,
        LABEL_STUDIO_API_KEY=token,
        OTEL_BRIDGE_LABELSTUDIO_PROJECT_NAME=project,
    )
    out = run_example("rag_to_labelstudio.py", env, tmp_path)
    assert "When do I get my refund? -> Within 14 days of receiving the returned item." in out
    assert f"2 review tasks in project {project!r}" in out

    reviewer = LabelStudio(base_url=url, api_key=token)
    (found,) = [p for p in reviewer.projects.list(title=project) if p.title == project]
    tasks = list(reviewer.tasks.list(project=found.id))
    prompts = sorted(json.dumps(task.data) for task in tasks)
    assert len(tasks) == 2
    assert "When do I get my refund?" in prompts[0] + prompts[1]
    assert "How fast is support?" in prompts[0] + prompts[1]


@pytest.fixture
def judge() -> Iterator[FakeJudge]:
    with FakeJudge(api_key="sk-example-judge") as server:
        yield server


def test_eval_with_uptrain_prints_the_scores_of_the_rag_checks(
    env: dict[str, str], tmp_path: Path, judge: FakeJudge
) -> None:
    env.update(OTEL_BRIDGE_UPTRAIN_API_KEY=judge.api_key, OTEL_BRIDGE_UPTRAIN_API_BASE=judge.url)
    out = run_example("eval_with_uptrain.py", env, tmp_path)
    assert "Question: How tall is the Eiffel Tower?" in out
    for check in ("Context Relevance", "Factual Accuracy", "Response Completeness"):
        assert f"{check} Score: 1.0" in out
    assert {request.check for request in judge.graded()} >= {
        "context_relevance",
        "response_completeness",
    }


def test_eval_with_uptrain_says_which_key_is_missing(env: dict[str, str], tmp_path: Path) -> None:
    result = start_example("eval_with_uptrain.py", env, tmp_path)
    assert result.returncode == 1
    assert "set OPENAI_API_KEY" in result.stderr


def test_clearml_offline_writes_an_importable_session_with_the_tables(
    env: dict[str, str], tmp_path: Path
) -> None:
    out = run_example("clearml_offline.py", env, tmp_path)
    assert "That text has 3 words." in out
    match = re.search(r"offline session: (\S+\.zip)", out)
    assert match is not None, out
    with zipfile.ZipFile(match.group(1)) as session:
        events = [
            event
            for line in session.read("metrics.jsonl").decode().splitlines()
            for event in json.loads(line)
        ]
        assert any(name.startswith("models/") for name in session.namelist())
    tables = {event["metric"] for event in events if event.get("type") == "plot"}
    assert {"Action Records", "Session Analysis"} <= tables
    scalars = {event["metric"] for event in events if event.get("type") == "training_stats_scalar"}
    assert scalars, "no per-model scalars in the offline session"


def test_sagemaker_experiment_logs_metrics_and_artifacts(
    env: dict[str, str], tmp_path: Path
) -> None:
    env["MOTO_ENDPOINT_URL"] = required_env("MOTO_ENDPOINT_URL")
    out = run_example("sagemaker_experiment.py", env, tmp_path)
    assert out.count("Spans in, experiment metrics out.") == 3
    assert re.search(r"metric fake-summarizer/latency_seconds: count=3 ", out)
    assert re.search(r"metric fake-summarizer/output_tokens: count=3 avg=5\.000", out)
    assert "'langchain-records': 's3://otel-bridge-example/" in out


def test_collector_example_delivers_through_the_agent_collector_to_backend_and_serve(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Needs our Collector build (`make collector`, a prerequisite of `make pytest`)."""
    out = run_example("collector/run.py", env, tmp_path)
    assert "otelcol-bridge version 0.161.0-otel-bridge as agent and as backend" in out
    trace_id = re.search(r"backend: 3 spans of trace ([0-9a-f]{32})", out)
    assert trace_id, out
    assert "bridge (file sink), through the agent Collector -> otel-bridge serve" in out
    assert f"trace {trace_id.group(1)}  3 spans" in out
    assert "chat_model FakeChatModel fake-chat-model" in out


_EXAMPLES = sorted(str(path.relative_to(EXAMPLES)) for path in EXAMPLES.rglob("*.py"))
_CORE = "pip install -e ."


@pytest.mark.parametrize("name", _EXAMPLES)
def test_every_example_starts_with_its_install_and_run_commands(name: str) -> None:
    first, second = (EXAMPLES / name).read_text(encoding="utf-8").splitlines()[:2]
    assert first.startswith("# Install: pip install -e ")
    assert second.startswith("# Run:") and f"python examples/{name}" in second


@pytest.mark.parametrize(
    "name",
    [n for n in _EXAMPLES if example_envs.install_command(EXAMPLES / n) != _CORE],
)
def test_with_only_the_core_an_example_names_what_to_install_in_one_line(
    name: str, env: dict[str, str], tmp_path: Path
) -> None:
    result = start_example(name, env, tmp_path, str(example_envs.python_for(_CORE)))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.endswith(f"is not installed: {example_envs.install_command(EXAMPLES / name)}")
