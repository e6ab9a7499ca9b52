"""Exactly once under partial failure, against the real Label Studio behind a proxy that fails a
chosen share of requests (see flaky_proxy.py): every trace's task lands once, none is lost.

What "an import that fails halfway" can mean here. Label Studio Community imports a bulk request
synchronously and all-or-nothing: `ImportAPI.sync_import` saves through
`BaseTaskSerializerBulk.create`, whose tasks and predictions are created inside one
`transaction.atomic()` (label_studio/tasks/serializers.py), so the server never keeps the first
N tasks of a request. What can fail halfway is therefore (a) a batch of the exporter's, sent as
several import requests of which some fail, and (b) one request whose work was done but whose
answer was lost, or whose upload was cut. Both are below.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from label_studio_sdk import LabelStudio
from otel_bridge_labelstudio import exporter as exporter_module

from otel_bridge.delivery import RetryPolicy
from tests import chains

from .conftest import MakeLabelStudioExporter, tasks_of
from .flaky_proxy import FAILURE_MODES, FlakyProxy
from .test_exporter import run

_TRACES = 36
_FAST_RETRY = RetryPolicy(initial_backoff=0.05, max_backoff=0.2, jitter=0.0)


def _replies_in(tasks: list[Any]) -> Counter[str]:
    return Counter(
        text
        for task in tasks
        for prediction in task.predictions
        for result in prediction.result
        for text in result["value"]["text"]
    )


_IMPORTS = ("POST", r"/api/projects/\d+/import$")
_LOOKUPS = ("GET", r"/api/tasks/?$")  # what is already there, before each import


@pytest.mark.parametrize(
    "only", [[_IMPORTS], [_IMPORTS, _LOOKUPS]], ids=["imports", "imports-and-lookups"]
)
def test_a_batch_whose_requests_fail_in_part_lands_each_task_exactly_once(
    make_exporter: MakeLabelStudioExporter,
    reviewer: LabelStudio,
    label_studio_url: str,
    monkeypatch: pytest.MonkeyPatch,
    only: list[tuple[str, str]],
) -> None:
    # Four tasks per import request: the batch of 36 traces goes as nine requests.
    monkeypatch.setattr(exporter_module, "_TASKS_PER_IMPORT", 4)
    with FlakyProxy(label_studio_url, only=only, fail_share=0.4) as proxy:
        exporter = make_exporter(url=proxy.url, grace_period=30.0, retry=_FAST_RETRY)
        project_id = exporter.project().id  # before any failure: the project is not in question
        for i in range(_TRACES):  # every trace waits for the flush: one batch
            run(exporter, chains.chat_model(f"reply {i}"), chains.chat_messages())
        assert exporter.force_flush(60_000), "the exporter did not drain its spool"
        counts = exporter.spool.counts()

    assert set(proxy.failures) == set(FAILURE_MODES), proxy.failures
    assert (counts.outbox, counts.dead_letters) == (0, 0)
    tasks = tasks_of(reviewer, project_id)
    assert _replies_in(tasks) == Counter(f"reply {i}" for i in range(_TRACES))
    assert len(tasks) == len({task.data["otel_span_key"] for task in tasks}) == _TRACES
