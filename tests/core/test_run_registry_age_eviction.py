"""The open-run registry's age eviction, checked lazily (only when the oldest entry can be too
old): it evicts exactly what a full check on every start would, and the handler ends a run that
never ended once it is too old, and not before. Time comes from a fake clock."""

from __future__ import annotations

import random
import uuid

from langchain_core.runnables import RunnableLambda
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_bridge._registry import (
    EVICTED_OVER_CAPACITY,
    EVICTED_RESTARTED,
    EVICTED_TOO_OLD,
    OpenRunRegistry,
)
from otel_bridge._run_context import RunScopedContext
from otel_bridge.handler import OTelCallbackHandler
from tests.support.clock import FakeClock


class _Recorder:
    def __init__(self) -> None:
        self.evicted: list[tuple[str, str]] = []

    def __call__(self, run_id: uuid.UUID, run: str, reason: str) -> None:
        self.evicted.append((run, reason))


def _registry(
    clock: FakeClock, *, max_runs: int = 100, max_age_s: float = 10.0
) -> tuple[OpenRunRegistry[str], _Recorder, dict[str, uuid.UUID]]:
    recorder = _Recorder()
    registry: OpenRunRegistry[str] = OpenRunRegistry(
        max_runs=max_runs, max_age_s=max_age_s, clock=clock, on_evict=recorder
    )
    ids: dict[str, uuid.UUID] = {}
    return registry, recorder, ids


def _add(
    registry: OpenRunRegistry[str],
    ids: dict[str, uuid.UUID],
    clock: FakeClock,
    name: str,
    at: float | None = None,
) -> None:
    """Start the run called `name` (again, if it was started before), at `at` if given."""
    if at is not None:
        clock.now = at
    run_id = ids.setdefault(name, uuid.uuid4())
    registry.add(run_id, name, clock())


def test_age_eviction_happens_exactly_at_the_oldest_entrys_age_after_entries_come_and_go() -> None:
    clock = FakeClock(0.0)
    registry, recorder, ids = _registry(clock)
    _add(registry, ids, clock, "a")
    _add(registry, ids, clock, "b", at=5.0)
    clock.now = 6.0
    assert registry.pop(ids["a"]) == "a"
    _add(registry, ids, clock, "c", at=9.0)
    # "a" is gone; "b" (started at 5) is the oldest and is not too old before 15.
    _add(registry, ids, clock, "d", at=14.999)
    assert recorder.evicted == []
    _add(registry, ids, clock, "e", at=15.0)
    assert recorder.evicted == [("b", EVICTED_TOO_OLD)]
    _add(registry, ids, clock, "f", at=18.999)
    assert recorder.evicted == [("b", EVICTED_TOO_OLD)]
    _add(registry, ids, clock, "g", at=19.0)
    assert recorder.evicted[1:] == [("c", EVICTED_TOO_OLD)]
    assert len(registry) == 4
    assert registry.evicted == 2


def test_restarted_run_is_evicted_once_and_then_aged_from_its_restart() -> None:
    clock = FakeClock(0.0)
    registry, recorder, ids = _registry(clock)
    _add(registry, ids, clock, "a")
    _add(registry, ids, clock, "a", at=3.0)
    assert recorder.evicted == [("a", EVICTED_RESTARTED)]
    _add(registry, ids, clock, "b", at=12.999)
    assert recorder.evicted == [("a", EVICTED_RESTARTED)]
    assert registry.get(ids["a"]) == "a"
    _add(registry, ids, clock, "c", at=13.0)
    assert recorder.evicted[1:] == [("a", EVICTED_TOO_OLD)]
    assert registry.get(ids["a"]) is None


def test_over_capacity_eviction_moves_the_age_deadline_to_the_new_oldest() -> None:
    clock = FakeClock(0.0)
    registry, recorder, ids = _registry(clock, max_runs=2)
    for name, now in (("a", 0.0), ("b", 4.0), ("c", 6.0)):
        _add(registry, ids, clock, name, at=now)
    assert recorder.evicted == [("a", EVICTED_OVER_CAPACITY)]
    clock.now = 13.999
    registry.pop(ids["c"])
    _add(registry, ids, clock, "d")
    assert recorder.evicted == [("a", EVICTED_OVER_CAPACITY)]
    clock.now = 14.0
    registry.pop(ids["d"])
    _add(registry, ids, clock, "e")
    assert recorder.evicted[1:] == [("b", EVICTED_TOO_OLD)]


