"""Reading a SageMaker run back with boto3, as a user would (straight from moto, no proxy)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

REGION = "us-east-1"


@dataclass(frozen=True, slots=True)
class Aws:
    """boto3 clients a user would read the results back with (talking to moto directly)."""

    sagemaker: Any
    s3: Any
    metrics: Any

    def trial_component(self, name: str) -> dict[str, Any]:
        response: dict[str, Any] = self.sagemaker.describe_trial_component(TrialComponentName=name)
        return response

    def metric_summaries(self, name: str) -> dict[str, dict[str, Any]]:
        return {m["MetricName"]: m for m in self.trial_component(name).get("Metrics", [])}

    def parameters(self, name: str) -> dict[str, Any]:
        return {
            key: value.get("StringValue", value.get("NumberValue"))
            for key, value in self.trial_component(name).get("Parameters", {}).items()
        }

    def records(self, trial_component_name: str) -> list[dict[str, Any]]:
        """Every JSON Lines record under the run's registered records artifact, in file order."""
        artifact = self.trial_component(trial_component_name)["OutputArtifacts"][
            "langchain-records"
        ]
        bucket, _, prefix = artifact["Value"].removeprefix("s3://").partition("/")
        records: list[dict[str, Any]] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                body = self.s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                records.extend(json.loads(line) for line in body.decode().splitlines())
        return records
