"""Fixtures for the UpTrain exporter tests: the local judge, result spans, traced chains.

The judge (`tests.support.fake_openai.FakeJudge`) is the one stand-in: a local
OpenAI-compatible HTTP server in place of the paid LLM API UpTrain grades with. uptrain itself,
the OpenAI client, the LangChain chains and the OTel SDK are all real.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_bridge_uptrain import UpTrainSpanExporter

from otel_bridge import FinishedTrace, OTelCallbackHandler
from tests import chains
from tests.support.factories import shut_down_after
from tests.support.fake_openai import FakeJudge
from tests.support.recording import recording_provider

MakeExporter = Callable[..., UpTrainSpanExporter]

_UPTRAIN_ENV = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "UPTRAIN_ACCESS_TOKEN",
    "UPTRAIN_SERVER_URL",
    "OTEL_BRIDGE_UPTRAIN_API_KEY",
    "OTEL_BRIDGE_UPTRAIN_API_BASE",
    "OTEL_BRIDGE_UPTRAIN_MODEL",
    "OTEL_BRIDGE_UPTRAIN_KEY_TYPE",
    "OTEL_BRIDGE_UPTRAIN_PROJECT_NAME",
    "OTEL_BRIDGE_UPTRAIN_LOG_RESULTS",
    "OTEL_BRIDGE_UPTRAIN_SAMPLE_RATE",
    "OTEL_BRIDGE_UPTRAIN_SCORE_HISTOGRAMS",
    "OTEL_BRIDGE_UPTRAIN_SPOOL_DIR",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees a key or endpoint from the developer's shell."""
    for name in _UPTRAIN_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def judge() -> Iterator[FakeJudge]:
    with FakeJudge(api_key="sk-judge") as server:
        yield server


@pytest.fixture
def results() -> InMemorySpanExporter:
    """Where the evaluation spans land (the tracer provider the user chose)."""
    return InMemorySpanExporter()


@pytest.fixture
def results_provider(results: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider, _ = recording_provider(results)
    yield provider
    provider.shutdown()


@pytest.fixture
def make_exporter(
    judge: FakeJudge, results_provider: TracerProvider, tmp_path: Path
) -> Iterator[MakeExporter]:
    settings: dict[str, Any] = {
        "api_key": "sk-judge",
        "api_base": judge.url,
        "tracer_provider": results_provider,
        "log_results": False,
        "spool_dir": tmp_path / "spool",
        "grace_period": 0.01,
    }
    yield from shut_down_after(lambda **options: UpTrainSpanExporter(**{**settings, **options}))


def wait_for(condition: Callable[[], object], timeout: float = 60.0) -> bool:
    """Poll until `condition()` is truthy: delivery runs on the exporter's worker thread, and its
    first call imports uptrain, which takes seconds on a busy machine."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def run_through(exporter: UpTrainSpanExporter, runnable: Any, value: Any) -> FinishedTrace:
    """Run `runnable` under the real handler on a provider that feeds `exporter`, and return the
    finished trace the exporter receives (for the expected values)."""
    provider, memory = recording_provider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    runnable.invoke(value, config={"callbacks": [OTelCallbackHandler(tracer_provider=provider)]})
    spans: list[ReadableSpan] = list(memory.get_finished_spans())
    return FinishedTrace.from_spans(spans)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed): connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def hosted_judge_down(
    make_exporter: MakeExporter, judge: FakeJudge, **options: Any
) -> UpTrainSpanExporter:
    """An exporter with the hosted judge (key_type="uptrain") whose server, played by `judge`,
    answers 503 until it recovers, and a RAG trace exported to it."""
    exporter = make_exporter(
        key_type="uptrain",
        api_key="up-token",
        uptrain_server_url=judge.url.removesuffix("/v1"),
        shutdown_timeout=0.5,
        **options,
    )
    judge.fail_until_recovered(503)
    run_through(exporter, chains.rag_chain(), chains.QUESTION)
    return exporter
