"""The LangChain docs' "Label Studio" callbacks page, run as a migrating user would: each code
example of the page as a script in its own process, unchanged but for the import of the handler
(`langchain_community.callbacks.labelstudio_callback` -> `otel_bridge_labelstudio`), with no
flush call, against the real Label Studio 1.23.2 that `scripts/services.sh` starts; what landed
is read back through `/api/tasks` (the SDK's `tasks.list`).

The paid LLM API is the one stand-in: the page's `OpenAI` / `ChatOpenAI` call the local
OpenAI-compatible server of `tests/support/fake_openai.py` (found through OPENAI_API_BASE /
OPENAI_API_KEY, as the page's models from langchain-openai read them). Where the app goes on
after the example, a few lines are added after it (wait for stdin, or sleep to be killed); the
example itself is untouched.

What the original would produce, checked on the drop-in's tasks: the project the example names
(created with the mode's labeling config, or the one given), one task per call with the prompt
under the config's field and the original's `run_id`, one prediction with the generated text and
the model as `model_version`. Improvements checked beside: the task is there while the app still
runs (the original wrote inside the call; the drop-in delivers about half a second after it),
exactly once after the app exits, with the drop-in's `otel_trace_id` / `otel_span_key` beside
`run_id`. Differences from the original: a dialogue's speakers are named system/human/ai, not
after the message classes (SystemMessage, HumanMessage), see docs/migration.md.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from label_studio_sdk import LabelStudio

from tests.support.fake_openai import FakeJudge
from tests.support.waiting import wait_until

from .conftest import projects_titled, tasks_of

REPO_ROOT = Path(__file__).resolve().parents[3]

# The page's import of the handler, and the one line a migrating user changes.
SEED_IMPORT = """from langchain_community.callbacks.labelstudio_callback import (
    LabelStudioCallbackHandler,
)
"""
DROP_IN_IMPORT = "from otel_bridge_labelstudio import LabelStudioCallbackHandler\n"

# The page's examples, verbatim (https://python.langchain.com/docs/integrations/callbacks/labelstudio).
PROMPT_EXAMPLE = """
from langchain_openai import OpenAI

llm = OpenAI(
    temperature=0, callbacks=[LabelStudioCallbackHandler(project_name="My Project")]
)
print(llm.invoke("Tell me a joke"))
"""
CHAT_EXAMPLE = """
from langchain.messages import HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI

chat_llm = ChatOpenAI(
    callbacks=[
        LabelStudioCallbackHandler(
            mode="chat",
            project_name="New Project with Chat",
        )
    ]
)
llm_results = chat_llm.invoke(
    [
        SystemMessage(content="Always use a lot of emojis"),
        HumanMessage(content="Tell me a joke"),
    ]
)
"""
CUSTOM_CONFIG_EXAMPLE = '''
ls = LabelStudioCallbackHandler(
    project_config="""
<View>
<Text name="prompt" value="$prompt"/>
<TextArea name="response" toName="prompt"/>
<TextArea name="user_feedback" toName="prompt"/>
<Rating name="rating" toName="prompt"/>
<Choices name="sentiment" toName="prompt">
    <Choice value="Positive"/>
    <Choice value="Negative"/>
