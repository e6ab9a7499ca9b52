"""Which traces become tasks: errors, tags, metadata and a trace-id-based sampling ratio."""

from __future__ import annotations

import dataclasses

import pytest
from otel_bridge_labelstudio import TraceFilter

from otel_bridge.langchain_views import FinishedTrace
from tests import chains


@pytest.fixture(scope="module")
def tagged() -> FinishedTrace:
    return chains.trace_of(
        chains.chat_model(),
        chains.chat_messages(),
        config={"tags": ["review-me"], "metadata": {"tenant": "acme", "tier": 2}},
    )


@pytest.fixture(scope="module")
def failed() -> FinishedTrace:
    model = chains.chat_model(error=ConnectionError("provider down"))
    return chains.trace_of(model, chains.chat_messages(), expect_error=ConnectionError)


def test_the_default_filter_passes_everything(tagged: FinishedTrace, failed: FinishedTrace) -> None:
    assert TraceFilter().matches(tagged) and TraceFilter().matches(failed)


def test_errors_only(tagged: FinishedTrace, failed: FinishedTrace) -> None:
    assert TraceFilter(errors_only=True).matches(failed)
    assert not TraceFilter(errors_only=True).matches(tagged)


def test_tags_match_any(tagged: FinishedTrace, failed: FinishedTrace) -> None:
    wanted = TraceFilter(tags=frozenset({"other", "review-me"}))
    assert wanted.matches(tagged)
    assert not wanted.matches(failed)


def test_metadata_key_and_value(tagged: FinishedTrace) -> None:
    assert TraceFilter(metadata={"tenant": None}).matches(tagged)
    assert TraceFilter(metadata={"tenant": "acme", "tier": 2}).matches(tagged)
    assert not TraceFilter(metadata={"tenant": "globex"}).matches(tagged)
    assert not TraceFilter(metadata={"region": None}).matches(tagged)


def test_every_criterion_must_hold(tagged: FinishedTrace) -> None:
    assert not TraceFilter(tags=frozenset({"review-me"}), errors_only=True).matches(tagged)


def test_sampling_is_decided_by_the_trace_id(tagged: FinishedTrace) -> None:
    low = dataclasses.replace(tagged, trace_id=(7 << 64) | 1)
    high = dataclasses.replace(tagged, trace_id=(7 << 64) | ((1 << 64) - 1))
    half = TraceFilter(sample_ratio=0.5)
    assert half.matches(low) and not half.matches(high)
    assert TraceFilter(sample_ratio=1.0).matches(high)
    assert not TraceFilter(sample_ratio=0.0).matches(low)
    # The same trace always gets the same decision (retries, replays, restarts).
    assert all(half.matches(low) for _ in range(20))


def test_sampling_keeps_about_the_ratio(tagged: FinishedTrace) -> None:
    sampler = TraceFilter(sample_ratio=0.25)
    step = (1 << 64) // 1000
    kept = sum(sampler.matches(dataclasses.replace(tagged, trace_id=i * step)) for i in range(1000))
    assert abs(kept - 250) <= 1  # ids evenly spread over the 64 low bits


@pytest.mark.parametrize("ratio", [-0.1, 1.5, float("nan")])
def test_sample_ratio_outside_zero_one_is_refused(ratio: float) -> None:
    with pytest.raises(ValueError, match="sample_ratio"):
        TraceFilter(sample_ratio=ratio)


def test_a_single_tag_string_is_refused() -> None:
    with pytest.raises(TypeError, match="collection of tag names"):
        TraceFilter(tags="review-me")  # type: ignore[arg-type]
