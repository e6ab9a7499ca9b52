"""Thin transport to UpTrain's local dashboard: the rows of one evaluation, with their scores,
posted once to `/api/public/add_project_data`, as uptrain's `EvalLLM.evaluate` posts them.

uptrain posts from inside `evaluate`, once per call; the exporter grades a trace's checks over
one or more calls (a retry asks only for what is missing), so uptrain's own post is held back
(see `_judge`) and the exporter posts each evaluated row here once, complete. Like uptrain's,
the post is one attempt: a dashboard that is not running costs nothing but a log line.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from typing import Any

import httpx

from otel_bridge_uptrain._results import Evaluation
from otel_bridge_uptrain._selection import Check

__all__ = ["DashboardPoster", "row_uuid", "serialized_check"]

_logger = logging.getLogger(__name__)

ADD_PROJECT_DATA = "/api/public/add_project_data"
# The open-source dashboard's one user: uptrain's EvalLLM sends this token (framework/evalllm.py).
_ACCESS_HEADERS = {"uptrain-access-token": "default_key"}
_ROW_NAMESPACE = uuid.UUID("6f0c1d5e-8a43-4f3e-9c1b-5b2f0e7a9d11")


def row_uuid(evaluation: Evaluation) -> str:
    """The row's id on the dashboard, the same whenever the same span's row is posted."""
    request = evaluation.request
    if request.trace_id == 0:  # rows the app evaluates itself (`uptrain_evaluate`): no span
        return uuid.uuid4().hex
    key = f"{request.trace_id:032x}-{request.span_id:016x}-{request.shape.value}"
    return uuid.uuid5(_ROW_NAMESPACE, key).hex


def serialized_check(check: Check) -> dict[str, Any]:
    """A check as uptrain's `evaluate` sends it to the dashboard (its `ser_checks`)."""
    from uptrain.framework.evals import Evals, ParametricEval

    if isinstance(check, str):
        check = Evals(check)
    if isinstance(check, Evals):
        return {"check_name": check.value, "scenario_description": None}
    if isinstance(check, ParametricEval):
        return {
            "check_name": type(check).__name__,
            **check.model_dump(),
            "scenario_description": None,
        }
    if isinstance(check, list):
        return {"check_name": "dummy_list_ops"}
    return {"check_name": type(check).__name__, **check.model_dump()}


def _default_schema() -> dict[str, Any]:
    from uptrain.framework.remote import DataSchema

    return dict(DataSchema().model_dump())


def sink_row(evaluation: Evaluation) -> dict[str, Any]:
    """The row with its scores, as uptrain's `evaluate` writes its `sink_data`."""
    row: dict[str, Any] = dict(evaluation.request.row)
    for score in evaluation.scores:
        row[f"score_{score.name}"] = score.value
        row[f"explanation_{score.name}"] = score.explanation
    row["row_uuid"] = row_uuid(evaluation)
    for name in [key for key in row if key.startswith("score_")]:
        row[f"status_{name}"] = "not updated"
    return row


class DashboardPoster:
    """Posts evaluations to the dashboard at `url` (uptrain's `uptrain_local_url`)."""

    def __init__(self, url: str, *, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self._timeout = httpx.Timeout(timeout, connect=5.0)
        self._said_absent = False
        self._lock = threading.Lock()
        self.posts = 0

    def post(
        self,
        project_name: str,
        evaluation_name: str,
        evaluations: Sequence[Evaluation],
    ) -> bool:
        """One post of these rows (all of one shape); True when the dashboard took them."""
        if not evaluations:
            return True
        checks = [serialized_check(check) for check in evaluations[0].request.checks]
        payload = {
            "data": [dict(e.request.row) for e in evaluations],
            "sink_data": [sink_row(e) for e in evaluations],
            "checks": checks,
            "metadata": {},
            "schema_dict": _default_schema(),
            "project": project_name,
            "evaluation": evaluation_name,
            "exp_column": None,
        }
        try:
            with httpx.Client(headers=_ACCESS_HEADERS, timeout=self._timeout) as client:
                response = client.post(self.url + ADD_PROJECT_DATA, json=payload)
        except httpx.TransportError as error:
            with self._lock:
                said, self._said_absent = self._said_absent, True
            # The original says this at every evaluation; once is enough.
            (_logger.debug if said else _logger.info)(
                "uptrain: no dashboard answers at %s (%s): results go to spans and logs only;"
                " start UpTrain's dashboard to see them there",
                self.url,
                type(error).__name__,
            )
            return False
        if response.status_code >= 300:
            _logger.warning(
                "uptrain: the dashboard at %s refused %d row(s) of %r: HTTP %d %s",
                self.url,
                len(evaluations),
                evaluation_name,
                response.status_code,
                response.text[:200],
            )
            return False
        with self._lock:
            self.posts += 1
        return True
