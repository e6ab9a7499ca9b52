"""Trace and span ids that survive `random.seed()`: ClearML's Task.init seeds the global `random`
with a fixed value by default, and the OpenTelemetry SDK's default id generator draws from it.
"""

from __future__ import annotations

import os

from opentelemetry.sdk.trace.id_generator import IdGenerator

__all__ = ["SeedProofIdGenerator"]


class SeedProofIdGenerator(IdGenerator):
    """Ids from os.urandom. With the SDK's default generator, every process that calls
    Task.init itself (the tasks this package creates do not seed) draws the same trace ids, so
    traces of different runs collide wherever they are keyed by trace id (the delivery spool
    included). Pass it to your own provider: `TracerProvider(id_generator=SeedProofIdGenerator())`."""

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
