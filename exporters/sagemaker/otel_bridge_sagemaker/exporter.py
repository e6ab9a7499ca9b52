"""`SageMakerSpanExporter`: the core `TraceExporter` wired to the SageMaker encoder and transport,
logging each finished trace into one SageMaker Experiments run.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import boto3

from otel_bridge.exporter import TraceExporter
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.sink import DeliveryReport, PermanentError, trace_key
from otel_bridge_sagemaker.encoder import encode_batch
from otel_bridge_sagemaker.settings import DEFAULT_ARTIFACT_PREFIX, SageMakerSettings
from otel_bridge_sagemaker.transport import (
    CLIENT_CONFIG,
    RunTarget,
    SageMakerTransport,
    aws_errors,
)

if TYPE_CHECKING:
    from sagemaker.core.experiments.run import Run
    from sagemaker.core.helper.session_helper import Session

__all__ = ["SageMakerSpanExporter"]

RECORDS_DIRECTORY = "langchain-records"
# Traces whose metrics were partly taken and that wait for a retry, remembered at most.
_MAX_REMEMBERED_TRACES = 10_000


@dataclass(slots=True)
class _SentMetrics:
    """One trace's metric steps, fixed at its first attempt, and the points SageMaker took."""

    first_step: int
    next_step: int
    accepted: set[tuple[str, int]] = field(default_factory=set)


class SageMakerSpanExporter(TraceExporter):
    """Logs finished LangChain traces into a SageMaker Experiments run.

    Per trace: metric points with steps (latency and tokens per model call, error counts per
    model and per trace) through BatchPutMetrics, run parameters (model, temperature, max
    tokens, chain name) and the trace's records as JSON Lines in S3 (one file per delivered
    batch, all under one registered output artifact, so the run never reaches SageMaker's
    30-artifact limit). See `otel_bridge_sagemaker.encoder` for the record schema.

    Each metric point is sent until SageMaker takes it, and not after: when BatchPutMetrics
    takes part of a batch (per-point errors, or some of its requests failing), the retry keeps
    the trace's steps and sends only the points not taken (remembered in memory, for up to
    10,000 traces waiting for a retry).

    Logs into `run` (a `sagemaker.core.experiments.run.Run`) when given, else loads or creates
    the run `run_name` of `experiment_name` on first delivery. Region and credentials come the
    standard AWS way (from `sagemaker_session` or the run's session when there is one);
    `endpoint_url` points every client at a SageMaker-compatible endpoint. `**options` go to
    `TraceExporter` (spool_dir, grace_period, retry, ...).
    """

    sink_name: ClassVar[str] = "sagemaker"

    def __init__(
        self,
        run: Run | None = None,
        experiment_name: str | None = None,
        run_name: str | None = None,
        sagemaker_session: Session | None = None,
        artifact_bucket: str | None = None,
        endpoint_url: str | None = None,
        *,
        artifact_prefix: str | None = None,
        **options: Any,
    ) -> None:
        if run is not None:
            if experiment_name or run_name:
                raise ValueError("pass either `run` or `experiment_name`/`run_name`, not both")
            # The run's own names, so the settings describe it and no variable can override them.
            experiment_name, run_name = run.experiment_name, run.run_name
        self.settings = SageMakerSettings.resolve(
            experiment_name=experiment_name,
            run_name=run_name,
            artifact_bucket=artifact_bucket,
            artifact_prefix=artifact_prefix,
            endpoint_url=endpoint_url,
        )
        self._run = run
        self._sagemaker_session = sagemaker_session
        self._transport: SageMakerTransport | None = None
        self._connect_lock = threading.Lock()
        # Names this exporter's records files: a retried batch overwrites its own file, and
        # two processes logging into one run never overwrite each other's.
        self._writer_id = uuid.uuid4().hex[:12]
        self._sent: OrderedDict[str, _SentMetrics] = OrderedDict()
        super().__init__(**options)

    @property
    def trial_component_name(self) -> str:
        """The trial component (run) this exporter logs into."""
        if self._run is not None:
            return str(self._run.experiment_config["RunName"])
        return self.settings.trial_component_name

    def deliver(self, traces: Sequence[FinishedTrace]) -> DeliveryReport:
        transport = self._connect()
        state = transport.read_state()
        transport.check_artifact_room(state)
        known = {
            key: remembered.first_step
            for t in traces
            if (remembered := self._sent.get(key := trace_key(t))) is not None
        }
        batch = encode_batch(
            traces,
            first_step=state.next_step,
            now_s=time.time(),
            writer_id=self._writer_id,
            known_steps=known,
            # Steps given to traces that wait for a retry are theirs; new traces come after.
            new_from=max((r.next_step for r in self._sent.values()), default=state.next_step),
        )
        if batch.traces:
            for key, (first, end) in batch.trace_steps.items():
                self._remember(key, first, end)
            records_key = transport.put_records(batch.object_name, batch.records_jsonl())
            owner = {
                step: key
                for key, (first, end) in batch.trace_steps.items()
                for step in range(first, end)
            }
            unsent = [
                point
                for point in batch.metrics
                if (point.name, point.step) not in self._sent[owner[point.step]].accepted
            ]
            sent = transport.put_metrics(unsent)
            for point in sent.accepted:
                self._sent[owner[point.step]].accepted.add((point.name, point.step))
            if sent.failure is not None:
                raise sent.failure
            # Past every step given out, also to traces that wait for a retry in another batch,
            # and past this batch's first step, which names its records file: a batch of traces
            # whose steps were all given out before must not leave the next one that name.
            next_step = max(
                [
                    batch.next_step,
                    state.next_step + 1,
                    *(remembered.next_step for remembered in self._sent.values()),
                ]
            )
            transport.write_run(state, batch.parameters, next_step, records_key)
            for key in batch.trace_steps:
                self._sent.pop(key, None)
        return DeliveryReport(
            delivered=frozenset(trace_key(t) for t in batch.traces), permanent=dict(batch.failed)
        )

    def _remember(self, key: str, first_step: int, next_step: int) -> None:
        if key not in self._sent:
            self._sent[key] = _SentMetrics(first_step, next_step)
            while len(self._sent) > _MAX_REMEMBERED_TRACES:
                self._sent.popitem(last=False)

    def already_delivered(self, keys: Sequence[str]) -> set[str]:
        """Which of these traces (attempted before) are in the run's recently completed batches:
        those whose final write reached SageMaker while its answer was lost."""
        transport = self._connect()
        wanted = set(keys)
        found: set[str] = set()
        for records_key in transport.read_state().recent_records_keys:
            found |= wanted & transport.trace_ids_in(records_key)
            if found == wanted:
                break
        return found

    def destination_identity(self) -> dict[str, str]:
        """The run (trial component) metrics and artifacts go to: a backlog left by a process is
        delivered into its own run, never the next process's (name the run, e.g. with
        OTEL_BRIDGE_SAGEMAKER_RUN_NAME, to deliver it). The endpoint is how the run is reached,
        not which run it is, so it is not part of it."""
        return {"run": self.trial_component_name}

    def _after_fork_in_child(self) -> None:
        # The boto3 clients' urllib3 pools share keep-alive sockets with the parent: dropped
        # (not closed), the next delivery creates clients of its own from the boto3 session.
        # A user's sagemaker Session or Run keeps its own clients; this exporter only reads
        # their settings and boto session, except to load or create the run and to find the
        # default bucket when neither `run` nor `artifact_bucket` was given.
        self._connect_lock = threading.Lock()
        self._transport = None
        # Parent and child now log into the same run: they must not name files alike.
        self._writer_id = uuid.uuid4().hex[:12]
        self._sent = OrderedDict()

    def _connect(self) -> SageMakerTransport:
        with self._connect_lock:
            if self._transport is None:
                self._transport = self._open_transport()
            return self._transport

    def _open_transport(self) -> SageMakerTransport:
        session = self._sagemaker_session or _session_of(self._run)
        boto_session = session.boto_session if session is not None else boto3.Session()
        with aws_errors("create AWS clients"):
            sagemaker_client, metrics_client, s3_client = (
                boto_session.client(
                    name, endpoint_url=self.settings.endpoint_url, config=CLIENT_CONFIG
                )
                for name in ("sagemaker", "sagemaker-metrics", "s3")
            )
        run = self._run
        if run is None:
            if session is None:
                session = _new_session(boto_session, sagemaker_client, metrics_client)
            with aws_errors("load or create the SageMaker run"):
                run = _load_or_create_run(self.settings, session)
        bucket = self.settings.artifact_bucket or _run_bucket(run)
        if bucket is None:
            if session is None:
                session = _new_session(boto_session, sagemaker_client, metrics_client)
            with aws_errors("find the SageMaker default bucket"):
                bucket = str(session.default_bucket())
        prefix = self.settings.artifact_prefix or _run_prefix(run) or DEFAULT_ARTIFACT_PREFIX
        trial_component = str(run.experiment_config["RunName"])
        transport = SageMakerTransport(
            sagemaker_client=sagemaker_client,
            metrics_client=metrics_client,
            s3_client=s3_client,
            target=RunTarget(
                trial_component_name=trial_component,
                bucket=bucket,
                records_prefix=f"{prefix.strip('/')}/{trial_component}/{RECORDS_DIRECTORY}/",
            ),
        )
        if self._run is None:
            # A user's Run gets its status from its `with` block; one made here has no block.
            transport.mark_in_progress()
        return transport


