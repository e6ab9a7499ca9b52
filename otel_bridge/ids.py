"""Trace and span ids that survive `random.seed()`.

The SDK's default id generator draws from the global `random`, which some libraries reseed with
a fixed value (ClearML's `Task.init` calls `random.seed(1337)`): every process would then draw
the same trace ids, and anything keyed by trace id (the delivery spool, sinks' idempotency
checks) would take a new trace for one already delivered.
"""

from __future__ import annotations

import os

from opentelemetry.sdk.trace.id_generator import IdGenerator

__all__ = ["SeedProofIdGenerator"]


class SeedProofIdGenerator(IdGenerator):
    """Ids from `os.urandom`; use it as `TracerProvider(id_generator=SeedProofIdGenerator())`."""

    def generate_span_id(self) -> int:
        span_id = 0
        while span_id == 0:  # 0 is the invalid span id
            span_id = int.from_bytes(os.urandom(8), "big")
        return span_id

    def generate_trace_id(self) -> int:
        trace_id = 0
        while trace_id == 0:  # 0 is the invalid trace id
            trace_id = int.from_bytes(os.urandom(16), "big")
        return trace_id
