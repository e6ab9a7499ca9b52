"""otel-bridge's optional C code. otel_bridge uses it when it is installed and falls back to its
own Python when it is not; the output is the same byte for byte (tests/core/test_otlp_json.py
runs both)."""

from otel_bridge_speedups._otlp_json import spans_json

__all__ = ["spans_json"]
