"""`SageMakerSpanExporter` after os.fork(): `_after_fork_in_child` drops the transport and its
boto3 clients (their urllib3 pools share keep-alive sockets with the parent), and the next
delivery logs into the same run through clients of its own, against the real moto server."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from otel_bridge_sagemaker import SageMakerSpanExporter

from otel_bridge.handler import OTelCallbackHandler
from tests.chains import CHAT_ANSWER, chat_model
from tests.contract import ForkContract

from .aws import Aws

pytestmark = pytest.mark.moto


def _deliver_one_chat(exporter: SageMakerSpanExporter) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    handler = OTelCallbackHandler(tracer_provider=provider)
    assert chat_model().invoke("Say hello in French.", {"callbacks": [handler]}).content
    assert exporter.force_flush(30_000)


def _clients(exporter: SageMakerSpanExporter) -> tuple[Any, ...]:
    transport = exporter._transport
    assert transport is not None
    return transport, transport._sagemaker, transport._metrics, transport._s3


class TestSageMakerFork(ForkContract):
    """Into the user's run: the run keeps its own client, ours are built anew from its boto3
    session, and the child writes files of its own (a new writer id)."""

    @pytest.fixture
    def fork_exporter(
        self, aws: Aws, sagemaker_run: Any, make_exporter: Callable[..., SageMakerSpanExporter]
    ) -> SageMakerSpanExporter:
        self.aws, self.run = aws, sagemaker_run
        return make_exporter(run=sagemaker_run)

    def deliver_one(self, exporter: SageMakerSpanExporter) -> None:
        _deliver_one_chat(exporter)

    def delivered(self, exporter: SageMakerSpanExporter) -> int:
        records = self.aws.records(exporter.trial_component_name)
        traces = Counter(r["record"] for r in records)["trace"]
        generations = [g for r in records if r["record"] == "llm_end" for g in r["generations"]]
        assert generations.count(CHAT_ANSWER) == traces
        return traces

    def renewed(self, exporter: SageMakerSpanExporter) -> tuple[object, ...]:
        return (*_clients(exporter), exporter._writer_id)

    def locks(self, exporter: SageMakerSpanExporter) -> tuple[object, ...]:
        return (exporter._connect_lock,)

    def check_after(self, exporter: SageMakerSpanExporter) -> None:
        user_client = self.run._trial_component.sagemaker_session.sagemaker_client
        assert user_client not in _clients(exporter)


def test_after_fork_a_run_given_by_names_is_reached_through_new_clients(
    bucket: str, experiment_name: str, make_exporter: Callable[..., SageMakerSpanExporter]
) -> None:
    exporter = make_exporter(
        experiment_name=experiment_name, run_name="named-run", artifact_bucket=bucket
    )
    _deliver_one_chat(exporter)
    before = _clients(exporter)

    exporter._after_fork_in_child()

    _deliver_one_chat(exporter)
    after = _clients(exporter)
    assert all(new is not old for new, old in zip(after, before, strict=True))
    assert exporter.spool.dead_letters() == []