def test_end_stale_evicts_without_a_start_and_later_starts_still_age_out() -> None:
    clock = FakeClock(0.0)
    registry, recorder, ids = _registry(clock)
    _add(registry, ids, clock, "a")
    clock.now = 9.999
    assert registry.end_stale() == 0
    clock.now = 10.0
    assert registry.end_stale() == 1
    assert recorder.evicted == [("a", EVICTED_TOO_OLD)]
    # The registry is empty now; entries added later must still be aged from their own start.
    _add(registry, ids, clock, "b", at=10.5)
    clock.now = 11.0
    assert registry.end_stale() == 0
    _add(registry, ids, clock, "c", at=20.5)
    assert recorder.evicted[1:] == [("b", EVICTED_TOO_OLD)]
    assert registry.drain() == [(ids["c"], "c")]
    _add(registry, ids, clock, "d", at=100.0)
    _add(registry, ids, clock, "e", at=110.0)
    assert recorder.evicted[2:] == [("d", EVICTED_TOO_OLD)]


def test_registry_evicts_like_a_full_check_on_every_start_over_random_histories() -> None:
    """Against a reference that looks at every entry on every start (the old behaviour)."""
    rng = random.Random(20261121)
    for _ in range(200):
        clock = FakeClock(0.0)
        max_runs = rng.randint(1, 6)
        registry, recorder, ids = _registry(clock, max_runs=max_runs, max_age_s=10.0)
        reference: dict[str, float] = {}
        expected: list[tuple[str, str]] = []
        for _step in range(60):
            clock.now += rng.choice((0.0, 0.5, 1.0, 3.0, 7.0))
            action = rng.random()
            name = f"r{rng.randint(0, 9)}"
            if action < 0.55:
                if name in reference:
                    del reference[name]
                    restarted = True
                else:
                    restarted = False
                reference[name] = clock.now
                while len(reference) > max_runs:
                    oldest = next(iter(reference))
                    del reference[oldest]
                    expected.append((oldest, EVICTED_OVER_CAPACITY))
                for old_name, started in list(reference.items()):
                    if started <= clock.now - 10.0:
                        del reference[old_name]
                        expected.append((old_name, EVICTED_TOO_OLD))
                if restarted:
                    expected.append((name, EVICTED_RESTARTED))
                _add(registry, ids, clock, name)
            elif action < 0.9:
                reference.pop(name, None)
                registry.pop(ids.get(name, uuid.uuid4()))
            else:
                for old_name, started in list(reference.items()):
                    if started <= clock.now - 10.0:
                        del reference[old_name]
                        expected.append((old_name, EVICTED_TOO_OLD))
                registry.end_stale()
            assert recorder.evicted == expected
            assert len(registry) == len(reference)


def test_handler_ends_a_never_ended_run_once_it_is_too_old_and_not_before(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    clock = FakeClock()
    handler = OTelCallbackHandler(tracer_provider=provider, max_run_age_s=60.0, clock=clock)
    stuck = uuid.uuid4()
    handler.on_chain_start({"name": "stuck"}, {}, run_id=stuck)
    # Runs come and go; the stuck run stays the oldest.
    chain = RunnableLambda(lambda x: x)
    for step in range(5):
        clock.now += 10.0
        chain.invoke(step, config={"callbacks": [handler]})
    clock.now = 1059.999
    chain.invoke("before", config={"callbacks": [handler]})
    assert handler.span_for_run(stuck) is not None
    clock.now = 1060.0
    chain.invoke("after", config={"callbacks": [handler]})
    assert handler.span_for_run(stuck) is None
    assert handler.evicted_runs == 1
    (evicted,) = [s for s in exporter.get_finished_spans() if s.name == "stuck"]
    assert evicted.status.status_code == trace.StatusCode.ERROR
    assert evicted.status.description == EVICTED_TOO_OLD
    assert handler.open_runs == 0
    # Evicting its scope must not leave it current: what the caller sees is what it had.
    assert type(otel_context.get_current()) is not RunScopedContext
