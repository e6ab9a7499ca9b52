"""The langchain_community UpTrain handler's public names that no other test calls, on the
drop-in (docs/migration.md lists every name): `first_score_printed_flag` and the fields of
`schema`. The judge is the local OpenAI-compatible server (`tests.support.fake_openai`)."""

from __future__ import annotations

import warnings
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from otel_bridge_uptrain import UpTrainCallbackHandler

from tests.support.fake_openai import FakeJudge


def test_the_schema_has_the_originals_fields_and_the_flag_is_there(
    judge: FakeJudge, tmp_path: Path
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from langchain_community.callbacks.uptrain_callback import UpTrainDataSchema

    handler = UpTrainCallbackHandler(
        project_name="names",
        api_key=judge.api_key,
        log_results=False,
        tracer_provider=TracerProvider(),
        exporter_options={"api_base": judge.url, "spool_dir": tmp_path},
    )
    try:
        original = vars(UpTrainDataSchema(project_name="names"))
        ours = vars(handler.schema)
        assert ours == original  # same fields, same starting values
        assert handler.first_score_printed_flag is False
    finally:
        handler.shutdown()
