"""`make ui` as a user runs it: Arize Phoenix from its own environment, the demo's traces sent to
it over OTLP, then a real headless Chromium (Debian's package, driven by Playwright; `make
browser` installs it) opens the UI the way a user clicks through it. What the page shows is
compared with the OTLP JSON file the same run wrote: every span of the RAG trace at its depth
in the tree with its kind, and the chat model's input and output in its panes. Ctrl-C stops
Phoenix. The chat model is the demo's in-process fake (the stand-in for a paid LLM API).

Set TRACE_UI_SCREENSHOT=path to keep the screenshot (the README's is made that way).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from otel_bridge.demo.app import RAG_QUESTION
from tests.integration.test_demo import _uv_cache_dir, clean_environment
from tests.support.collector import free_port
from tests.support.processes import end_process_group

_ROOT = Path(__file__).resolve().parents[2]
_CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
_START_S = 900  # a fresh clone installs the demo environment first, then Phoenix migrates
_PAGE_TIMEOUT_MS = 60_000


@dataclass
class RunningUI:
    process: subprocess.Popen[str]
    port: int
    directory: Path
    url: str = ""
    lines: list[str] = field(default_factory=list)

    def output(self) -> str:
        return "".join(self.lines)


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningUI]:
    if not Path(_CHROMIUM).exists():
        pytest.fail(f"{_CHROMIUM} does not exist: install it with `make browser`", pytrace=False)
    scratch = tmp_path_factory.mktemp("ui")
    port = free_port()
    process = subprocess.Popen(
        ["make", "--no-print-directory", "ui", f"UI_PORT={port}", f"UI_DIR={scratch / 'phoenix'}"],
        cwd=_ROOT,
        env=clean_environment(scratch, UV_CACHE_DIR=_uv_cache_dir()),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Its own process group, as a terminal's foreground job: Ctrl-C goes to all of it.
        start_new_session=True,
    )
    running = RunningUI(process, port, scratch / "phoenix")
    opened = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            running.lines.append(line)
            if line.startswith("ui: open "):
                running.url = line.split()[2]
                opened.set()
        opened.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        opened.wait(_START_S)
        if not running.url:
            pytest.fail(f"`make ui` printed no URL:\n{running.output()}", pytrace=False)
        yield running
    finally:
        if process.poll() is None:
            end_process_group(process, signal.SIGINT, 60)
        reader.join(10)


def test_make_ui_shows_the_rag_trace_nested_with_kinds_and_the_models_input_and_output(
    ui: RunningUI, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    trace = _rag_trace(ui.directory / "demo-traces.jsonl")
    expected_tree = [(span["name"], depth, _kind(span)) for span, depth in _walk(trace)]
    model = next(span for span in trace if _attributes(span).get("gen_ai.operation.name") == "chat")
    answer = _text_of(_attributes(model)["gen_ai.output.messages"], "assistant")
    assert RAG_QUESTION in _attributes(model)["gen_ai.input.messages"]

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(_PAGE_TIMEOUT_MS)
            # The project's trace list, as printed; the user clicks the RAG trace's root.
            page.goto(ui.url)
            page.get_by_text("rag_answer", exact=True).first.click()
            page.locator(".span-node-wrap").nth(len(expected_tree) - 1).wait_for()
            shown_tree = page.eval_on_selector_all(
                ".span-node-wrap",
                """nodes => nodes.map(node => [
                    node.querySelector('.span-node__heading').innerText.trim(),
                    Number(node.style.getPropertyValue('--trace-tree-nesting-level')),
                    node.querySelector('.span-node__icon [title]').getAttribute('title'),
                ])""",
            )
            assert [tuple(node) for node in shown_tree] == expected_tree
            assert {"chain", "retriever", "prompt", "llm"} <= {kind for *_, kind in shown_tree}

            # The chat model's span: its kind in the header, the question and the answer in the
            # Input and Output panes.
            page.locator(".span-node-wrap", has_text=model["name"]).click()
            header = page.locator(".span-header__identity")
            header.get_by_text(model["name"], exact=True).wait_for()
            assert header.locator(".token__text").inner_text() == "llm"
            page.get_by_text(RAG_QUESTION).first.wait_for()
            page.get_by_text(answer).first.wait_for()
            screenshot = tmp_path / "trace-ui.png"
            page.screenshot(path=str(screenshot))
            if keep := os.environ.get("TRACE_UI_SCREENSHOT"):
                shutil.copyfile(screenshot, keep)
        finally:
            browser.close()


def test_ctrl_c_stops_phoenix_and_frees_its_port(ui: RunningUI) -> None:
    os.killpg(ui.process.pid, signal.SIGINT)
    try:
        ui.process.wait(60)
    except subprocess.TimeoutExpired:
        # Seen in fresh-clone runs: say what `make ui` printed and where its threads were
        # (SIGUSR1 makes scripts/trace_ui.py print its stacks).
        os.killpg(ui.process.pid, signal.SIGUSR1)
        time.sleep(2)
        pytest.fail(f"make ui still running 60 s after Ctrl-C; it printed:\n{ui.output()}")
    deadline = time.monotonic() + 10
    while "ui: Phoenix stopped\n" not in ui.lines and time.monotonic() < deadline:
        time.sleep(0.1)
    output = ui.output()
    assert "ui: Phoenix stopped" in output, output
    assert "Traceback" not in output, output
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", ui.port)) != 0, "Phoenix still listens"


def _rag_trace(path: Path) -> list[dict[str, Any]]:
    """The spans of the trace whose root is the demo's `rag_answer` chain."""
    spans: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            for resource_spans in json.loads(line)["resourceSpans"]:
                for scope_spans in resource_spans["scopeSpans"]:
                    spans += scope_spans["spans"]
    root = next(s for s in spans if s["name"] == "rag_answer" and not s.get("parentSpanId"))
    return [s for s in spans if s["traceId"] == root["traceId"]]


def _walk(trace: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], int]]:
    """Depth first, children by start time: the order a trace tree lists them in."""
    children: dict[str, list[dict[str, Any]]] = {}
    for span in trace:
        children.setdefault(span.get("parentSpanId", ""), []).append(span)

    def visit(span: dict[str, Any], depth: int) -> Iterator[tuple[dict[str, Any], int]]:
        yield span, depth
        for child in sorted(children.get(span["spanId"], []), key=_start):
            yield from visit(child, depth + 1)

    for root in children[""]:
        yield from visit(root, 0)


def _start(span: dict[str, Any]) -> int:
    return int(span["startTimeUnixNano"])


def _attributes(span: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: next(iter(a["value"].values())) for a in span.get("attributes", [])}


def _kind(span: dict[str, Any]) -> str:
    """The kind a trace UI that reads OpenInference shows: ours, or unknown where we set none
    (the HTTP client span under the model call is not ours)."""
    return str(_attributes(span).get("openinference.span.kind", "unknown")).lower()


def _text_of(messages: str, role: str) -> str:
    return "".join(
        part["content"]
        for message in json.loads(messages)
        if message["role"] == role
        for part in message["parts"]
        if part["type"] == "text"
    )
