"""`LabelStudioSpanExporter` after os.fork(), against the real Label Studio server: the child
drops the SDK client (its httpx pool shares keep-alive sockets with the parent) and the project
lock, and its next delivery goes through a client of its own."""

from __future__ import annotations

import os

import pytest
from label_studio_sdk import LabelStudio
from otel_bridge_labelstudio import LabelStudioSpanExporter

from tests.contract import ForkContract
from tests.support.forking import held_by_another_thread, run_in_child

from .conftest import MakeLabelStudioExporter, tasks_of
from .test_exporter import chat_trace, flushed

_DEADLINE = 60.0


class TestLabelStudioFork(ForkContract):
    @pytest.fixture
    def fork_exporter(
        self, make_exporter: MakeLabelStudioExporter, reviewer: LabelStudio
    ) -> LabelStudioSpanExporter:
        self.reviewer = reviewer
        return make_exporter(mode="chat")

    def deliver_one(self, exporter: LabelStudioSpanExporter) -> None:
        chat_trace(exporter)
        flushed(exporter)

    def delivered(self, exporter: LabelStudioSpanExporter) -> int:
        return len(tasks_of(self.reviewer, exporter.project().id))

    def renewed(self, exporter: LabelStudioSpanExporter) -> tuple[object, ...]:
        client = exporter._transport._client
        assert client is not None
        return (client,)

    def locks(self, exporter: LabelStudioSpanExporter) -> tuple[object, ...]:
        return (exporter._target_lock,)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork()")
def test_parent_and_forked_child_both_deliver_through_their_own_clients(
    make_exporter: MakeLabelStudioExporter, reviewer: LabelStudio
) -> None:
    exporter = make_exporter(mode="chat")
    chat_trace(exporter)
    flushed(exporter)  # the parent's pool now holds a keep-alive connection
    parent_client = exporter._transport._client
    assert parent_client is not None

    def child() -> int:
        if exporter._transport._client is not None:
            return 3
        chat_trace(exporter)
        if not exporter.force_flush(int(_DEADLINE * 1000)):
            return 4
        if exporter._transport._client in (None, parent_client):
            return 5
        exporter.shutdown()
        return 0

    # Forking while another thread holds the project lock: the child must not wait for it.
    with held_by_another_thread(exporter._target_lock, deadline_s=_DEADLINE):
        _, code = run_in_child(child, _DEADLINE)

    assert code == 0
    chat_trace(exporter)
    flushed(exporter)
    assert exporter._transport._client is parent_client
    assert len(tasks_of(reviewer, exporter.project().id)) == 3
