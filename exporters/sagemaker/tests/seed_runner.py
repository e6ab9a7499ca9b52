"""Runs the seed example (a path) as `__main__`, after making each `with Run(...)` block's exit
write down what the run holds at that moment, read straight from moto: the records and the
metric summaries, one JSON line per block to SNAPSHOTS. With `no-flush`, the drop-in's
`flush_tracker()` only resets its counters, so what the run holds at the block's end comes from
the run's closing alone.

python -m exporters.sagemaker.tests.seed_runner EXAMPLE SNAPSHOTS [no-flush]
"""

from __future__ import annotations

import json
import runpy
import sys
from typing import Any

import boto3
from otel_bridge_sagemaker import SageMakerCallbackHandler
from sagemaker.core.experiments.run import Run

from exporters.sagemaker.tests.aws import Aws


def _records(aws: Aws, name: str) -> list[dict[str, Any]]:
    if "langchain-records" not in aws.trial_component(name).get("OutputArtifacts", {}):
        return []
    return aws.records(name)


def main(example: str, snapshots: str, *flags: str) -> None:
    aws = Aws(
        sagemaker=boto3.client("sagemaker"),
        s3=boto3.client("s3"),
        metrics=boto3.client("sagemaker-metrics"),
    )
    original_exit = Run.__exit__

    def exit_and_look(self: Any, *exc_info: Any) -> Any:
        result = original_exit(self, *exc_info)
        name = self.experiment_config["RunName"]
        with open(snapshots, "a", encoding="utf-8") as out:
            snapshot = {
                "run": self.run_name,
                "records": _records(aws, name),
                "metrics": {k: v["Count"] for k, v in aws.metric_summaries(name).items()},
                "status": aws.trial_component(name)["Status"]["PrimaryStatus"],
            }
            out.write(json.dumps(snapshot, default=str) + "\n")
        return result

    Run.__exit__ = exit_and_look  # type: ignore[method-assign]
    if "no-flush" in flags:

        def reset_only(self: SageMakerCallbackHandler, timeout_s: float = 30.0) -> bool:
            self.reset_callback_meta()
            return True

        SageMakerCallbackHandler.flush_tracker = reset_only  # type: ignore[method-assign]
    runpy.run_path(example, run_name="__main__")


if __name__ == "__main__":
    main(*sys.argv[1:])
