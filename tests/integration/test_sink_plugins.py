"""Sinks as plug-ins: the installed sinks are found through their `opentelemetry_traces_exporter`
entry points, each speaks for itself through the `SINK_REPORT` at its package root, and listing
them imports none of their client libraries (those take seconds each)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from otel_bridge.demo import sinks as demo_sinks
from otel_bridge.handler import OTelCallbackHandler
from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.plugins import SinkReport, installed_sinks
from otel_bridge.testing import FakeChatModel
from tests.support.recording import recording_provider

OWN_SINKS = ("clearml", "labelstudio", "sagemaker", "uptrain")
SINK_PACKAGES = tuple(f"otel_bridge_{name}" for name in OWN_SINKS)


def test_every_own_sink_is_found_with_its_report_and_the_file_sink_without_one() -> None:
    found = {sink.name: sink.report for sink in installed_sinks()}
    assert set(OWN_SINKS) <= set(found)
    for name in OWN_SINKS:
        assert isinstance(found[name], SinkReport), name
    assert found["file"] is None


def test_listing_the_sinks_imports_no_client_library() -> None:
    probe = (
        "import sys\n"
        "from otel_bridge.plugins import installed_sinks\n"
        "reports = [sink.report for sink in installed_sinks()]\n"
        "heavy = ('clearml', 'label_studio_sdk', 'uptrain', 'sagemaker', 'boto3', 'openai')\n"
        "print(sorted(name for name in heavy if name in sys.modules))\n"
        "print(sum(report is not None for report in reports))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    loaded, with_report = result.stdout.split()
    assert loaded == "[]"
    assert int(with_report) >= len(OWN_SINKS)


@pytest.mark.parametrize("package", SINK_PACKAGES)
def test_every_public_name_of_a_sink_root_resolves_on_first_use(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"
    with pytest.raises(AttributeError, match="no_such_name"):
        module.no_such_name  # noqa: B018


def _traces() -> list[FinishedTrace]:
    provider, exporter = recording_provider()
    handler = OTelCallbackHandler(tracer_provider=provider)
    FakeChatModel().invoke("hello", config={"callbacks": [handler]})
    FakeChatModel().invoke("again", config={"callbacks": [handler]})
    provider.shutdown()
    spans = exporter.get_finished_spans()
    by_trace: dict[int, list] = {}
    for span in spans:
        assert span.context is not None
        by_trace.setdefault(span.context.trace_id, []).append(span)
    return [FinishedTrace.from_spans(group) for group in by_trace.values()]


def test_the_demo_describes_a_missing_sink_as_the_sink_describes_itself() -> None:
    # The demo's words for a sink that is not installed ("pip install ... to send 2 review
    # tasks") must not drift from the sink's own report.
    installed = {sink.name: sink.report for sink in installed_sinks()}
    traces = _traces()
    for name, _distribution, stand_in in demo_sinks._OWN_SINKS:
        own = installed[name]
        assert own is not None
        assert (stand_in.title, stand_in.verb, stand_in.verb_past) == (
            own.title,
            own.verb,
            own.verb_past,
        ), name
        for some in ([], traces):
            assert stand_in.work(some) == own.work(some), name
    assert installed["labelstudio"] is not None
    assert installed["labelstudio"].work(traces) == "2 review tasks"


@pytest.mark.parametrize(
    ("name", "environ", "needs"),
    [
        ("clearml", {}, ""),
        ("labelstudio", {}, "set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY"),
        ("labelstudio", {"LABEL_STUDIO_API_KEY": "key"}, ""),
        ("labelstudio", {"OTEL_BRIDGE_LABELSTUDIO_API_KEY": "key"}, ""),
        ("uptrain", {}, "set OPENAI_API_KEY (or OTEL_BRIDGE_UPTRAIN_API_KEY and "),
        ("uptrain", {"OPENAI_API_KEY": "key"}, ""),
        ("sagemaker", {}, "set OTEL_BRIDGE_SAGEMAKER_EXPERIMENT_NAME (AWS credentials "),
        ("sagemaker", {"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}, ""),
        ("sagemaker", {"OTEL_BRIDGE_SAGEMAKER_EXPERIMENT_NAME": "demo"}, ""),
    ],
)
def test_a_sink_says_what_to_set_until_it_is_set(
    name: str, environ: dict[str, str], needs: str
) -> None:
    report = {sink.name: sink.report for sink in installed_sinks()}[name]
    assert report is not None
    said = report.needs(environ)
    assert said.startswith(needs) if needs else said == ""
    assert bool(said) == bool(needs)
