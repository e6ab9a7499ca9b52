"""A few runs and one `flush_tracker` in a process of its own, under ClearML's default settings
(reporting through a subprocess on Linux), for exporters/clearml/tests/test_flush_tracker.py.

python -m exporters.clearml.tests.flush_child MODE SPOOL_DIR

MODE `handler_task`: the handler creates the task, as in the seed's example; `app_task`: the app
started its own task first with ClearML's defaults, and the handler logs into it. Prints one JSON
line: how many times flush_tracker waited on ClearML's cross-process event (the path whose only
wake-up is the reporting subprocess's fixed period), whether the task reports through a
subprocess, and the task's offline folder. Then finishes (closes the task) so the session zip is
complete.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from clearml import Task
from clearml.utilities.process import mp
from langchain_core.messages import BaseMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from otel_bridge_clearml import ClearMLCallbackHandler

from otel_bridge.testing import FakeChatModel

RUNS = 3


def _answer(messages: list[BaseMessage]) -> str:
    return f"Answer to: {messages[-1].content}"


def main(mode: str, spool_dir: str) -> None:
    app_task = None
    if mode == "app_task":
        Task.set_offline(True)
        # ClearML's defaults but its repository detection, which runs git in the checkout the
        # test runs from and held the task's close for minutes in a fresh clone with its caches.
        app_task = Task.init(
            project_name="app",
            task_name="app's own task",
            auto_connect_frameworks={"detect_repository": False},
        )
    handler = ClearMLCallbackHandler(exporter_options={"spool_dir": spool_dir, "grace_period": 0.0})
    prompt = ChatPromptTemplate.from_messages([("human", "{question}")])
    chain = (
        prompt | FakeChatModel(respond=_answer, model_name="fake-echo-model") | StrOutputParser()
    )
    for n in range(RUNS):
        chain.invoke({"question": f"question {n}"}, {"callbacks": [handler]})

    waits: list[Any] = []
    real_wait = mp.SafeEvent.wait

    def counting_wait(self: mp.SafeEvent, timeout: float | None = None) -> bool:
        waits.append(timeout)
        return real_wait(self, timeout)

    mp.SafeEvent.wait = counting_wait  # type: ignore[method-assign]
    try:
        handler.flush_tracker(name="few runs", langchain_asset=chain)
    finally:
        mp.SafeEvent.wait = real_wait  # type: ignore[method-assign]
    task = handler.task
    print(
        json.dumps(
            {
                "subprocess_waits": len(waits),
                "reports_through_subprocess": bool(task.report_subprocess_enabled),
                "folder": task.get_offline_mode_folder() and str(task.get_offline_mode_folder()),
            }
        ),
        flush=True,
    )
    handler.flush_tracker(finish=True)
    if app_task is not None:
        app_task.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