</Choices>
</View>
"""
)
'''

# What the app does after the example (added after it, never inside it).
PRINT_CHAT_REPLY = 'print(llm_results.content.replace("\\n", " "), flush=True)\n'
KEEP_RUNNING = 'import sys\nprint("waiting", flush=True)\nsys.stdin.readline()\n'
WAIT_TO_BE_KILLED = 'import time\ntime.sleep(1.0)\nprint("spooled", flush=True)\ntime.sleep(120)\n'


def drop_in_script(example: str, after: str = "") -> str:
    """The example as a migrating user runs it: only the imports swapped, `after` appended."""
    script = (SEED_IMPORT + example).replace(SEED_IMPORT, DROP_IN_IMPORT)
    assert "langchain_community.callbacks" not in script
    return script + after


@pytest.fixture(scope="module")
def llm_api() -> Iterator[FakeJudge]:
    """The stand-in for the paid OpenAI API."""
    with FakeJudge(api_key="sk-seed-example") as server:
        yield server


@pytest.fixture
def run_app(
    label_studio_url: str, legacy_token: str, llm_api: FakeJudge, tmp_path: Path
) -> Iterator[Any]:
    """Start a script as the app's own process, with the environment the page asks for."""
    started: list[subprocess.Popen[str]] = []

    def run(script: str, **variables: str) -> subprocess.Popen[str]:
        path = tmp_path / f"app_{len(started)}.py"
        path.write_text(script, encoding="utf-8")
        env = {
            **os.environ,
            "LABEL_STUDIO_URL": label_studio_url,
            "LABEL_STUDIO_API_KEY": legacy_token,
            "OPENAI_API_KEY": llm_api.api_key,
            "OPENAI_API_BASE": llm_api.url,
            # Not the user's cache: every app of one test shares this spool directory.
            "OTEL_BRIDGE_LABELSTUDIO_SPOOL_DIR": str(tmp_path / "spool"),
            "PYTHONWARNINGS": "ignore",
            **variables,
        }
        child = subprocess.Popen(
            [sys.executable, str(path)],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(child)
        return child

    yield run
    for child in started:
        if child.poll() is None:
            child.kill()
        child.communicate()


def task_ids(reviewer: LabelStudio, title: str) -> set[int]:
    return {
        task.id
        for project in projects_titled(reviewer, title)
        for task in tasks_of(reviewer, project.id)
    }


def new_tasks(reviewer: LabelStudio, title: str, before: set[int]) -> list[Any]:
    """Tasks of the project(s) titled `title` that were not there before (the page's project
    titles are fixed, so a server that ran this file before may hold older tasks)."""
    return [
        task
        for project in projects_titled(reviewer, title)
        for task in tasks_of(reviewer, project.id)
        if task.id not in before
    ]


def finished(child: subprocess.Popen[str]) -> str:
    """Wait for a normal exit and return what the app printed."""
    out, err = child.communicate(input="\n", timeout=120)
    assert child.returncode == 0, err[-3000:]
    return out


def assert_seed_fields(task: Any, prompt: Any, answer: str, to_name: str) -> None:
    """What the original handler wrote for one call, plus the drop-in's keys."""
    assert task.data["prompt"] == prompt
    assert uuid.UUID(task.data["run_id"])  # the original's field: the LangChain run id
    assert task.data["otel_trace_id"] and task.data["otel_span_key"]  # ours, beside it
    (prediction,) = task.predictions
    (result,) = prediction.result
    assert (result["from_name"], result["to_name"], result["type"]) == (
        "response",
        to_name,
        "textarea",
    )
    assert result["value"]["text"] == [answer]


def test_the_prompt_example_lands_once_in_my_project_while_the_app_runs(
    run_app: Any, reviewer: LabelStudio
) -> None:
    before = task_ids(reviewer, "My Project")
    app = run_app(drop_in_script(PROMPT_EXAMPLE, KEEP_RUNNING))
    assert app.stdout is not None
    answer = app.stdout.readline().strip()
    assert app.stdout.readline().strip() == "waiting", answer
    # The app keeps running, and has called no flush: the task shows up meanwhile.
    wait_until(lambda: new_tasks(reviewer, "My Project", before), timeout=15, what="the task")
    assert app.poll() is None, "the app ended before its task was seen"
    finished(app)
    (task,) = new_tasks(reviewer, "My Project", before)  # once: the exit added no copy
    assert_seed_fields(task, "Tell me a joke", answer, to_name="prompt")
    # The original's model_version: the model the call asked for (OpenAI's default here).
    assert task.predictions[0].model_version == "gpt-3.5-turbo-instruct"
    (project,) = projects_titled(reviewer, "My Project")
    (read,) = project.parsed_label_config["response"]["inputs"]
    assert (read["type"], read["value"]) == ("Text", "prompt")  # the prompt mode's config


def test_the_chat_example_lands_once_in_its_chat_project_while_the_app_runs(
    run_app: Any, reviewer: LabelStudio
) -> None:
    title = "New Project with Chat"
    before = task_ids(reviewer, title)
    app = run_app(drop_in_script(CHAT_EXAMPLE, PRINT_CHAT_REPLY + KEEP_RUNNING))
    assert app.stdout is not None
    reply = app.stdout.readline().strip()
    assert app.stdout.readline().strip() == "waiting", reply
    wait_until(lambda: new_tasks(reviewer, title, before), timeout=15, what="the task")
    assert app.poll() is None, "the app ended before its task was seen"
    finished(app)
    (task,) = new_tasks(reviewer, title, before)
    dialogue = [
        {"role": "system", "content": "Always use a lot of emojis"},
        {"role": "human", "content": "Tell me a joke"},
    ]
    assert_seed_fields(task, dialogue, reply, to_name="dialogue")
    assert task.predictions[0].model_version == "gpt-3.5-turbo"
    (project,) = projects_titled(reviewer, title)
    (read,) = project.parsed_label_config["response"]["inputs"]
    assert (read["type"], read["value"]) == ("Paragraphs", "prompt")  # the chat mode's config


def test_the_custom_config_example_creates_todays_project_with_that_config(
    run_app: Any, reviewer: LabelStudio
) -> None:
    """No project_name: the original's default, "LangChain-%Y-%m-%d", today. Only this test uses
    that title, so a project left by an earlier run of it is removed first."""
    title = datetime.today().strftime("LangChain-%Y-%m-%d")
    for left in projects_titled(reviewer, title):
        reviewer.projects.delete(left.id)
    finished(run_app(drop_in_script(CUSTOM_CONFIG_EXAMPLE)))
    (project,) = projects_titled(reviewer, title)
    config = project.parsed_label_config
    assert {name: config[name]["type"] for name in config} == {
        "response": "TextArea",
        "user_feedback": "TextArea",
        "rating": "Rating",
        "sentiment": "Choices",
    }
    assert tasks_of(reviewer, project.id) == []  # the example makes no call


def test_a_killed_apps_task_goes_to_its_own_project_never_the_next_apps(
    run_app: Any, reviewer: LabelStudio
) -> None:
    """The prompt example (My Project) is SIGKILLed with its trace still in the spool; the chat
    example (another project, the same spool directory) then runs and exits: its project holds
    only its own task and My Project none. When the prompt example runs again, My Project gets
    the left-over task and the new one, once each."""
    chat_title = "New Project with Chat"
    mine, chat = task_ids(reviewer, "My Project"), task_ids(reviewer, chat_title)
    killed = run_app(
        drop_in_script(PROMPT_EXAMPLE, WAIT_TO_BE_KILLED),
        OTEL_BRIDGE_LABELSTUDIO_GRACE_PERIOD="250",  # hold the trace in the spool
    )
    try:
        assert killed.stdout is not None and killed.stderr is not None
        answer = killed.stdout.readline().strip()
        assert answer, killed.stderr.read()
        assert killed.stdout.readline().strip() == "spooled"
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
    assert new_tasks(reviewer, "My Project", mine) == []

    other = run_app(drop_in_script(CHAT_EXAMPLE))
    _, err = other.communicate(timeout=120)
    assert other.returncode == 0, err[-3000:]
    (chat_task,) = new_tasks(reviewer, chat_title, chat)
    assert new_tasks(reviewer, "My Project", mine) == [], "the chat app delivered My Project's task"
    assert "My Project" in err and "not this exporter's" in err, err[-3000:]

    again = run_app(drop_in_script(PROMPT_EXAMPLE))
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err[-3000:]
    tasks = new_tasks(reviewer, "My Project", mine)
    assert len(tasks) == 2
    assert len({task.data["otel_trace_id"] for task in tasks}) == 2
    assert chat_task.data["otel_trace_id"] not in {task.data["otel_trace_id"] for task in tasks}
    assert len(new_tasks(reviewer, chat_title, chat)) == 1
