# Install: pip install -e . -e exporters/sagemaker
# Run:     python examples/sagemaker_experiment.py  # AWS credentials, or MOTO_ENDPOINT_URL=<moto server>
"""Log a LangChain app into a SageMaker Experiments run: metrics per model call (latency,
tokens), parameters (model, chain) and every run record as JSON Lines artifacts in S3.

`SageMakerCallbackHandler(run)` is langchain_community's constructor; the work happens off the
app's thread. AWS credentials and region come the usual way; with MOTO_ENDPOINT_URL set (a moto
server, as `make test` starts) everything goes there instead, with throwaway credentials.
"""

import os
import sys
import uuid

from langchain_core.prompts import ChatPromptTemplate

from otel_bridge.testing import FakeChatModel

try:  # beyond the core: the command at the top installs it
    import boto3
    from otel_bridge_sagemaker import SageMakerCallbackHandler
    from sagemaker.core.experiments.run import Run
except ImportError as missing:
    sys.exit(f"{missing.name} is not installed: pip install -e . -e exporters/sagemaker")

if os.environ.get("MOTO_ENDPOINT_URL"):
    os.environ["AWS_ENDPOINT_URL"] = os.environ["MOTO_ENDPOINT_URL"]
    for variable, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        os.environ.setdefault(variable, value)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    boto3.client("s3").create_bucket(Bucket="otel-bridge-example")

chain = ChatPromptTemplate.from_template("Summarize: {text}") | FakeChatModel(
    responses=["Spans in, experiment metrics out."], model_name="fake-summarizer"
)
experiment = f"otel-bridge-example-{uuid.uuid4().hex[:8]}"
with Run(
    experiment_name=experiment, run_name="summaries", artifact_bucket="otel-bridge-example"
) as run:
    handler = SageMakerCallbackHandler(run)
    for text in ("a long report", "a longer report", "the longest report"):
        print(chain.invoke({"text": text}, {"callbacks": [handler]}).content)
    handler.flush_tracker()
    handler.shutdown()

component = boto3.client("sagemaker").describe_trial_component(
    TrialComponentName=run.experiment_config["RunName"]
)
for metric in component.get("Metrics", []):
    print(f"metric {metric['MetricName']}: count={metric['Count']} avg={metric['Avg']:.3f}")
print("artifacts:", {name: a["Value"] for name, a in component.get("OutputArtifacts", {}).items()})
