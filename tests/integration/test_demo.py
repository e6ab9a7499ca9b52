"""`otel-bridge demo` on a fresh machine: no accounts, no keys, run as a user runs it.

The demo's chat model is the in-process `otel_bridge.testing.FakeChatModel` (the stand-in for a
paid LLM API); everything else (LangChain, LangGraph, the handler, the SDK pipeline, the file
sink, ClearML's offline mode) is real. The written file is decoded with the OTLP codec.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from otel_bridge_uptrain import rag_turns

from otel_bridge import semconv
from otel_bridge.demo.app import AGENT_QUESTION, RAG_QUESTION, STREAM_QUESTION
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.otlp import read_traces
from otel_bridge.trace_tree import SpanRecord

# Anything that would switch the demo to a real provider, a real sink or an OTLP endpoint.
_CONFIGURING_PREFIXES = (
    "OPENAI_",
    "ANTHROPIC_",
    "LABEL_STUDIO_",
    "UPTRAIN_",
    "CLEARML_",
    "TRAINS_",  # ClearML sets its legacy names too (TRAINS_PROC_MASTER_ID)
    "AWS_",
    "OTEL_",
    "MOTO_",
)
_TIMEOUT_S = 300


def clean_environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The current environment without keys or endpoints, with home and caches in tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_CONFIGURING_PREFIXES)}
    env.update(
        HOME=str(tmp_path / "home"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        NO_COLOR="1",
        COLUMNS="200",
        **extra,
    )
    return env


def run_cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "otel_bridge.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
        check=False,
    )


def by_root_name(traces: list[FinishedTrace]) -> dict[str, FinishedTrace]:
    return {str(t.root.attributes.get(semconv.RUN_NAME)): t for t in traces}


def spans_named(trace: FinishedTrace, run_name: str) -> list[SpanRecord]:
    return [s for s in trace.spans if s.attributes.get(semconv.RUN_NAME) == run_name]


@pytest.fixture(scope="module")
def demo_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    tmp_path = tmp_path_factory.mktemp("demo")
    result = run_cli(["demo"], cwd=tmp_path, env=clean_environment(tmp_path))
    assert result.returncode == 0, f"demo failed:\n{result.stdout}\n{result.stderr}"
    return result, tmp_path / "otel-bridge-traces.jsonl"


def test_demo_prints_the_four_requests_and_their_outcomes(
    demo_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    out = demo_run[0].stdout
    assert "local fake chat model" in out
    for question in (RAG_QUESTION, STREAM_QUESTION, AGENT_QUESTION):
        assert question in out
    assert "The batch holds 12 x 7 + 5 = 89 items." in out
    assert "failed as planned: PublishError: newsletter service unreachable" in out


def test_demo_prints_one_tree_per_trace_with_types_tokens_and_status(
    demo_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    out = demo_run[0].stdout
    traces = read_traces(demo_run[1])
    for trace in traces:
        assert f"trace {trace.trace_id:032x}  {len(trace.spans)} spans" in out
    lines = out.splitlines()
    retriever = next(line for line in lines if "VectorStoreRetriever" in line)
    assert "retriever" in retriever and "2 documents" in retriever and "✓" in retriever
    model = next(line for line in lines if "chat_model" in line and "fake-chat-model" in line)
    assert "tokens" in model
    assert any("tool" in line and "multiply" in line for line in lines)
    failed = next(line for line in lines if "publish_to_newsletter" in line)
    assert "✗ PublishError: newsletter service unreachable" in failed
    # The client span of the stand-in network call is drawn under its model span.
    model_index = lines.index(model)
    assert (
        "client" in lines[model_index + 1] and "POST /v1/chat/completions" in lines[model_index + 1]
    )


def test_demo_prints_the_genai_metrics_and_where_everything_went(
    demo_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    out = demo_run[0].stdout
    traces = read_traces(demo_run[1])
    metrics_row = next(line for line in out.splitlines() if line.startswith("│ chat "))
    cells = [cell.strip() for cell in metrics_row.split("│") if cell.strip()]
    llm_calls = [call for trace in traces for call in trace.llm_calls()]
    assert cells[:4] == ["chat", "fake-chat-model", str(len(llm_calls)), "0"]
    assert cells[-2:] == [
        str(sum(call.input_tokens or 0 for call in llm_calls)),
        str(sum(call.output_tokens or 0 for call in llm_calls)),
    ]
    spans = sum(len(trace.spans) for trace in traces)
    assert f"appended {len(traces)} traces ({spans} spans) to {demo_run[1]}" in out
    assert "otel-bridge tree otel-bridge-traces.jsonl" in out
    assert "OTLP: set OTEL_EXPORTER_OTLP_ENDPOINT" in out
    assert (
        f"Label Studio: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY to send {len(llm_calls)} "
        "review tasks" in out
    )
    assert "UpTrain: set OPENAI_API_KEY" in out
    assert "SageMaker: set OTEL_BRIDGE_SAGEMAKER_EXPERIMENT_NAME" in out
    assert "ClearML: " in out


def test_the_written_file_holds_whole_correctly_linked_traces(
    demo_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    traces = by_root_name(read_traces(demo_run[1]))
    assert set(traces) == {
        "rag_answer",
        "rag_answer_streamed",
        "arithmetic_agent",
        "summarize_and_publish",
    }
    for trace in traces.values():
        assert not trace.partial
        span_ids = {span.span_id for span in trace.spans}
        assert [s for s in trace.spans if s.parent_span_id is None] == [trace.root]
        assert all(s.parent_span_id in span_ids for s in trace.spans if s is not trace.root)
        assert trace.root.resource.get("service.name") == "otel-bridge-demo"

    rag = traces["rag_answer"]
    (turn,) = rag_turns(rag)
    assert turn.question == RAG_QUESTION
    assert len(turn.documents) == 2
    assert turn.answer.startswith("Each LLM call of a finished trace becomes")
    (model,) = [s for s in rag.spans if s.attributes.get(semconv.RUN_TYPE) == "chat_model"]
    (client,) = rag.children(model)
    assert client.kind == "CLIENT"

    streamed = traces["rag_answer_streamed"]
    (streamed_model,) = [
        s for s in streamed.spans if s.attributes.get(semconv.RUN_TYPE) == "chat_model"
    ]
    assert any(event.name == semconv.EVENT_FIRST_TOKEN for event in streamed_model.events)

    agent = traces["arithmetic_agent"]
    calls = [(call.name, call.arguments, call.result) for call in agent.tool_calls()]
    assert calls == [("multiply", {"a": 12, "b": 7}, "84"), ("add", {"a": 84, "b": 5}, "89")]
    assert len(agent.llm_calls()) == 3
    # Each tool runs under the LangGraph "tools" node, which runs under the agent graph.
    for tool_span in spans_named(agent, "multiply") + spans_named(agent, "add"):
        parent = agent.parent(tool_span)
        assert parent is not None and parent.attributes.get(semconv.RUN_NAME) == "tools"

    failing = traces["summarize_and_publish"]
    assert failing.root.status_code == "ERROR"
    (step,) = spans_named(failing, "publish_to_newsletter")
    assert step.status_code == "ERROR"
    assert step.attributes.get(semconv.ERROR_TYPE) == "PublishError"
    assert {error.span_name for error in failing.errors()} >= {step.name}


def test_tree_reads_the_demo_file_back(
    demo_run: tuple[subprocess.CompletedProcess[str], Path], tmp_path: Path
) -> None:
    traces = read_traces(demo_run[1])
    result = run_cli(["tree", str(demo_run[1])], cwd=tmp_path, env=clean_environment(tmp_path))
    assert result.returncode == 0, result.stderr
    for trace in traces:
        assert f"trace {trace.trace_id:032x}" in result.stdout
    assert "publish_to_newsletter" in result.stdout

    failing = next(t for t in traces if t.root.status_code == "ERROR")
    errors_only = run_cli(
        ["tree", "--errors", str(demo_run[1])], cwd=tmp_path, env=clean_environment(tmp_path)
    )
    assert errors_only.returncode == 0
    assert errors_only.stdout.count("trace ") == 1
    assert f"trace {failing.trace_id:032x}" in errors_only.stdout


def test_tree_names_the_bad_line_of_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"resourceSpans": []}\nnot json\n', encoding="utf-8")
    result = run_cli(["tree", str(broken)], cwd=tmp_path, env=clean_environment(tmp_path))
    assert result.returncode == 1
    assert f"{broken}: line 2: invalid JSON" in result.stderr


def test_make_demo_installs_only_what_the_demo_runs(tmp_path: Path) -> None:
    """`make demo` on its own environment: the core with its `demo` extra and the ClearML sink
    (the one that runs with no account), not the 2.1 GB of every sink and the test tools."""
    venv = tmp_path / "venv"
    output = tmp_path / "traces.jsonl"
    args = f"--output {output} --spool-dir {tmp_path / 'spool'}"
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        ["make", "--no-print-directory", "demo", f"DEMO_VENV={venv}", f"DEMO_ARGS={args}"],
        cwd=root,
        # uv's own cache stays where `make install` filled it (clean_environment moves HOME).
        env=clean_environment(tmp_path, UV_CACHE_DIR=_uv_cache_dir()),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "ClearML: logged 4 traces" in result.stdout
    for sink in ("labelstudio", "uptrain", "sagemaker"):
        assert f"pip install otel-bridge-{sink} to" in result.stdout
    assert len(read_traces(output)) == 4
    python = venv / "bin" / "python"
    probe = "import importlib.util as u; print([m for m in ('uptrain', 'sagemaker', 'pytest') if u.find_spec(m)])"
    found = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"
    size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file() and not f.is_symlink())
    assert size < 400 * 1024 * 1024, f"{size / 1024**2:.0f} MiB"


def _uv_cache_dir() -> str:
    uv = Path(sys.executable).with_name("uv")
    found = subprocess.run([str(uv), "cache", "dir"], capture_output=True, text=True, check=True)
    return found.stdout.strip()