def _load_or_create_run(settings: SageMakerSettings, session: Any) -> Any:
    # Imported here: the SageMaker SDK takes seconds to import, and an exporter built from the
    # environment should not make the app's start-up pay for it.
    from sagemaker.core.experiments.run import Run

    try:
        return Run(
            experiment_name=settings.experiment_name,
            run_name=settings.run_name,
            sagemaker_session=session,
            artifact_bucket=settings.artifact_bucket,
            artifact_prefix=settings.artifact_prefix,
        )
    except ValueError as error:
        raise PermanentError(f"cannot create the SageMaker run: {error}") from error


def _new_session(boto_session: Any, sagemaker_client: Any, metrics_client: Any) -> Any:
    from sagemaker.core.helper.session_helper import Session

    return Session(
        boto_session=boto_session,
        sagemaker_client=sagemaker_client,
        sagemaker_metrics_client=metrics_client,
    )


# The Run API exposes neither its session nor its artifact location; these private attributes
# of sagemaker.core.experiments.run.Run are read defensively and fall back to the defaults.
def _session_of(run: Any) -> Any:
    return getattr(getattr(run, "_trial_component", None), "sagemaker_session", None)


def _run_bucket(run: Any) -> str | None:
    bucket = getattr(getattr(run, "_artifact_uploader", None), "artifact_bucket", None)
    return str(bucket) if bucket else None


def _run_prefix(run: Any) -> str | None:
    prefix = getattr(getattr(run, "_artifact_uploader", None), "artifact_prefix", None)
    return str(prefix) if prefix else None
