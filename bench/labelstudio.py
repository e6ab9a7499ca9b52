"""Label Studio sink: latency each LLM call gains, seen by the app, and tasks per second, for
otel-bridge's LabelStudioCallbackHandler and langchain_community's, on the same chain in one run.

Needs the real server: `scripts/services.sh run -- .venv/bin/python bench/labelstudio.py [CALLS]`.
The chain is PromptTemplate | FakeLLM | StrOutputParser (the fake model stands in for a paid API;
a plain LLM because the community handler's prompt mode rejects chat models).
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from importlib.metadata import version

from label_studio_sdk import LabelStudio
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import PromptTemplate
from langchain_core.runnables import Runnable
from opentelemetry.sdk.trace import TracerProvider
from otel_bridge_labelstudio import LabelStudioCallbackHandler

from otel_bridge.testing import FakeLLM

DEFAULT_CALLS = 100


def chain() -> Runnable:
    prompt = PromptTemplate.from_template("Write one line about {topic}.")
    return prompt | FakeLLM(responses=["A line about the topic."]) | StrOutputParser()


def call_latencies(
    runnable: Runnable, calls: int, callbacks: list[BaseCallbackHandler]
) -> list[float]:
    """Seconds each call took as the app saw it."""
    latencies = []
    for number in range(calls):
        started = time.perf_counter()
        runnable.invoke({"topic": f"topic {number}"}, {"callbacks": callbacks})
        latencies.append(time.perf_counter() - started)
    return latencies


def task_count(client: LabelStudio, project_id: int) -> int:
    page = client.tasks.list(project=project_id, page=1, page_size=1, fields="task_only")
    return int(getattr(page.response, "total", 0) or 0)


def describe(name: str, latencies: list[float], baseline: list[float] | None) -> str:
    ms = sorted(x * 1000 for x in latencies)
    median, p95, mean = statistics.median(ms), ms[int(0.95 * (len(ms) - 1))], statistics.fmean(ms)
    line = f"{name:<46} {median:9.2f} {p95:9.2f} {mean:9.2f}"
    if baseline is not None:
        added = mean - statistics.fmean(x * 1000 for x in baseline)
        line += f" {added:+11.2f}"
    return line


def ours(url: str, token: str, calls: int, spool_dir: str) -> tuple[list[float], float, int, int]:
    provider = TracerProvider()
    handler = LabelStudioCallbackHandler(
        api_key=token,
        url=url,
        project_name=f"bench-otel-bridge-{uuid.uuid4().hex[:8]}",
        mode="prompt",
        tracer_provider=provider,
        exporter_options={"spool_dir": spool_dir},
    )
    started = time.perf_counter()
    latencies = call_latencies(chain(), calls, [handler])
    # Tasks are in Label Studio once the span batch and the spool are flushed.
    if not (provider.force_flush(120_000) and handler.exporter.force_flush(120_000)):
        raise RuntimeError("otel-bridge did not deliver within 120 s")
    elapsed = time.perf_counter() - started
    project_id = handler.exporter.project().id
    provider.shutdown()
    return latencies, elapsed, project_id, calls


def community(url: str, token: str, calls: int) -> tuple[list[float], float, int, int] | str:
    """The community handler, or why it cannot run here."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # langchain-community's sunset notice
            from langchain_community.callbacks.labelstudio_callback import (
                LabelStudioCallbackHandler as CommunityHandler,
            )

            handler = CommunityHandler(
                api_key=token,
                url=url,
                project_name=f"bench-community-{uuid.uuid4().hex[:8]}",
                mode="prompt",
            )
    except Exception as error:
        return f"cannot run: {type(error).__name__}: {error}"
    started = time.perf_counter()
    latencies = call_latencies(chain(), calls, [handler])
    elapsed = time.perf_counter() - started  # it creates each task inside the call
    return latencies, elapsed, int(handler.project_id), calls


def main(argv: list[str]) -> int:
    calls = int(argv[1]) if len(argv) > 1 else DEFAULT_CALLS
    url, token = os.environ.get("LABEL_STUDIO_URL"), os.environ.get("LABEL_STUDIO_LEGACY_TOKEN")
    if not url or not token:
        print(
            "LABEL_STUDIO_URL / LABEL_STUDIO_LEGACY_TOKEN are not set: run this under "
            "`scripts/services.sh run -- .venv/bin/python bench/labelstudio.py`",
            file=sys.stderr,
        )
        return 2
    client = LabelStudio(base_url=url, api_key=token)
    load = os.getloadavg()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}, Python {platform.python_version()}, "
        f"label-studio-sdk {version('label-studio-sdk')}, langchain-community "
        f"{version('langchain-community')}, server {url}"
    )
    print(f"chain: PromptTemplate | FakeLLM | StrOutputParser, {calls} calls each, prompt mode\n")

    runnable = chain()
    call_latencies(runnable, 10, [])  # warm-up: imports, pydantic caches
    baseline = call_latencies(runnable, calls, [])
    with tempfile.TemporaryDirectory() as spool_dir:
        mine = ours(url, token, calls, spool_dir)
    theirs = community(url, token, calls)

    print(
        f"{'ms per call seen by the app':<46} {'median':>9} {'p95':>9} {'mean':>9} {'added mean':>11}"
    )
    print(describe("no handler (baseline)", baseline, None))
    print(describe("otel-bridge LabelStudioCallbackHandler", mine[0], baseline))
    if isinstance(theirs, str):
        print(f"{'langchain_community LabelStudioCallbackHandler':<46} {theirs}")
    else:
        print(describe("langchain_community LabelStudioCallbackHandler", theirs[0], baseline))
    print()
    results: list[tuple[str, tuple[list[float], float, int, int]]] = [("otel-bridge", mine)]
    if not isinstance(theirs, str):
        results.append(("langchain_community", theirs))
    for name, (_, elapsed, project_id, expected) in results:
        found = task_count(client, project_id)
        how = "calls + flush" if name == "otel-bridge" else "calls (tasks created inside each call)"
        print(
            f"tasks/s {name:<22} {found / elapsed:8.1f}  ({found}/{expected} tasks in project "
            f"{project_id}, {elapsed:.2f} s from first call to all tasks stored: {how})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
