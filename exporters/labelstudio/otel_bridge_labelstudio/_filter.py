"""Which finished traces become review tasks: errors, tags, metadata and a sampling ratio."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from otel_bridge.langchain_views import FinishedTrace
from otel_bridge.trace_tree import AttributeValue

_TRACE_ID_LOW_BITS = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class TraceFilter:
    """A trace passes when it meets every criterion that is set (the default passes all).

    - `errors_only`: some span of the trace failed.
    - `tags`: the trace carries at least one of these run tags.
    - `metadata`: each key is present in the run metadata, equal to the value unless it is None.
    - `sample_ratio`: keep this fraction of traces, decided by the trace id like the OTel
      `TraceIdRatioBased` sampler, so a retried or replayed trace gets the same decision.
    """

    errors_only: bool = False
    tags: frozenset[str] = frozenset()
    metadata: Mapping[str, AttributeValue | None] = field(default_factory=dict)
    sample_ratio: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.sample_ratio <= 1.0 or math.isnan(self.sample_ratio):
            raise ValueError(f"sample_ratio must be within [0, 1], got {self.sample_ratio!r}")
        if isinstance(self.tags, str):
            raise TypeError("tags must be a collection of tag names, not a single string")
        object.__setattr__(self, "tags", frozenset(self.tags))

    def matches(self, trace: FinishedTrace) -> bool:
        if not self._sampled(trace.trace_id):
            return False
        if self.errors_only and not trace.errors():
            return False
        if self.tags and self.tags.isdisjoint(trace.tags()):
            return False
        if self.metadata:
            present = trace.metadata()
            for key, wanted in self.metadata.items():
                if key not in present or (wanted is not None and present[key] != wanted):
                    return False
        return True

    def _sampled(self, trace_id: int) -> bool:
        bound = round(self.sample_ratio * (_TRACE_ID_LOW_BITS + 1))
        return (trace_id & _TRACE_ID_LOW_BITS) < bound
